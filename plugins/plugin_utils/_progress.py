# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the rolling_progress callback prints, from plain values. Pure: no Ansible objects in here.

A progress line says where the run is, which host, what happened to it::

    [rolling c1 2/6] hv2: PreMaintenance stage started
    [rolling c1 2/6] hv2: PreMaintenance stage ok in 3.1 s
    [rolling c1 2/6] hv2: evacuation ok in 5.2 s: 2 of 2 guests moved
    [rolling c1 2/6] hv2: updated (2 of 6 hosts done)

The position is the host's place in the run's ordered hosts (the rolling_scope result, which is what
the role keeps as ``rm_run``); without a run, the line only names what is known (``[rolling hv2]``-style
prefixes degrade to ``[rolling c1]`` or ``[rolling]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.kvmops.rolling.plugins.plugin_utils._report import report_lines

COLLECTION = "kvmops.rolling"
STAGE_ACTION = COLLECTION + ".maintenance_stage"
MAINTENANCE_ACTION = COLLECTION + ".host_maintenance"
CLUSTER_ACTION = COLLECTION + ".cluster_state"
SCOPE_ACTION = COLLECTION + ".rolling_scope"
REPORT_ACTION = COLLECTION + ".rolling_report"
JOB_ACTIONS = (STAGE_ACTION, MAINTENANCE_ACTION)
SET_FACT_ACTIONS = ("ansible.builtin.set_fact", "ansible.legacy.set_fact", "set_fact")

REPORT_KEY = "rolling_maintenance"
RUN_STATS_KEY = "_run"
REPORT_HEADER = "ROLLING MAINTENANCE REPORT"
FINAL_STATUSES = ("updated", "planned", "skipped", "failed")
REPORT_KEYS = ("success", "details", "attention", "run_id", "hosts_updated", "hosts_skipped", "hosts_failed")

# Tones tell the callback which colour to use; the text never depends on them.
TONE_PLAIN = "plain"
TONE_OK = "ok"
TONE_CHANGED = "changed"
TONE_SKIP = "skip"
TONE_ERROR = "error"

_TEMPLATE = re.compile(r"{{|{%")
# A task named after its stage, as the role names it ("Stage PreMaintenance") or as one may ("PreMaintenance stage").
_STAGE_NAME = re.compile(r"^(?:.* : )?(?:Stage (?P<first>[A-Za-z][A-Za-z0-9_-]*)|(?P<last>[A-Za-z][A-Za-z0-9_-]*) stage)$")
_MSG_SECONDS = re.compile(r" in [0-9.]+ s$")
_SIMPLE_VARIABLE = re.compile(r"^\s*{{-?\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*-?}}\s*$")


@dataclass(frozen=True)
class Run:
    """The parts of the rolling_scope result (``rm_run``) that place a host in the run."""

    hosts: Tuple[str, ...] = ()
    clusters: Tuple[str, ...] = ()
    members: Dict[str, Tuple[str, ...]] = field(default_factory=dict)
    cluster_of: Dict[str, str] = field(default_factory=dict)
    run_id: str = ""

    @classmethod
    def from_result(cls, value: Any) -> Optional["Run"]:
        """The run from a rolling_scope result or ``rm_run``; None when it does not look like one."""
        if not isinstance(value, Mapping):
            return None
        hosts = _names(value.get("hosts"))
        members_in = value.get("members")
        if hosts is None or not isinstance(members_in, Mapping):
            return None
        members: Dict[str, Tuple[str, ...]] = {}
        for cluster, names in members_in.items():
            found = _names(names)
            if found is not None:
                members[str(cluster)] = found
        clusters = _names(value.get("clusters"))
        cluster_of: Dict[str, str] = {}
        if isinstance(value.get("cluster_of"), Mapping):
            cluster_of = {str(host): str(cluster) for host, cluster in value["cluster_of"].items()
                          if isinstance(cluster, str)}
        for cluster, names in members.items():
            for host in names:
                cluster_of.setdefault(host, cluster)
        return cls(hosts=hosts, clusters=clusters if clusters is not None else tuple(members), members=members,
                   cluster_of=cluster_of, run_id=str(value.get("run_id") or ""))


def _names(value: Any) -> Optional[Tuple[str, ...]]:
    if not isinstance(value, (list, tuple)):
        return None
    return tuple(str(item) for item in value if isinstance(item, (str, int)) and not isinstance(item, bool))


def plain_name(value: Any) -> Optional[str]:
    """A variable's value as a name, or None when it is missing, empty, not a string or still a template."""
    if isinstance(value, str) and value.strip() and not _TEMPLATE.search(value):
        return value.strip()
    return None


@dataclass(frozen=True)
class Position:
    """Where a host is in the run: its cluster and its place among the run's hosts (1-based; 0 unknown)."""

    cluster: Optional[str] = None
    index: int = 0
    total: int = 0


def position_of(host: Optional[str], run: Optional[Run], cluster_hint: Optional[str] = None) -> Position:
    """The host's position: the run knows the cluster and the place; otherwise ``cluster_hint`` (its rm_cluster)."""
    cluster = plain_name(cluster_hint)
    if run is not None and host is not None:
        cluster = run.cluster_of.get(host, cluster)
        if host in run.hosts:
            return Position(cluster, run.hosts.index(host) + 1, len(run.hosts))
    return Position(cluster)


def prefix(position: Position) -> str:
    """``[rolling c1 2/6]``, with what is unknown left out."""
    words = ["rolling"]
    if position.cluster:
        words.append(position.cluster)
    if position.index and position.total:
        words.append("%d/%d" % (position.index, position.total))
    return "[%s]" % " ".join(words)


def progress_line(position: Position, host: Optional[str], text: str) -> str:
    """One line of progress: ``[rolling c1 2/6] hv2: text`` (no host: ``[rolling c1] text``)."""
    return "%s %s%s" % (prefix(position), "%s: " % host if host else "", text)


def canonical_action(action: Any, resolved: Any = None) -> str:
    """The action's fully qualified name when Ansible resolved it, else the action as written."""
    for value in (resolved, action):
        if isinstance(value, str) and value:
            return value
    return ""


def is_job_action(action: str) -> bool:
    return action in JOB_ACTIONS


def simple_variable(value: Any) -> Optional[str]:
    """The variable a template only refers to (``{{ rm_stage }}`` -> ``rm_stage``), else None."""
    if not isinstance(value, str):
        return None
    match = _SIMPLE_VARIABLE.match(value)
    return match.group("name") if match else None


def resolve_argument(value: Any, variables: Optional[Mapping[str, Any]] = None) -> Optional[str]:
    """An argument as a plain name: as written, or the plain value of the one variable it refers to."""
    name = plain_name(value)
    if name is None and variables:
        variable = simple_variable(value)
        if variable is not None:
            name = plain_name(variables.get(variable))
    return name


def job_label(action: str, args: Mapping[str, Any], task_name: Any = None,
              variables: Optional[Mapping[str, Any]] = None) -> str:
    """What a stage or maintenance task does, in words: ``PreMaintenance stage``, ``evacuation``, ...

    ``args`` are the task's arguments as written (they may still be templates); ``variables`` the task's
    own variables as written (an include's ``vars``), to resolve an argument like ``{{ rm_stage }}``; a
    stage's name then falls back to the task's rendered name (``Stage PreMaintenance``).
    """
    if action == STAGE_ACTION:
        stage = resolve_argument(args.get("stage"), variables)
        if stage is None and isinstance(task_name, str) and not _TEMPLATE.search(task_name):
            match = _STAGE_NAME.match(task_name.strip())
            stage = (match.group("first") or match.group("last")) if match else None
        return "%s stage" % stage if stage else "stage"
    if action == MAINTENANCE_ACTION:
        state = resolve_argument(args.get("state"), variables)
        if state == "present":
            return "evacuation"
        if state == "absent":
            return "leaving maintenance"
        return "maintenance"
    return action.rsplit(".", 1)[-1]


def label_from_result(action: str, label: str, result: Mapping[str, Any]) -> str:
    """The label made precise by the result, when the arguments were templates."""
    if action == STAGE_ACTION and label == "stage" and plain_name(result.get("stage")):
        return "%s stage" % result["stage"]
    if action == MAINTENANCE_ACTION and label == "maintenance":
        return "evacuation" if "moved" in result or "moves" in result else "leaving maintenance"
    return label


def seconds_words(seconds: Optional[float], failed: bool = False) -> str:
    """`` in 3.1 s`` (or `` after 3.1 s`` for a failure); empty when unknown."""
    if seconds is None or seconds < 0:
        return ""
    return " %s %.1f s" % ("after" if failed else "in", seconds)


def started_words(label: str) -> str:
    return "%s started" % label


def outcome_words(action: str, label: str, result: Mapping[str, Any], seconds: Optional[float],
                  event: str = "ok") -> Tuple[str, str]:
    """How a stage or maintenance task ended, in words, and the tone to show it in.

    ``event`` is the callback event: ok, failed, unreachable or skipped. The role runs these tasks with
    ``failed_when: false``, so the result, not the event, says whether a stage failed.
    """
    msg = _one_line(result.get("msg"))
    if event == "skipped":
        return "%s skipped%s" % (label, ": %s" % msg if msg else ""), TONE_SKIP
    if event == "unreachable":
        return "%s: host unreachable%s%s" % (label, seconds_words(seconds, True), ": %s" % msg if msg else ""), \
            TONE_ERROR
    status = result.get("status")
    if not isinstance(status, str):
        if event == "failed":
            return "%s failed%s%s" % (label, seconds_words(seconds, True), ": %s" % msg if msg else ""), TONE_ERROR
        return "%s done%s" % (label, seconds_words(seconds)), TONE_OK
    if action == STAGE_ACTION:
        words, tone = _stage_words(label, status, result, msg, seconds, event)
        return _with_leaving_words(words, tone, result.get("left_maintenance"))
    return _maintenance_words(label, status, result, msg, seconds, event)


def _with_leaving_words(words: str, tone: str, left: Any) -> Tuple[str, str]:
    """A Maintenance stage whose last call took the host out of maintenance (leave_maintenance) says so."""
    if not isinstance(left, Mapping):
        return words, tone
    if left.get("status") == "ok" and not left.get("in_maintenance"):
        return "%s; the host left maintenance" % words, tone
    return "%s; leaving maintenance failed: %s" % (words, _one_line(left.get("msg"))), TONE_ERROR


def _stage_words(label: str, status: str, result: Mapping[str, Any], msg: str, seconds: Optional[float],
                 event: str) -> Tuple[str, str]:
    # The status says it, as stage_succeeded does; ``succeeded`` only decides a reboot (rm_reboot_ok_stages).
    if status == "rebooted":
        succeeded = result.get("succeeded") is True
    else:
        succeeded = status in ("ok", "no_maintenance", "skipped", "would_run")
    if not succeeded:
        return "%s %s%s%s" % (label, "timed out" if status == "timeout" else "failed", seconds_words(seconds, True),
                              ": %s" % msg if msg else ""), TONE_ERROR
    if status == "no_maintenance":
        return "%s ok%s: no maintenance needed (exit %s)" % (label, seconds_words(seconds), result.get("rc", 70)), \
            TONE_SKIP
    if status == "skipped":
        return "%s skipped: no script" % label, TONE_SKIP
    if status == "would_run":
        return "%s would run (check mode)" % label, TONE_CHANGED
    if status == "rebooted":
        return "%s ok%s: the host rebooted" % (label, seconds_words(seconds)), TONE_OK
    return "%s ok%s" % (label, seconds_words(seconds)), TONE_OK


def _maintenance_words(label: str, status: str, result: Mapping[str, Any], msg: str, seconds: Optional[float],
                       event: str) -> Tuple[str, str]:
    if status == "would_run":
        return "%s would run (check mode)%s" % (label, ": %s" % _strip_check_mode(msg) if msg else ""), TONE_CHANGED
    if status != "ok" or event == "failed":
        return "%s %s%s%s" % (label, "timed out" if status == "timeout" else "failed", seconds_words(seconds, True),
                              ": %s" % msg if msg else ""), TONE_ERROR
    moves = result.get("moves")
    moved = result.get("moved")
    if isinstance(moves, list) and isinstance(moved, int) and not isinstance(moved, bool):
        plural = "" if len(moves) == 1 else "s"
        detail = "%d of %d guest%s moved" % (moved, len(moves), plural) if moves else "no guest to move"
    else:
        detail = _MSG_SECONDS.sub("", msg) if result.get("changed") is False else ""
    return "%s ok%s%s" % (label, seconds_words(seconds), ": %s" % detail if detail else ""), TONE_OK


def _strip_check_mode(msg: str) -> str:
    return msg[len("check mode: "):] if msg.startswith("check mode: ") else msg


def _one_line(value: Any, limit: int = 300) -> str:
    """A message on one line, shortened: a progress line never spans lines."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def cluster_words(state: Any, items: Sequence[Any], check_mode: bool = False) -> Optional[Tuple[str, str]]:
    """The end of a cluster_state task looped over a cluster's hosts: ``cluster disabled (marked on 3 of 3 hosts)``."""
    state = plain_name(state)
    if state not in ("disabled", "enabled"):
        return None
    want = state == "disabled"
    answered = [item for item in items if isinstance(item, Mapping) and not item.get("skipped")]
    done = [item for item in answered if item.get("disabled") is want]
    text = "cluster %s%s (%s on %d of %d host%s)" % (
        "would be " if check_mode else "", "disabled" if want else "enabled again",
        "marked" if want else "mark cleared", len(done), len(answered), "" if len(answered) == 1 else "s")
    if check_mode:
        text += " (check mode)"
    return text, TONE_CHANGED if len(done) == len(answered) else TONE_ERROR


@dataclass
class RecordTracker:
    """Follows each host's ``rm_record`` (set with set_fact) and says when a host reaches its outcome."""

    statuses: Dict[str, str] = field(default_factory=dict)

    def update(self, host: str, record: Any) -> Optional[Tuple[str, str]]:
        """The words for a host whose record just became final (updated, skipped, failed), else None."""
        if not isinstance(record, Mapping) or not isinstance(record.get("status"), str):
            return None
        status = record["status"]
        previous = self.statuses.get(host)
        self.statuses[host] = status
        if status not in FINAL_STATUSES or status == previous:
            return None
        return outcome_of_record(record), TONE_OK if status in ("updated", "planned") else \
            TONE_SKIP if status == "skipped" else TONE_ERROR

    def is_final(self, host: str) -> bool:
        """Whether the host's record is closed: the role skips every further step of the host."""
        return self.statuses.get(host) in FINAL_STATUSES

    def done(self) -> int:
        return sum(1 for status in self.statuses.values() if status in FINAL_STATUSES)


def outcome_of_record(record: Mapping[str, Any]) -> str:
    """``updated``, ``planned`` (check mode), ``skipped at PreMaintenance: reason`` or ``FAILED at Maintenance: reason``."""
    status = str(record.get("status"))
    if status in ("updated", "planned"):
        return status
    words = "FAILED" if status == "failed" else status
    stage = _one_line(record.get("stage"))
    reason = _one_line(record.get("reason"))
    return "%s%s%s" % (words, " at %s" % stage if stage else "", ": %s" % reason if reason else "")


def done_words(done: int, run: Optional[Run]) -> str:
    """`` (2 of 6 hosts done)`` when the run is known."""
    if run is None or not run.hosts:
        return ""
    return " (%d of %d host%s done)" % (done, len(run.hosts), "" if len(run.hosts) == 1 else "s")


def abort_words(facts: Mapping[str, Any]) -> Optional[str]:
    """``run aborted: reason`` when the facts set abort the run."""
    if facts.get("rm_aborted") is True or str(facts.get("rm_aborted")).lower() == "true":
        reason = _one_line(facts.get("rm_abort_reason"))
        return "run aborted%s" % (": %s" % reason if reason else "")
    return None


def looks_like_report(value: Any) -> bool:
    return isinstance(value, Mapping) and all(key in value for key in REPORT_KEYS)


def find_report(custom: Any) -> Optional[Mapping[str, Any]]:
    """The rolling maintenance report in the custom stats (set_stats): per run (``_run``), else any host's."""
    if not isinstance(custom, Mapping):
        return None
    scopes: List[Any] = [custom.get(RUN_STATS_KEY)]
    scopes += [value for key, value in sorted(custom.items(), key=lambda item: str(item[0]))
               if key != RUN_STATS_KEY]
    for scope in scopes:
        if isinstance(scope, Mapping) and looks_like_report(scope.get(REPORT_KEY)):
            found: Mapping[str, Any] = scope[REPORT_KEY]
            return found
    return None


def summary_lines(report: Mapping[str, Any], path: Optional[str] = None) -> List[str]:
    """The report's lines as the play output shows them, then where its JSON is."""
    lines = [str(line) for line in report_lines(report)]
    if path:
        lines.append("JSON report: %s" % path)
    return lines


def line_tone(line: str) -> str:
    """The colour of a summary line: the verdict and the attention line stand out."""
    stripped = line.strip()
    if stripped.startswith(("ATTENTION", "FAILED")) or " FAILED" in line.split(" - ", 1)[0]:
        return TONE_ERROR
    if stripped.startswith("skipped"):
        return TONE_SKIP
    if line.startswith("Rolling maintenance ") and " SUCCESS" in line:
        return TONE_OK
    return TONE_PLAIN


class ProgressOutput:
    """Which callback prints the progress lines: the quiet stdout callback when it runs (it carries them), so
    that rolling_progress, enabled beside it, does not print each line twice."""

    in_stdout_callback = False


# What a failed role argument validation carries besides its errors: the whole argument spec, thousands of
# characters, of no use to the operator who typed a wrong value.
_ARGUMENT_SPEC_NOISE = ("argument_spec_data", "validate_args_context", "argument_errors")


def refused_arguments(result: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """A failed argument validation as the quiet callback shows it: its message on one line, and nothing of
    the argument spec. None for any other result, which is shown in full."""
    if "argument_spec_data" not in result and "argument_errors" not in result:
        return None
    errors = result.get("argument_errors")
    message = str(result.get("msg") or "Validation of arguments failed:")
    if isinstance(errors, list) and errors:
        message = "%s %s" % (message.splitlines()[0].strip(), "; ".join(str(error) for error in errors))
    shown = {key: value for key, value in result.items() if key not in _ARGUMENT_SPEC_NOISE}
    shown["msg"] = " ".join(message.split())
    return shown


DEBUG_ACTIONS = ("ansible.builtin.debug", "ansible.legacy.debug", "debug")


def shows_debug_message(action: str, message: Any, report: Optional[Mapping[str, Any]]) -> bool:
    """Whether the quiet callback shows a task's result: a debug message is meant to be seen (the run's plan,
    what earlier runs left, a playbook's own), except the report's lines, which the report block shows at the end."""
    return action in DEBUG_ACTIONS and not (report is not None and message == summary_lines(report))


def message_lines(message: Any) -> Optional[List[str]]:
    """A debug message that is text, or a list of texts, as the lines to print; None for any other value."""
    if isinstance(message, str):
        return message.splitlines()
    if isinstance(message, list) and all(isinstance(line, str) for line in message):
        return [part for line in message for part in line.splitlines()]
    return None
