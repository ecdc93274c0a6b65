# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the run's lock (the rules live in plugin_utils/_scope.py)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Optional

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.kvmops.rolling.plugins.plugin_utils._scope import lock_renewal_due as _lock_renewal_due


def lock_renewal_due(renewed_at: Optional[Any], interval: Any, check_mode: Any = False) -> bool:
    # Facts come back as strings (set_fact of a timestamp): taken as the numbers they are.
    renewed = None if renewed_at in (None, "") else float(renewed_at)
    return _lock_renewal_due(renewed, float(interval), time.time(), boolean(check_mode, strict=False))


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"lock_renewal_due": lock_renewal_due}
