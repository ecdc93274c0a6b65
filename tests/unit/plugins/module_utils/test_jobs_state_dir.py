"""The state dir: created 0700, refused when someone else could have planted it or could change it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import JobError, JobStore

NOBODY = 65534


def test_a_missing_state_dir_is_created_0700_with_its_jobs_dir(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "state"))
    store.prepare()
    for path in (tmp_path / "state", tmp_path / "state" / "jobs"):
        assert path.is_dir() and (path.stat().st_mode & 0o777) == 0o700


def test_a_state_dir_readable_by_others_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o755)
    os.chmod(tmp_path / "state", 0o755)
    JobStore(str(tmp_path / "state")).prepare()
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700


def test_a_symlinked_state_dir_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    (tmp_path / "state").symlink_to(target)
    with pytest.raises(JobError, match=r"the state dir .*/state is a symbolic link \(to .*/elsewhere\): anyone who "
                                       r"controls it can forge job results; remove it"):
        JobStore(str(tmp_path / "state")).prepare()
    assert not (target / "jobs").exists() and target.stat().st_mode & 0o777 == 0o755


def test_a_planted_symlink_for_the_jobs_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state" / "jobs").symlink_to(tmp_path)
    with pytest.raises(JobError, match=r"/state/jobs is a symbolic link"):
        JobStore(str(tmp_path / "state")).prepare()


def test_a_state_dir_writable_by_others_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    os.chmod(tmp_path / "state", 0o777)
    with pytest.raises(JobError, match=r"is writable by group or others \(mode 0777\)"):
        JobStore(str(tmp_path / "state")).prepare()


def test_a_state_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    with pytest.raises(JobError, match=r"/state is not a directory"):
        JobStore(str(tmp_path / "state")).prepare()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_state_dir_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir(mode=0o700)
    os.chown(tmp_path / "state", NOBODY, NOBODY)
    with pytest.raises(JobError, match=r"is owned by uid 65534, not by the connecting user \(uid 0\)"):
        JobStore(str(tmp_path / "state")).prepare()


def test_the_runs_with_jobs_on_record_are_read_from_the_job_ids(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "state"))
    assert store.run_ids() == []  # no jobs dir yet
    store.prepare()
    for job_id in ("r2.Maintenance-stage.0a1b", "r1.PreFlight-stage.9f8e", "r2.evacuation.77aa", ".tmp-x"):
        (tmp_path / "state" / "jobs" / job_id).mkdir()
    assert store.run_ids() == ["r1", "r2"]


def test_old_jobs_are_pruned_by_size_as_well_as_by_count(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path / "state"))
    store.prepare()
    for number in range(6):
        job_id = "run.Maintenance-stage.%d" % number
        os.mkdir(store.job_dir(job_id), 0o700)
        (Path(store.job_dir(job_id)) / "stdout.log").write_bytes(b"x" * 1000)
        (Path(store.job_dir(job_id)) / "result.json").write_text("{}")
        os.utime(store.path(job_id, "result.json"), (1000 + number, 1000 + number))
    os.mkdir(store.job_dir("run.Maintenance-stage.running"), 0o700)  # no result: still running, never pruned
    store.prune(keep=5, keep_bytes=3100)  # room for the 3 newest
    assert sorted(os.listdir(store.jobs_dir)) == ["run.Maintenance-stage.3", "run.Maintenance-stage.4",
                                                  "run.Maintenance-stage.5", "run.Maintenance-stage.running"]
    store.prune(keep=2)
    assert sorted(os.listdir(store.jobs_dir)) == ["run.Maintenance-stage.4", "run.Maintenance-stage.5",
                                                  "run.Maintenance-stage.running"]
