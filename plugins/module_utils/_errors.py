# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The base of the collection's errors, and the one way a module fails from one."""

from __future__ import annotations

from typing import Any, NoReturn


class RollingError(Exception):
    """An error an operator reads: its message names what is wrong and, where there is one, the fix. Modules
    fail from it with fail_from; actions (ValidatingAction) turn it into the task's failure."""


def fail_from(module: Any, exc: RollingError, **fields: Any) -> NoReturn:
    """Fail the module (an AnsibleModule) with the error's message and the result fields given."""
    module.fail_json(msg=str(exc), **fields)
    raise AssertionError("fail_json returned")  # it exits; this keeps NoReturn true for type checkers
