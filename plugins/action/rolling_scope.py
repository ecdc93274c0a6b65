# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks the run's inputs on the controller and resolves its scope to hosts, before any host is touched."""

from __future__ import annotations

from typing import Any, Dict

from ansible.errors import AnsibleActionFail
from ansible_collections.kvmops.rolling.plugins.plugin_utils._validating_action import ValidatingAction
from ansible_collections.kvmops.rolling.plugins.plugin_utils._scope import SCOPES, STRAY_EXTRA_VARS, ScopeError, resolve

RUN_VARIABLES = tuple(SCOPES) + ("rm_stage_timeout", "rm_ping_interval", "rm_wait_maintenance_timeout",
                                 "rm_max_parallel_migrations", "rm_payload", "rm_run_id", "rm_lock_timeout",
                                 "rm_take_over", "rm_secret_env")


class ActionModule(ValidatingAction):
    _VALID_ARGS = frozenset()

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        hostvars = task_vars["hostvars"]
        run_vars = {name: self._templar.template(task_vars.get(name)) for name in RUN_VARIABLES}
        # Shown as typed, never templated: it is only reported.
        run_vars[STRAY_EXTRA_VARS] = task_vars.get(STRAY_EXTRA_VARS)
        try:
            scope = resolve(run_vars, list(task_vars["groups"]["all"]), lambda host: hostvars[host])
        except ScopeError as exc:
            raise AnsibleActionFail("invalid input, nothing was touched: %s" % exc)
        return dict(scope.as_dict(), msg="%d host(s) in %d cluster(s): %s" % (
            len(scope.hosts), len(scope.members), ", ".join(scope.hosts)))
