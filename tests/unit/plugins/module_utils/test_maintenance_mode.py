"""Leaving maintenance: the mark taken back, never in check mode, a failure said and counted as still in it."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.kvmops.rolling.plugins.module_utils._maintenance_mode import (
    in_maintenance,
    left_maintenance_at_stage_end,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import MAINTENANCE_MARK, write_mark


def in_maintenance_for(state_dir: Path, run_id: str) -> None:
    state_dir.mkdir(mode=0o700, exist_ok=True)
    write_mark(str(state_dir), MAINTENANCE_MARK, {"run_id": run_id, "host": "hv1", "state": "in_maintenance"})


def test_a_host_in_maintenance_leaves_it_and_one_not_in_it_is_told_so(tmp_path: Path) -> None:
    state = tmp_path / "state"
    in_maintenance_for(state, "run-1")
    left = left_maintenance_at_stage_end(str(state), check_mode=False)
    assert (left["status"], left["in_maintenance"]) == ("ok", False) and "for run run-1" in left["msg"], left
    assert not in_maintenance(str(state))
    again = left_maintenance_at_stage_end(str(state), check_mode=False)
    assert (again["status"], again["changed"], again["msg"]) == ("ok", False, "the host was not in maintenance")


def test_check_mode_leaves_the_mark(tmp_path: Path) -> None:
    state = tmp_path / "state"
    in_maintenance_for(state, "run-1")
    left = left_maintenance_at_stage_end(str(state), check_mode=True)
    assert left["in_maintenance"] and in_maintenance(str(state))


def test_a_mark_that_cannot_be_read_fails_the_leave_and_the_host_counts_as_still_in_maintenance(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / MAINTENANCE_MARK).write_text("{half written")
    left = left_maintenance_at_stage_end(str(state), check_mode=False)
    assert (left["status"], left["in_maintenance"]) == ("failed", True) and MAINTENANCE_MARK in left["msg"], left
