# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decides, on the controller, what a run does about the locks, marks and jobs earlier runs left on the hosts."""

from __future__ import annotations

import os
import socket
from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import current_boot_id, process_start_ticks
from ansible_collections.kvmops.rolling.plugins.plugin_utils._recovery import assess
from ansible_collections.kvmops.rolling.plugins.plugin_utils._validating_action import ValidatingAction

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "clusters": {"type": "dict", "required": True},
    "run_id": {"type": "str", "required": True},
    "resume": {"type": "bool", "default": False},
    "lock_timeout": {"type": "int", "required": True},
    "take_over": {"type": "str", "default": ""},
    "facts_var": {"type": "str", "default": "rm_hypervisor"},
}


def controller_identity() -> Dict[str, Any]:
    """This controller and its ansible-playbook process (the parent of the worker that runs an action)."""
    pid = os.getppid()
    return {"host": socket.gethostname(), "boot_id": current_boot_id(), "pid": pid,
            "pid_start_ticks": process_start_ticks(pid)}


def process_alive(pid: int, start_ticks: Optional[int]) -> bool:
    ticks = process_start_ticks(pid)
    return ticks is not None and (start_ticks is None or ticks == start_ticks)


class ActionModule(ValidatingAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        if args["lock_timeout"] < 1:
            raise AnsibleActionFail("rm_lock_timeout must be a positive number of seconds, not %r" % args["lock_timeout"])
        hostvars = task_vars["hostvars"]
        clusters = {str(name): [str(host) for host in members] for name, members in args["clusters"].items()}
        states = {}
        for members in clusters.values():
            for host in members:
                facts = hostvars[host].get(args["facts_var"]) if host in hostvars else None
                states[host] = facts if isinstance(facts, dict) else None
        controller = controller_identity()
        recovery = assess(clusters, states, args["run_id"], args["resume"], args["lock_timeout"], controller,
                          process_alive, take_over=args["take_over"])
        result = dict(recovery.as_dict(), controller=controller, msg=recovery.refusal or "; ".join(recovery.lines))
        result["repairs"] = bool(recovery.wait_jobs or recovery.leave_maintenance or recovery.enable_clusters)
        return result
