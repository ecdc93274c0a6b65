# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives the maintenance_stage module: start the stage, poll it, survive reconnects, cancel at the deadline."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.kvmops.rolling.plugins.module_utils._hypervisor import READ_HYPERVISOR_ARGUMENT_SPEC
from ansible_collections.kvmops.rolling.plugins.module_utils._maintenance_mode import LEAVE_ARGUMENT_SPEC
from ansible_collections.kvmops.rolling.plugins.module_utils._record import (
    RECORD_ARGUMENT_SPEC,
    record_after_stage,
    stage_summary,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STAGE_ARGUMENT_SPEC,
    split_payload,
    stage_succeeded,
    validate_timing,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_job_action import HostJobAction


class ActionModule(HostJobAction):
    MODULE = "kvmops.rolling.maintenance_stage"
    ARGUMENT_SPEC = dict(STAGE_ARGUMENT_SPEC, **RECORD_ARGUMENT_SPEC, **LEAVE_ARGUMENT_SPEC, **READ_HYPERVISOR_ARGUMENT_SPEC)
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def check_arguments(self, args: Dict[str, Any]) -> None:
        validate_timing(args["stage_timeout"], args["ping_interval"])
        split_payload(args["payload"])

    def job_name(self, args: Dict[str, Any]) -> str:
        return "%s stage" % args["stage"]

    def job_timing(self, args: Dict[str, Any]) -> Dict[str, Any]:
        return {"timeout": args["stage_timeout"], "ping_interval": args["ping_interval"],
                "attached": args["executor"] == "agent"}

    def conclude(self, result: Dict[str, Any], args: Dict[str, Any]) -> None:
        result.setdefault("stage", args["stage"])
        result["succeeded"] = not result.get("failed") and \
            stage_succeeded(result["status"], args["stage"], args["rebooted_ok"])
        # Always set: Ansible would otherwise take any non-zero rc (70 included) for a failure.
        result["failed"] = not result["succeeded"]
        result["summary"] = stage_summary(result)

    def record_after(self, record: Dict[str, Any], result: Dict[str, Any], args: Dict[str, Any]) -> Dict[str, Any]:
        return record_after_stage(record, args["stage"], result, args["forced"], self._task.check_mode)
