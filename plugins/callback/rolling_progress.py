# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: rolling_progress
type: notification
short_description: One line per step of a rolling maintenance run, and the report at the very end
version_added: 0.1.0
description:
  - >-
    Prints where a rolling maintenance run is while it goes, one line per event, next to the output of
    the stdout callback, for example C([rolling c1 2/6] hv2: PreMaintenance stage started),
    C([rolling c1 2/6] hv2: evacuation ok in 5.2 s: 2 of 2 guests moved) or
    C([rolling c1 2/6] hv2: updated (2 of 6 hosts done)).
  - The prefix names the host's cluster and its place among the hosts of the run (from the result of
    M(kvmops.rolling.rolling_scope), which the role keeps as C(rm_run)). Without a run, for example when
    M(kvmops.rolling.maintenance_stage) or M(kvmops.rolling.host_maintenance) is used in another
    playbook, it names the host's C(rm_cluster) when that variable is set, and nothing more.
  - Lines are printed when a task of M(kvmops.rolling.maintenance_stage) or
    M(kvmops.rolling.host_maintenance) starts and ends (with its duration and outcome, read from the
    result since the role runs them with C(failed_when=false)), when M(kvmops.rolling.cluster_state)
    disables or enables a cluster again, when a host's record reaches its outcome (updated, skipped,
    failed) and when the run aborts.
  - The results of tasks with C(no_log) are not shown, only that the task ended and how long it took.
  - At the end of the playbook, when the custom stats published with C(ansible.builtin.set_stats) hold
    the C(rolling_maintenance) report, the report is printed once more under the header
    C(ROLLING MAINTENANCE REPORT), after the play recap, with the path of its JSON file.
  - The stdout callback P(kvmops.rolling.quiet#callback) prints these lines itself; with both enabled, they are
    printed once.
  - A problem inside the callback never stops or fails the run; it only costs its own output (it is
    shown at verbosity 3).
requirements:
  - Enable it in the C(callbacks_enabled) setting of ansible.cfg (section C([defaults])) or with the
    E(ANSIBLE_CALLBACKS_ENABLED) environment variable, as C(kvmops.rolling.rolling_progress).
author:
  - kvmops.rolling engineers (@kvmops)
"""

import functools
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, TypeVar

from ansible import constants as C
from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.kvmops.rolling.plugins.plugin_utils._progress import (
    CLUSTER_ACTION,
    MAINTENANCE_ACTION,
    REPORT_ACTION,
    REPORT_HEADER,
    SCOPE_ACTION,
    SET_FACT_ACTIONS,
    TONE_CHANGED,
    TONE_ERROR,
    TONE_OK,
    TONE_SKIP,
    Position,
    ProgressOutput,
    RecordTracker,
    Run,
    abort_words,
    canonical_action,
    cluster_words,
    done_words,
    find_report,
    is_job_action,
    job_label,
    label_from_result,
    line_tone,
    looks_like_report,
    outcome_words,
    plain_name,
    position_of,
    progress_line,
    started_words,
    summary_lines,
)

_Method = TypeVar("_Method", bound=Callable[..., None])


def _quiet(method: _Method) -> _Method:
    """A callback method that never raises: a problem costs its output, never the run."""

    @functools.wraps(method)
    def wrapper(self: "CallbackModule", *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:  # pylint: disable=broad-except
            try:
                self._display.vvv("kvmops.rolling.rolling_progress: %s: %s: %s"
                                  % (method.__name__, type(exc).__name__, exc))
            except Exception:  # pylint: disable=broad-except
                pass

    return wrapper  # type: ignore[return-value]


def _attr(obj: Any, public: str) -> Any:
    """``result.task`` (ansible-core 2.19+) or ``result._task`` (before), without touching the deprecated one."""
    value = getattr(obj, public, None)
    if value is None:
        value = getattr(obj, "_" + public, None)
    return value


def _host_name(host: Any) -> Optional[str]:
    if host is None:
        return None
    name = host.get_name() if hasattr(host, "get_name") else host
    return str(name) if name is not None else None


def _action_of(task: Any) -> str:
    return canonical_action(getattr(task, "action", None), getattr(task, "resolved_action", None))


def _is_looped(task: Any) -> bool:
    return bool(getattr(task, "loop", None) or getattr(task, "loop_with", None))


def _no_log(task: Any, result: Mapping[str, Any]) -> bool:
    return getattr(task, "no_log", None) is True or "censored" in result or bool(result.get("_ansible_no_log"))


def _vars_of(task: Any) -> Mapping[str, Any]:
    """The task's variables as written (its own and its include's ``vars``), never templated."""
    try:
        found = task.get_vars()
    except Exception:  # pylint: disable=broad-except
        return {}
    return found if isinstance(found, Mapping) else {}


def _label_of(action: str, task: Any) -> str:
    return job_label(action, _args_of(task), getattr(task, "name", None), _vars_of(task))


def _args_of(task: Any) -> Mapping[str, Any]:
    args = getattr(task, "args", None)
    return args if isinstance(args, Mapping) else {}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "kvmops.rolling.rolling_progress"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, in_stdout_callback: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_stdout_callback = in_stdout_callback
        self._run: Optional[Run] = None
        self._play: Any = None
        self._started: Dict[Tuple[str, str], Tuple[float, bool]] = {}
        self._labels: Dict[Tuple[str, str], str] = {}
        self._records = RecordTracker()
        self._clusters: Dict[str, Optional[str]] = {}
        self._abort_said = False
        self._report_path: Optional[str] = None
        self._report: Optional[Mapping[str, Any]] = None

    # Where a host is ---------------------------------------------------------------------------------

    def _cluster_hint(self, host: Any) -> Optional[str]:
        """The host's rm_cluster from its variables (inventory, host_vars, group_vars), for hosts outside the run."""
        name = _host_name(host)
        if name is None or host is None or isinstance(host, str):
            return None
        if name not in self._clusters:
            cluster = None
            try:
                cluster = plain_name(host.get_vars().get("rm_cluster"))
                if cluster is None and self._play is not None:
                    manager = self._play.get_variable_manager()
                    if manager is not None:
                        found = manager.get_vars(play=self._play, host=host, include_hostvars=False)
                        cluster = plain_name(found.get("rm_cluster"))
            except Exception:  # pylint: disable=broad-except
                cluster = None
            self._clusters[name] = cluster
        return self._clusters[name]

    def _position(self, name: Optional[str], host: Any = None) -> Position:
        if name is not None and self._run is not None and name in self._run.cluster_of:
            return position_of(name, self._run)
        return position_of(name, self._run, self._cluster_hint(host))

    @property
    def report(self) -> Optional[Mapping[str, Any]]:
        """The run's report, once its rolling_report task has given it."""
        return self._report

    def _printed_elsewhere(self) -> bool:
        """Whether the kvmops.rolling.quiet stdout callback, which carries these lines, prints them instead."""
        return ProgressOutput.in_stdout_callback and not self._in_stdout_callback

    def _say(self, position: Position, host: Optional[str], text: str, tone: str = "") -> None:
        if self._printed_elsewhere():
            return
        color = {TONE_OK: C.COLOR_OK, TONE_CHANGED: C.COLOR_CHANGED, TONE_SKIP: C.COLOR_SKIP,
                 TONE_ERROR: C.COLOR_ERROR}.get(tone)
        self._display.display(progress_line(position, host, text), color=color)

    # Events -----------------------------------------------------------------------------------------

    @_quiet
    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play = play

    @_quiet
    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        action = _action_of(task)
        if not is_job_action(action) or _is_looped(task):
            return
        name = _host_name(host)
        if name is None:
            return
        key = (name, str(getattr(task, "_uuid", "")))
        label = _label_of(action, task)
        # A host whose record is closed, or any host once the run aborted, has its steps skipped by the
        # role's conditions: do not announce a start that will not happen (a step that runs all the
        # same still gets its end line).
        announced = not (self._records.is_final(name) or self._abort_said)
        self._started[key] = (time.monotonic(), announced)
        self._labels[key] = label
        if announced:
            self._say(self._position(name, host), name, started_words(label))

    @_quiet
    def v2_runner_on_ok(self, result: Any) -> None:
        self._ended(result, "ok")

    @_quiet
    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._ended(result, "failed")

    @_quiet
    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._ended(result, "unreachable")

    @_quiet
    def v2_runner_on_skipped(self, result: Any) -> None:
        self._ended(result, "skipped")

    @_quiet
    def v2_runner_item_on_ok(self, result: Any) -> None:
        self._item_ended(result, "ok")

    @_quiet
    def v2_runner_item_on_failed(self, result: Any) -> None:
        self._item_ended(result, "failed")

    def _ended(self, result: Any, event: str) -> None:
        task = _attr(result, "task")
        host = _attr(result, "host")
        data = _attr(result, "result")
        if not isinstance(data, Mapping):
            data = {}
        name = _host_name(host)
        action = _action_of(task)
        if event == "ok" and not _no_log(task, data):
            self._remember(action, name, host, task, data)
        if not is_job_action(action) or name is None:
            return
        key = (name, str(getattr(task, "_uuid", "")))
        started = self._started.pop(key, None)
        label = self._labels.pop(key, None)
        if _is_looped(task) or (event == "skipped" and not (started and started[1])):
            return  # a looped task shows its items; a skip of a start not announced says nothing
        label = label or _label_of(action, task)
        seconds = time.monotonic() - started[0] if started else _seconds(data.get("elapsed"))
        self._say(self._position(name, host), name, *self._outcome(action, label, task, data, seconds, event))

    def _item_ended(self, result: Any, event: str) -> None:
        """An item of a looped maintenance task (the finish step taking hosts out of maintenance)."""
        task = _attr(result, "task")
        action = _action_of(task)
        if action != MAINTENANCE_ACTION:
            return  # a looped stage task is the role's look-up of the scripts (check mode): nothing runs
        data = _attr(result, "result")
        if not isinstance(data, Mapping) or data.get("skipped"):
            return
        host = _attr(result, "host")
        name = _host_name(host)
        item = data.get(data.get("ansible_loop_var") or "item")
        if isinstance(item, str) and self._run is not None and item in self._run.cluster_of:
            name, host = item, None
        label = _label_of(action, task)
        self._say(self._position(name, host), name,
                  *self._outcome(action, label, task, data, _seconds(data.get("elapsed")), event))

    @staticmethod
    def _outcome(action: str, label: str, task: Any, data: Mapping[str, Any], seconds: Optional[float],
                 event: str) -> Tuple[str, str]:
        if _no_log(task, data):
            failed = event in ("failed", "unreachable")
            return "%s %s%s (result hidden: no_log)" % (
                label, "failed" if failed else "ended", " %s %.1f s" % ("after" if failed else "in", seconds)
                if seconds is not None else ""), TONE_ERROR if failed else TONE_OK
        label = label_from_result(action, label, data)
        return outcome_words(action, label, data, seconds, event)

    def _remember(self, action: str, name: Optional[str], host: Any, task: Any, data: Mapping[str, Any]) -> None:
        """What the run's own tasks tell: its scope, the cluster marks, the hosts' records, the report."""
        if action == SCOPE_ACTION:
            run = Run.from_result(data)
            if run is not None:
                self._run = run
                self._records = RecordTracker()
                self._abort_said = False
                what = data.get("msg") or "%d host(s)" % len(run.hosts)
                check = " (check mode)" if _check_mode() else ""
                self._say(Position(), None, "run %s%s: %s" % (run.run_id or "?", check, what))
        elif action == CLUSTER_ACTION and _is_looped(task) and isinstance(data.get("results"), list):
            self._cluster_marked(task, data["results"])
        elif action in SET_FACT_ACTIONS and isinstance(data.get("ansible_facts"), Mapping):
            self._facts_set(name, host, data["ansible_facts"])
        elif action == REPORT_ACTION:
            if isinstance(data.get("path"), str):
                self._report_path = data["path"]
            if looks_like_report(data.get("report")):
                self._report = data["report"]

    def _cluster_marked(self, task: Any, items: List[Any]) -> None:
        hosts = [item.get(item.get("ansible_loop_var") or "item") for item in items if isinstance(item, Mapping)]
        hosts = [host for host in hosts if isinstance(host, str)]
        cluster = plain_name(_args_of(task).get("cluster"))
        if cluster is None and hosts and self._run is not None:
            cluster = self._run.cluster_of.get(hosts[0])
        said = cluster_words(_args_of(task).get("state"), items, _check_mode())
        if said is not None:
            self._say(Position(cluster), None, *said)

    def _facts_set(self, name: Optional[str], host: Any, facts: Mapping[str, Any]) -> None:
        if name is not None and "rm_record" in facts:
            said = self._records.update(name, facts["rm_record"])
            if said is not None:
                text, tone = said
                self._say(self._position(name, host), name, text + done_words(self._records.done(), self._run), tone)
        if not self._abort_said and "rm_aborted" in facts:
            aborted = abort_words(facts)
            if aborted is not None:
                self._abort_said = True
                self._say(Position(), None, aborted, TONE_ERROR)

    @_quiet
    def v2_playbook_on_stats(self, stats: Any) -> None:
        report = find_report(getattr(stats, "custom", None)) or self._report
        if report is None or self._printed_elsewhere():
            return
        lines = summary_lines(report, self._report_path)
        self._display.banner(REPORT_HEADER)
        for line in lines:
            tone = line_tone(line)
            self._display.display(line, color={TONE_OK: C.COLOR_OK, TONE_SKIP: C.COLOR_SKIP,
                                               TONE_ERROR: C.COLOR_ERROR}.get(tone))
        self._display.display("")


def _check_mode() -> bool:
    """Whether the playbook runs with --check (a task may still force its own check_mode)."""
    try:
        return bool(context.CLIARGS.get("check"))
    except Exception:  # pylint: disable=broad-except
        return False


def _seconds(value: Any) -> Optional[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
