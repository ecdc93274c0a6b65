# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The action plugin shape shared by the modules that run a long job on a host (a stage, an evacuation).

The action validates its arguments on the controller before anything touches the host, then drives
the same-named module through start, poll and cancel with a JobDriver, reconnecting as needed.
"""

from __future__ import annotations

import uuid
from typing import Any, Dict

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.utils.display import Display
from ansible_collections.kvmops.rolling.plugins.plugin_utils._interrupt import interruptible
from ansible_collections.kvmops.rolling.plugins.plugin_utils._job_driver import ConnectionLost, JobDriver
from ansible_collections.kvmops.rolling.plugins.plugin_utils._validating_action import ValidatingAction

display = Display()


class HostJobAction(ValidatingAction):
    """Subclasses name the module and its argument spec, and say how long the job may take."""

    MODULE = ""

    def check_arguments(self, args: Dict[str, Any]) -> None:
        """Raise ValueError naming what is wrong; nothing has touched the host yet."""

    def job_name(self, args: Dict[str, Any]) -> str:
        raise NotImplementedError

    def job_timing(self, args: Dict[str, Any]) -> Dict[str, Any]:
        """JobDriver settings: timeout, ping_interval, and optionally attached."""
        raise NotImplementedError

    def conclude(self, result: Dict[str, Any], args: Dict[str, Any]) -> None:
        """Set ``failed`` (always, explicitly) from the job's outcome."""
        raise NotImplementedError

    def record_after(self, record: Dict[str, Any], result: Dict[str, Any], args: Dict[str, Any]) -> Dict[str, Any]:
        """The host's record (option ``record``) with the job's concluded result in it."""
        raise NotImplementedError

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        host = task_vars.get("inventory_hostname", "")
        args["run_id"] = args.get("run_id") or self._templar.template(task_vars.get("rm_run_id")) or uuid.uuid4().hex[:12]
        args["host_name"] = args.get("host_name") or host
        try:
            self.check_arguments(args)
        except ValueError as exc:
            raise AnsibleActionFail("%s: nothing was done" % exc)
        name = self.job_name(args)
        # The job this task follows: its own, or the one an interrupted run left and the host adopted.
        job: Dict[str, Any] = {"id": "%s.%s.%s" % (args["run_id"], name.replace(" ", "-"), uuid.uuid4().hex[:8])}

        def call(mode: str, wait: float) -> Dict[str, Any]:
            module_args = dict(args, _mode=mode, _job_id=job["id"], _wait=wait)
            try:
                reply = self._execute_module(module_name=self.MODULE, module_args=module_args, task_vars=task_vars)
            except AnsibleConnectionFailure as exc:
                raise ConnectionLost(str(exc))
            if reply.get("unreachable"):
                raise ConnectionLost(reply.get("msg", "unreachable"))
            if reply.get("adopted") and reply.get("job_id"):
                job["id"], job["adopted"] = reply["job_id"], True
                display.display("%s: %s of run %s was started before the run was interrupted: following job %s"
                                % (host, name, args["run_id"], job["id"]))
            return reply

        def reconnect() -> None:
            try:
                self._connection.reset()
            except (AnsibleConnectionFailure, AttributeError) as exc:
                display.vvv("%s: reset of the connection failed: %s" % (host, exc))

        def progress(status: Dict[str, Any]) -> None:
            detail = status.get("progress") or {}
            display.display("%s: %s running for %.0f s %s" % (host, name, status.get("elapsed", 0),
                                                              _progress_words(detail)))

        try:
            if self._task.check_mode:
                # Nothing runs on the host, so there is no job to follow through reconnects.
                try:
                    outcome = call("start", 0.0)
                except ConnectionLost as exc:
                    raise AnsibleConnectionFailure(str(exc))
            else:
                driver = JobDriver(call, reconnect, what=name, progress=progress, **self.job_timing(args))
                try:
                    with interruptible():
                        outcome = driver.run()
                except KeyboardInterrupt:
                    # The driver cancelled the job on the host; the run goes on to clean up after it.
                    # The host kept its record with the job's own end; the run's says cancelled: keep it again.
                    outcome = dict(driver.cancel_result or {}, status="cancelled", failed=True, interrupted=True,
                                   record_kept=False,
                                   msg="interrupted by the operator (Ctrl-C): the %s was cancelled (%s)"
                                       % (name, (driver.cancel_result or {}).get("msg", "no answer from the host")))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result = dict(outcome)
        if job.get("adopted"):  # only the start call says so; the report keeps it
            result["adopted"] = True
        result.setdefault("run_id", args["run_id"])
        result.pop("invocation", None)
        self.conclude(result, args)
        if args.get("record") is not None:
            # The module kept its own copy on the host when the job ended (record_kept); this one, with what
            # only the controller saw (reconnects, an interrupt), is the run's.
            result["record"] = self.record_after(args["record"], result, args)
        return result


def _progress_words(progress: Dict[str, Any]) -> str:
    if not progress:
        return ""
    counts = progress.get("counts", {})
    words = "(%d of %d moved" % (counts.get("moved", 0), progress.get("total", 0))
    if progress.get("migrating"):
        words += "; migrating %s" % ", ".join(progress["migrating"])
    return words + ")"
