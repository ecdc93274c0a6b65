"""The record filters take forced and check_mode as Ansible does: "false" given with -e is false."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.rolling.plugins.filter.host_record import closed_record, record_after_stage

OPEN = {"host": "hv1", "status": "in_progress", "stages": {}}


@pytest.mark.parametrize("forced,aborts", [("false", True), ("no", True), (False, True), ("true", False), (True, False)])
def test_forced_as_typed_on_the_command_line(forced: object, aborts: bool) -> None:
    assert closed_record(OPEN, "failure", "PreMaintenance", "exit 4", forced)["aborts_run"] is aborts
    failed = {"status": "failed", "succeeded": False, "msg": "the host could not be reached"}
    assert record_after_stage(OPEN, "Maintenance", failed, forced)["aborts_run"] is aborts


def test_check_mode_as_typed() -> None:
    assert closed_record(OPEN, "updated", "PostMaintenance", "", False, "false")["status"] == "updated"
    assert closed_record(OPEN, "updated", "PostMaintenance", "", False, "true")["status"] == "planned"
