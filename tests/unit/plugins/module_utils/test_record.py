"""The host's record: what it keeps of each step, and keeping it on the host when a step ends."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ansible_collections.kvmops.rolling.plugins.module_utils._marks import JOURNAL_MARK
from ansible_collections.kvmops.rolling.plugins.module_utils._record import (
    STAGE_SUMMARY_KEYS,
    keep_record,
    record_kept_at_step_end,
    record_with_evacuation,
    record_with_stage,
    recorded_run_id,
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
