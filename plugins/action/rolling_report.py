# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds the rolling maintenance report from the run's records on the controller and writes it as JSON."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Dict

from ansible.errors import AnsibleActionFail
from ansible_collections.kvmops.rolling.plugins.plugin_utils._validating_action import ValidatingAction
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import write_atomic
from ansible_collections.kvmops.rolling.plugins.plugin_utils._report import (
    build_report,
    report_lines,
    standing_cancel_failures,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._scope import RUN_ID_PATTERN

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {"path": {"type": "path", "default": ""}}


class ActionModule(ValidatingAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        hostvars = task_vars["hostvars"]
        # No rm_run when the inputs were refused: a report of no host, under a run id fit for a file name.
        run = dict({"hosts": [], "cluster_of": {}}, **task_vars.get("rm_run") or {})
        now = datetime.datetime.now(datetime.timezone.utc)
        run_id = str(task_vars.get("rm_run_id") or run.get("run_id") or "")
        run["run_id"] = run_id if RUN_ID_PATTERN.fullmatch(run_id) else now.strftime("refused-%Y%m%dT%H%M%SZ")
        path = args["path"] or os.path.join(os.getcwd(), "rolling-maintenance-%s.json" % run["run_id"])
        recovery = task_vars.get("rm_recovery") or {}
        records = [hostvars[host].get("rm_record") or {"host": host, "cluster": run["cluster_of"].get(host, "")}
                   for host in run["hosts"]]
        state = {
            "aborted": task_vars.get("rm_aborted", False), "abort_reason": task_vars.get("rm_abort_reason", ""),
            "forced": _truthy(task_vars.get("rm_forced")), "check_mode": bool(task_vars.get("ansible_check_mode")),
            "started": task_vars.get("rm_run_started", ""),
            "ended": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "cancel_failures": standing_cancel_failures(
                task_vars.get("rm_cancel_failures") or [],
                [result.get("item") for result in (task_vars.get("rm_final_leave") or {}).get("results") or ()
                 if result.get("in_maintenance") is False]),
            "clusters_left_disabled": task_vars.get("rm_disabled_clusters") or [],
            "enable_failures": task_vars.get("rm_enable_failures") or [],
            "unexpected_errors": [error for host in list(run.get("cluster_hosts") or ()) + ["localhost"] if host in hostvars
                                  for error in hostvars[host].get("rm_unexpected_errors") or ()],
            "resumed_from": recovery.get("resumed_from", ""), "found": recovery.get("lines") or [],
            "maintenance_scripts": {
                host: {"found": hostvars[host]["rm_scripts"].get("Maintenance") not in ("skipped", None),
                       "hooks_dir": str(hostvars[host].get("rm_scripts_looked_in", ""))}
                for host in run["hosts"] if host in hostvars and hostvars[host].get("rm_scripts")},
        }
        plan = task_vars.get("rm_plan") or {}
        report = build_report(run, records, plan, state)
        try:  # readable by the controller's user only: stage output tails may hold what a script printed
            write_atomic(path, json.dumps(report, indent=2, sort_keys=True, default=str) + "\n", mode=0o600)
        except OSError as exc:
            raise AnsibleActionFail("cannot write the report to %s: %s" % (path, exc.strerror))
        lines = report_lines(report)
        return {"report": report, "lines": lines, "path": path, "success": report["success"], "msg": lines[0]}


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")
