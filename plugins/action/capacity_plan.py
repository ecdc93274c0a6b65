# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plans, on the controller, where every guest of the hosts in scope goes when each is evacuated in turn."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible_collections.kvmops.rolling.plugins.plugin_utils._validating_action import ValidatingAction
from ansible_collections.kvmops.rolling.plugins.plugin_utils._capacity import (
    expected_skip,
    plan_recheck,
    plan_scope,
)

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "hosts": {"type": "list", "elements": "str", "required": True},
    "facts_var": {"type": "str", "default": "rm_hypervisor"},
    "errors_var": {"type": "str", "default": "rm_gather_error"},
    "fail_on_infeasible": {"type": "bool", "default": True},
    # Plan the hosts that will be skipped (no Maintenance script, PreFlight exit 70) as skips.
    "plan_skips": {"type": "bool", "default": False},
    # A re-check that read only these hosts again: they alone are targets, and the result's read_again names
    # who else to read when that is not enough.
    "fresh_hosts": {"type": "list", "elements": "str"},
}


class ActionModule(ValidatingAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        hostvars = task_vars["hostvars"]
        inventory = list(task_vars["groups"]["all"])
        unknown = [host for host in args["hosts"] if host not in hostvars]
        if unknown:
            raise AnsibleActionFail("not in the inventory: %s" % ", ".join(unknown))

        def host_vars(host: str) -> Dict[str, Any]:
            return hostvars[host]

        def facts(host: str) -> Optional[Dict[str, Any]]:
            value = hostvars[host].get(args["facts_var"])
            return value if isinstance(value, dict) else None

        try:
            errors = {host: str(hostvars[host].get(args["errors_var"]) or "") for host in args["hosts"]}
            skips = {host: expected_skip(hostvars[host].get("rm_scripts"), hostvars[host].get("rm_record"))
                     for host in args["hosts"]} if args["plan_skips"] else {}
            if args["fresh_hosts"] is None:
                plan = plan_scope(args["hosts"], inventory, host_vars, facts, errors, skips)
            elif len(args["hosts"]) == 1:
                plan = plan_recheck(args["hosts"][0], args["fresh_hosts"], inventory, host_vars, facts, errors)
            else:
                raise ValueError("fresh_hosts is for the re-check of one host, got hosts %s" % ", ".join(args["hosts"]))
        except ValueError as exc:
            raise AnsibleActionFail("capacity check: %s" % exc)
        result = dict(plan)
        if args["fail_on_infeasible"] and not plan["feasible"]:
            result["failed"] = True
            result["msg"] = "capacity check failed, nothing was moved: " + " | ".join(
                "%s: %s" % (host, reason) for host, reason in plan["problems"].items())
        else:
            result["msg"] = "every host in scope can be evacuated" if plan["feasible"] else \
                "%d host(s) cannot be evacuated" % len(plan["problems"])
        return result
