# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drives the host_maintenance module: the evacuation runs detached on the host and is polled to its end."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.kvmops.rolling.plugins.module_utils._evacuation import (
    MAINTENANCE_ARGUMENT_SPEC,
    parse_moves,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._record import RECORD_ARGUMENT_SPEC, record_after_evacuation
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import validate_timing
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import LEAVE_TIMEOUT_SECONDS
from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_job_action import HostJobAction


class ActionModule(HostJobAction):
    MODULE = "kvmops.rolling.host_maintenance"
    ARGUMENT_SPEC = dict(MAINTENANCE_ARGUMENT_SPEC, **RECORD_ARGUMENT_SPEC)
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def check_arguments(self, args: Dict[str, Any]) -> None:
        validate_timing(args["wait_timeout"], args["ping_interval"], names=("wait_timeout", "ping_interval"))
        if args["max_parallel_migrations"] < 1:
            raise ValueError("max_parallel_migrations must be at least 1, got %d" % args["max_parallel_migrations"])
        parse_moves(args["moves"], args["host_name"])

    def job_name(self, args: Dict[str, Any]) -> str:
        return "evacuation" if args["state"] == "present" else "leaving maintenance"

    def job_timing(self, args: Dict[str, Any]) -> Dict[str, Any]:
        timeout = args["wait_timeout"] if args["state"] == "present" else LEAVE_TIMEOUT_SECONDS
        return {"timeout": timeout, "ping_interval": args["ping_interval"]}

    def conclude(self, result: Dict[str, Any], args: Dict[str, Any]) -> None:
        result["failed"] = bool(result.get("failed")) or result["status"] not in ("ok", "would_run")

    def record_after(self, record: Dict[str, Any], result: Dict[str, Any], args: Dict[str, Any]) -> Dict[str, Any]:
        if args["state"] != "present":
            return record
        return record_after_evacuation(record, result, args["forced"], self._task.check_mode)
