# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that close a host's record in a rolling maintenance run (the rules live in module_utils/_record.py,
which the stage and evacuation modules apply on the host too)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.kvmops.rolling.plugins.module_utils._record import closed_record as _closed_record
from ansible_collections.kvmops.rolling.plugins.module_utils._record import record_after_stage as _record_after_stage


def closed_record(record: Mapping[str, Any], kind: str, stage: str, reason: str, forced: bool = False,
                  check_mode: bool = False) -> Dict[str, Any]:
    try:
        return _closed_record(record, kind, stage, reason, boolean(forced, strict=False),
                              boolean(check_mode, strict=False))
    except ValueError as exc:
        raise AnsibleFilterError("closed_record: %s" % exc)


def record_after_stage(record: Mapping[str, Any], stage: str, result: Mapping[str, Any], forced: bool = False,
                       check_mode: bool = False) -> Dict[str, Any]:
    # forced comes as typed (-e rm_forced=false is the string "false"): Ansible's boolean, as the modules take it.
    return _record_after_stage(record, stage, result, boolean(forced, strict=False), boolean(check_mode, strict=False))


class FilterModule:
    def filters(self) -> Dict[str, Callable[..., Dict[str, Any]]]:
        return {"closed_record": closed_record, "record_after_stage": record_after_stage}
