# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the capacity re-check (the rules live in plugin_utils/_capacity.py)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.kvmops.rolling.plugins.plugin_utils._capacity import (
    recheck_first_reads as _recheck_first_reads,
)


def recheck_first_reads(planned_moves: Sequence[Mapping[str, str]], host: str, host_read: Any = False) -> List[str]:
    return _recheck_first_reads(host, planned_moves or [], boolean(host_read, strict=False))


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Any]]:
        return {"recheck_first_reads": recheck_first_reads}
