# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shape of every action of the collection: validate the arguments against ARGUMENT_SPEC, then act."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError


class ValidatingAction(ActionBase):
    """Subclasses set ARGUMENT_SPEC and implement act(), whose result becomes the task's; a RollingError it
    raises fails the task with its message."""

    TRANSFERS_FILES = False
    ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {}

    def act(self, args: Dict[str, Any], task_vars: Dict[str, Any]) -> Dict[str, Any]:
        raise NotImplementedError

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=self.ARGUMENT_SPEC)
        try:
            result.update(self.act(args, task_vars))
        except RollingError as exc:  # the collection's one way for an action to fail from its errors
            raise AnsibleActionFail(str(exc))
        result.setdefault("changed", False)
        return result
