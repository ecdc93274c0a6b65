"""The lock a run holds on a host: renewed at each step, lost when another run holds it, aged never past a boot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils import _marks
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    LOCK_MARK,
    keep_lock,
    lock_age,
    read_mark,
    release_lock,
    step_lock_lost,
    write_mark,
)


def held_by(state_dir: Path, run_id: str, age: float = 0.0) -> None:
    write_mark(str(state_dir), LOCK_MARK, {"cluster": "c1", "run_id": run_id, "started": "2026-12-03T01:00:00Z",
                                           "controller": {"host": "awx-pod-2", "pid": 7}})
    then = time.time() - age
    os.utime(state_dir / LOCK_MARK, (then, then))


def test_keeping_a_lock_the_run_holds_renews_it(tmp_path: Path) -> None:
    held_by(tmp_path, "mine", age=500)
    assert keep_lock(str(tmp_path), "mine") == ""
    assert (lock_age(str(tmp_path)) or 0.0) < 5


def test_a_lock_another_run_took_over_is_lost_and_left_as_it_is(tmp_path: Path) -> None:
    held_by(tmp_path, "theirs", age=50)
    lost = keep_lock(str(tmp_path), "mine")
    assert lost.startswith("the lock of cluster c1 was taken over by run theirs, started 2026-12-03T01:00:00Z on "
                           "controller awx-pod-2 (pid 7)")
    assert (lock_age(str(tmp_path)) or 0.0) >= 49  # not renewed for the other run


def test_a_removed_or_unreadable_lock_is_lost(tmp_path: Path) -> None:
    assert "is gone from" in keep_lock(str(tmp_path), "mine")
    (tmp_path / LOCK_MARK).write_text("{not json")
    assert keep_lock(str(tmp_path), "mine").startswith("the lock of the host's cluster cannot be read")


def test_a_lock_never_ages_past_the_hosts_last_boot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Renewed 2000 s ago, then the host went down; it is up for 40 s: its holder has had 40 s to reach it.
    held_by(tmp_path, "mine", age=2000)
    monkeypatch.setattr(_marks, "seconds_since_boot", lambda: 40.0)
    assert lock_age(str(tmp_path)) == 40.0
    monkeypatch.setattr(_marks, "seconds_since_boot", lambda: 90000.0)
    assert 1999 <= (lock_age(str(tmp_path)) or 0.0) <= 2005


def test_a_step_checks_the_lock_only_for_a_run_that_holds_one_and_never_in_check_mode(tmp_path: Path) -> None:
    held_by(tmp_path, "theirs")
    params = {"state_dir": str(tmp_path), "run_id": "mine", "holds_lock": True}
    assert step_lock_lost(params, check_mode=False).startswith("the lock of cluster c1 was taken over by run theirs")
    assert step_lock_lost(params, check_mode=True) == ""
    assert step_lock_lost(dict(params, holds_lock=False), check_mode=False) == ""


def test_releasing_removes_only_the_runs_own_lock_and_nothing_in_check_mode(tmp_path: Path) -> None:
    held_by(tmp_path, "theirs")
    assert (release_lock(str(tmp_path), "mine", check_mode=False) or {})["run_id"] == "theirs"
    assert (read_mark(str(tmp_path), LOCK_MARK) or {})["run_id"] == "theirs"  # left alone
    held_by(tmp_path, "mine")
    assert (release_lock(str(tmp_path), "mine", check_mode=True) or {})["run_id"] == "mine"
    assert read_mark(str(tmp_path), LOCK_MARK) is not None
    assert (release_lock(str(tmp_path), "mine", check_mode=False) or {})["run_id"] == "mine"
    assert read_mark(str(tmp_path), LOCK_MARK) is None
    assert release_lock(str(tmp_path), "mine", check_mode=False) is None
    assert release_lock(str(tmp_path / "gone"), "mine", check_mode=False) is None
