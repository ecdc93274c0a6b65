"""The host's record: what it keeps of each step, and keeping it on the host when a step ends."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._marks import JOURNAL_MARK
from ansible_collections.kvmops.rolling.plugins.module_utils._record import (
    STAGE_SUMMARY_KEYS,
    closed_record,
    evacuation_outcome,
    keep_record,
    outcome_aborts_run,
    record_after_evacuation,
    record_after_stage,
    record_kept_at_step_end,
    record_with_evacuation,
    record_with_stage,
    recorded_run_id,
    stage_outcome,
)

RECORD = {"host": "hv1", "status": "in_progress", "stages": {"PreFlight": {"status": "success"}}}


def test_a_stage_joins_the_stages_before_it_without_changing_the_record_given() -> None:
    result = {"status": "failed", "rc": 4, "succeeded": False, "msg": "exit 4", "job_id": "r.PreMaintenance.1"}
    record = record_with_stage(RECORD, "PreMaintenance", result)
    assert list(record["stages"]) == ["PreFlight", "PreMaintenance"]
    assert set(record["stages"]["PreMaintenance"]) == set(STAGE_SUMMARY_KEYS)  # job_id is not the report's
    assert record["stages"]["PreMaintenance"]["rc"] == 4 and record["stages"]["PreMaintenance"]["signal"] is None
    assert RECORD["stages"] == {"PreFlight": {"status": "success"}}


def test_the_evacuation_keeps_what_the_report_shows_of_it() -> None:
    record = record_with_evacuation(RECORD, {"status": "ok", "moved": 2, "moves": [], "in_maintenance": True,
                                             "job_id": "r.evacuation.1"})
    assert record["evacuation"] == {"status": "ok", "moved": 2, "moves": []}
    assert "evacuation" not in RECORD


def test_a_record_is_kept_only_once_its_step_has_ended_and_never_in_check_mode(tmp_path: Path) -> None:
    state_dir = str(tmp_path / "state")
    assert record_kept_at_step_end(state_dir, "run-1", "running", RECORD, False) == {}
    assert record_kept_at_step_end(state_dir, "run-1", "success", RECORD, True) == {}
    assert record_kept_at_step_end(state_dir, "run-1", "success", None, False) == {}
    assert not os.path.exists(state_dir)
    assert record_kept_at_step_end(state_dir, "run-1", "success", RECORD, False) == {"record_kept": True}
    kept = json.loads((tmp_path / "state" / JOURNAL_MARK).read_text())
    assert kept["run_id"] == "run-1" and kept["record"] == RECORD
    assert recorded_run_id(state_dir) == "run-1"


def test_a_record_that_cannot_be_kept_says_why_and_the_step_stands(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    kept = record_kept_at_step_end(str(tmp_path / "state"), "run-1", "failed", RECORD, False)
    assert kept["record_kept"] is False and str(tmp_path / "state") in kept["record_error"]
    assert not (tmp_path / "elsewhere" / JOURNAL_MARK).exists()


def test_a_corrupt_record_is_replaced(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_MARK).write_text("{not json")
    os.chmod(tmp_path, 0o700)
    assert recorded_run_id(str(tmp_path)) is None
    keep_record(str(tmp_path), "run-2", RECORD)
    assert recorded_run_id(str(tmp_path)) == "run-2"


OPEN = dict(RECORD, start="2026-12-03T01:00:00Z")


def stage_result(status: str, succeeded: bool, **extra: object) -> dict:
    return dict({"status": status, "succeeded": succeeded, "rc": None, "msg": status}, **extra)


@pytest.mark.parametrize("stage,result,outcome", [
    ("PreFlight", stage_result("no_maintenance", True), ("skip", "Pre-flight stage set to avoid maintenance")),
    ("PreMaintenance", stage_result("no_maintenance", True), ("skip", "Pre-maintenance stage set to avoid maintenance")),
    ("PreMaintenance", stage_result("failed", False, msg="exit 4"), ("failure", "exit 4")),
    ("Maintenance", stage_result("success", True), None),
    ("Maintenance", stage_result("rebooted", True), None),
    ("Maintenance", stage_result("timeout", False, msg="timed out"), ("failure", "timed out")),
    ("PostMaintenance", stage_result("failed", False, msg="exit 6"), ("postfailure", "exit 6")),
    ("PostMaintenance", stage_result("skipped", True), ("updated", "")),
    ("Maintenance", stage_result("failed", False, lock_lost="taken over by run B"), ("lost_lock", "taken over by run B")),
])
def test_what_each_stage_result_makes_of_the_hosts_turn(stage: str, result: dict, outcome: object) -> None:
    assert stage_outcome(stage, result) == outcome


@pytest.mark.parametrize("kind,forced,aborts", [
    ("skip", False, False), ("failure", False, True), ("failure", True, False), ("postfailure", True, False),
    ("critical", True, True), ("lost_lock", True, True), ("updated", False, False),
])
def test_which_outcomes_abort_the_run(kind: str, forced: bool, aborts: bool) -> None:
    assert outcome_aborts_run(kind, forced) is aborts


def test_a_closed_record_says_how_and_where_the_turn_ended() -> None:
    closed = closed_record(OPEN, "failure", "PreMaintenance", "exit 4", forced=True, check_mode=False)
    assert (closed["status"], closed["kind"], closed["stage"], closed["reason"], closed["aborts_run"]) == \
        ("failed", "failure", "PreMaintenance", "exit 4", False)
    assert closed["end"].endswith("Z") and OPEN["status"] == "in_progress"
    assert closed_record(OPEN, "skip", "Maintenance", "none", False, False)["status"] == "skipped"
    assert closed_record(OPEN, "updated", "PostMaintenance", "", False, False)["status"] == "updated"
    assert closed_record(OPEN, "updated", "PostMaintenance", "", False, True)["status"] == "planned"
    lost = closed_record(OPEN, "lost_lock", "Maintenance", "taken over by run B", forced=True, check_mode=False)
    assert lost["reason"] == "this run no longer holds its lock, so it stopped: taken over by run B"
    assert lost["aborts_run"]
    with pytest.raises(ValueError, match="unknown outcome 'done'"):
        closed_record(OPEN, "done", "PostMaintenance", "", False, False)


def test_a_stage_closes_the_record_only_when_its_result_ends_the_turn() -> None:
    going_on = record_after_stage(OPEN, "Maintenance", stage_result("rebooted", True), False, False)
    assert going_on["status"] == "in_progress" and going_on["stages"]["Maintenance"]["status"] == "rebooted"
    ended = record_after_stage(OPEN, "PostMaintenance", stage_result("success", True), False, False)
    assert ended["status"] == "updated" and "PostMaintenance" in ended["stages"]
    closed = closed_record(OPEN, "failure", "capacity", "no room", False, False)
    assert record_after_stage(closed, "PostMaintenance", stage_result("failed", False), False, False)["kind"] == "failure"


def test_an_evacuation_that_failed_or_left_a_guest_on_two_hosts_closes_the_record() -> None:
    assert evacuation_outcome({"status": "ok"}) is None and evacuation_outcome({"status": "would_run"}) is None
    assert evacuation_outcome({"status": "failed", "msg": "timeout"}) == ("failure", "timeout")
    assert evacuation_outcome({"status": "failed", "msg": "split", "on_both": ["vm1"]}) == ("critical", "split")
    after = record_after_evacuation(OPEN, {"status": "failed", "msg": "split", "on_both": ["vm1"]}, True, False)
    assert after["kind"] == "critical" and after["stage"] == "maintenance mode" and after["aborts_run"]
    assert after["evacuation"]["on_both"] == ["vm1"]
