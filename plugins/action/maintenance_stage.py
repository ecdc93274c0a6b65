# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives the maintenance_stage module: start the stage, poll it, survive reconnects, cancel at the deadline."""

from __future__ import annotations

import uuid
from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STAGE_ARGUMENT_SPEC,
    PayloadError,
    split_payload,
    stage_succeeded,
    validate_timing,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._job_driver import ConnectionLost, JobDriver

display = Display()
MODULE = "kvmops.rolling.maintenance_stage"


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(STAGE_ARGUMENT_SPEC)

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=STAGE_ARGUMENT_SPEC)
        try:
            validate_timing(args["stage_timeout"], args["ping_interval"])
            split_payload(args["payload"])
        except (ValueError, PayloadError) as exc:
            raise AnsibleActionFail("%s: nothing was run" % exc)
        host = task_vars.get("inventory_hostname", "")
        args["run_id"] = args["run_id"] or task_vars.get("rm_run_id") or uuid.uuid4().hex[:12]
        args["host_name"] = args["host_name"] or host
        job_id = "%s.%s.%s" % (args["run_id"], args["stage"], uuid.uuid4().hex[:8])

        def call(mode: str, wait: float) -> Dict[str, Any]:
            module_args = dict(args, _mode=mode, _job_id=job_id, _wait=wait)
            try:
                reply = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
            except AnsibleConnectionFailure as exc:
                raise ConnectionLost(str(exc))
            if reply.get("unreachable"):
                raise ConnectionLost(reply.get("msg", "unreachable"))
            return reply

        def reconnect() -> None:
            try:
                self._connection.reset()
            except (AnsibleConnectionFailure, AttributeError) as exc:
                display.vvv("%s: reset of the connection failed: %s" % (host, exc))

        def progress(status: Dict[str, Any]) -> None:
            display.v("%s: %s running for %.0f s (%s)" % (host, args["stage"], status.get("elapsed", 0), job_id))

        driver = JobDriver(call, reconnect, args["stage_timeout"], args["ping_interval"],
                           attached=args["executor"] == "agent", what="%s stage" % args["stage"], progress=progress)
        try:
            outcome = driver.run()
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(outcome)
        result.setdefault("stage", args["stage"])
        result.setdefault("run_id", args["run_id"])
        result["succeeded"] = not result.get("failed") and \
            stage_succeeded(result["status"], args["stage"], args["rebooted_ok"])
        # Always set: Ansible would otherwise take any non-zero rc (70 included) for a failure.
        result["failed"] = not result["succeeded"]
        result.pop("invocation", None)
        return result
