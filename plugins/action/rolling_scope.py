# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks the run's inputs on the controller and resolves its scope to hosts, before any host is touched."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kvmops.rolling.plugins.plugin_utils._scope import SCOPES, ScopeError, resolve

RUN_VARIABLES = tuple(SCOPES) + ("rm_stage_timeout", "rm_ping_interval", "rm_wait_maintenance_timeout",
                                 "rm_max_parallel_migrations", "rm_payload", "rm_run_id")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset()

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        hostvars = task_vars["hostvars"]
        run_vars = {name: self._templar.template(task_vars.get(name)) for name in RUN_VARIABLES}
        try:
            scope = resolve(run_vars, list(task_vars["groups"]["all"]), lambda host: hostvars[host])
        except ScopeError as exc:
            raise AnsibleActionFail("invalid input, nothing was touched: %s" % exc)
        result.update(scope.as_dict(), changed=False,
                      msg="%d host(s) in %d cluster(s): %s" % (len(scope.hosts), len(scope.members),
                                                               ", ".join(scope.hosts)))
        return result
