"""Stage script lookup and vetting, exit classification, timing validation and the result format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    MAX_SECONDS,
    ScriptLookupError,
    StageResult,
    classify_exit,
    find_stage_script,
    positive_int,
    read_tail,
    stage_succeeded,
    validate_timing,
    write_atomic,
)

ROOT_ONLY = [0]
NOBODY = 65534


def repr_short(value: object) -> str:
    """A test id that stays short for a 5000-digit number (whose repr Python 3.11 refuses)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 30:
        return "huge-int"
    text = repr(value)
    return text if len(text) <= 20 else text[:17] + "..."


def make_script(directory: Path, name: str, mode: int = 0o755) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def test_no_script_means_none(tmp_path: Path) -> None:
    make_script(tmp_path, "Maintenance")
    assert find_stage_script(str(tmp_path), "PreFlight", ROOT_ONLY) is None


@pytest.mark.parametrize("name", ["PreFlight", "PreFlight.sh", "PreFlight.py"])
def test_each_accepted_name_is_found(tmp_path: Path, name: str) -> None:
    make_script(tmp_path, name)
    make_script(tmp_path, "PreFlight.txt")  # not one of the accepted names: ignored
    assert find_stage_script(str(tmp_path), "PreFlight", [os.getuid()]) == str(tmp_path / name)


def test_two_scripts_for_one_stage_name_both(tmp_path: Path) -> None:
    make_script(tmp_path, "Maintenance")
    make_script(tmp_path, "Maintenance.py")
    with pytest.raises(ScriptLookupError, match=r"one script per stage.*Maintenance, Maintenance\.py"):
        find_stage_script(str(tmp_path), "Maintenance", [os.getuid()])


@pytest.mark.parametrize(("mode", "complaint"), [
    (0o757, "writable by group or others"),
    (0o775, "writable by group or others"),
    (0o644, "not executable"),
])
def test_unsafe_modes_are_refused(tmp_path: Path, mode: int, complaint: str) -> None:
    make_script(tmp_path, "Maintenance", mode)
    with pytest.raises(ScriptLookupError, match=complaint):
        find_stage_script(str(tmp_path), "Maintenance", [os.getuid()])


def test_foreign_owner_is_refused(tmp_path: Path) -> None:
    os.chown(make_script(tmp_path, "Maintenance"), NOBODY, -1)
    with pytest.raises(ScriptLookupError, match="Maintenance is owned by uid %d; a stage script must be owned" % NOBODY):
        find_stage_script(str(tmp_path), "Maintenance", [os.getuid()])


@pytest.mark.parametrize(("where", "mode", "owner", "complaint"), [
    ("hooks", 0o777, 0, r"the hooks dir .*/etc/hooks is writable by group or others \(mode 0777\)"),
    ("hooks", 0o1777, 0, r"the hooks dir .*/etc/hooks is writable by group or others \(mode 1777\)"),
    ("hooks", 0o755, NOBODY, r"the hooks dir .*/etc/hooks is owned by uid 65534: the hooks dir and every directory"),
    ("etc", 0o775, 0, r".*/etc, above the hooks dir .*/etc/hooks, is writable by group or others \(mode 0775\)"),
    ("etc", 0o755, NOBODY, r".*/etc, above the hooks dir .*/etc/hooks, is owned by uid 65534"),
])
def test_a_hooks_dir_someone_else_could_change_is_refused(tmp_path: Path, where: str, mode: int, owner: int,
                                                          complaint: str) -> None:
    hooks = tmp_path / "etc" / "hooks"
    hooks.mkdir(parents=True)
    make_script(hooks, "Maintenance")
    target = hooks if where == "hooks" else hooks.parent
    os.chown(target, owner, -1)
    target.chmod(mode)
    with pytest.raises(ScriptLookupError, match=complaint):
        find_stage_script(str(hooks), "Maintenance", [0])


def test_a_sticky_root_parent_is_safe_and_a_symlinked_hooks_dir_is_vetted_where_it_leads(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp: nobody can rename what others made in it
    hooks = shared / "hooks"
    hooks.mkdir()
    make_script(hooks, "Maintenance")
    assert find_stage_script(str(hooks), "Maintenance", [0]) == str(hooks / "Maintenance")
    link = tmp_path / "hooks-link"
    link.symlink_to(hooks)
    assert find_stage_script(str(link), "Maintenance", [0]) == str(link / "Maintenance")
    hooks.chmod(0o777)
    with pytest.raises(ScriptLookupError, match=r"the hooks dir .*/shared/hooks is writable by group or others"):
        find_stage_script(str(link), "Maintenance", [0])


def test_a_missing_hooks_dir_has_no_scripts(tmp_path: Path) -> None:
    assert find_stage_script(str(tmp_path / "missing"), "Maintenance", [0]) is None


def test_fifo_and_directory_are_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "Maintenance")
    (tmp_path / "PreFlight").mkdir()
    with pytest.raises(ScriptLookupError, match="not a regular file \\(a FIFO\\)"):
        find_stage_script(str(tmp_path), "Maintenance", [os.getuid()])
    with pytest.raises(ScriptLookupError, match="a directory"):
        find_stage_script(str(tmp_path), "PreFlight", [os.getuid()])


def test_links_may_only_point_inside_the_hooks_dir(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    outside = make_script(tmp_path, "elsewhere.sh")
    inside = make_script(hooks, "maintenance-v2.sh")
    (hooks / "Maintenance").symlink_to(outside)
    (hooks / "PreFlight").symlink_to(inside)
    (hooks / "PostMaintenance").symlink_to(hooks / "missing")
    with pytest.raises(ScriptLookupError, match="outside the hooks dir"):
        find_stage_script(str(hooks), "Maintenance", [os.getuid()])
    assert find_stage_script(str(hooks), "PreFlight", [os.getuid()]) == str(hooks / "PreFlight")
    with pytest.raises(ScriptLookupError, match="cannot be examined"):
        find_stage_script(str(hooks), "PostMaintenance", [os.getuid()])


@pytest.mark.parametrize(("stage", "rc", "sig", "status"), [
    ("PreFlight", 0, None, "ok"),
    ("PreFlight", 70, None, "no_maintenance"),
    ("PreMaintenance", 70, None, "no_maintenance"),
    ("Maintenance", 70, None, "ok"),
    ("PostMaintenance", 70, None, "ok"),
    ("Maintenance", 1, None, "failed"),
    ("Maintenance", 71, None, "failed"),
    ("Maintenance", None, 9, "failed"),
])
def test_classify_exit(stage: str, rc: int, sig: int, status: str) -> None:
    assert classify_exit(stage, rc, sig) == status


@pytest.mark.parametrize(("status", "stage", "rebooted_ok", "succeeded"), [
    ("ok", "PreFlight", None, True),
    ("skipped", "Maintenance", None, True),
    ("no_maintenance", "PreMaintenance", None, True),
    ("rebooted", "Maintenance", None, True),
    ("rebooted", "PreMaintenance", None, False),
    ("rebooted", "Maintenance", False, False),
    ("rebooted", "PostMaintenance", True, True),
    ("timeout", "Maintenance", None, False),
    ("failed", "Maintenance", True, False),
])
def test_stage_succeeded(status: str, stage: str, rebooted_ok: bool, succeeded: bool) -> None:
    assert stage_succeeded(status, stage, rebooted_ok) is succeeded


@pytest.mark.parametrize(("timeout", "interval", "complaint"), [
    (0, 10, "stage_timeout must be a positive integer of seconds, got 0"),
    (-1, 10, "stage_timeout must be a positive integer of seconds, got -1"),
    ("-1", 10, "stage_timeout must be a positive integer of seconds, got '-1'"),
    ("abc", 10, "stage_timeout must be a positive integer of seconds, got 'abc'"),
    ("1e3", 10, "got '1e3'"),
    (3.5, 10, "got 3.5"),
    (None, 10, "got None"),
    ("\u0663", 10, "stage_timeout must be a positive integer"),  # a digit, but not an ASCII one
    (10 ** 12, 10, "stage_timeout is too large: at most 999999999 seconds, got 1000000000000"),
    (1000000000, 10, "too large: at most 999999999 seconds, got 1000000000"),
    ("0001000000000", 10, "too large: at most 999999999 seconds, got 1000000000"),
    ("9" * 5000, 10, "too large: at most 999999999 seconds, got more than 30 digits"),
    (10 ** 5000, 10, "too large: at most 999999999 seconds, got more than 30 digits"),
    (-10 ** 5000, 10, "must be a positive integer of seconds, got a huge negative number"),
    (True, 10, "stage_timeout must be a positive integer"),
    (30, 0, "ping_interval must be a positive integer"),
    (5, 10, "lower than ping_interval"),
], ids=repr_short)
def test_validate_timing_refuses(timeout: object, interval: object, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        validate_timing(timeout, interval)


def test_validate_timing_accepts_equal_and_numeric_strings() -> None:
    assert validate_timing(10, 10) == (10, 10)
    assert validate_timing("1800", " 10 ") == (1800, 10)
    assert validate_timing("0030", 1) == (30, 1)


def test_the_largest_timing_is_accepted() -> None:
    assert validate_timing(MAX_SECONDS, MAX_SECONDS) == (999999999, 999999999)


def test_positive_int_names_its_own_maximum() -> None:
    assert positive_int("rm_max_parallel_migrations", "64", maximum=64) == 64
    with pytest.raises(ValueError, match="^rm_max_parallel_migrations is too large: at most 64, got 65$"):
        positive_int("rm_max_parallel_migrations", 65, maximum=64)


def test_result_as_dict_merges_extra_and_is_written_root_only(tmp_path: Path) -> None:
    result = StageResult(job_id="run1.Maintenance.ab", run_id="run1", stage="Maintenance", status="ok", rc=0,
                         extra={"stdout_log": "/x/stdout.log"})
    path = tmp_path / "result.json"
    write_atomic(str(path), json.dumps(result.as_dict()))
    assert json.loads(path.read_text())["stdout_log"] == "/x/stdout.log"
    assert "extra" not in json.loads(path.read_text())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_write_atomic_never_writes_through_a_planted_temporary_name(tmp_path: Path) -> None:
    # The old temporary name was ".NAME.PID.tmp", opened with O_TRUNC: a symlink planted under it made root
    # overwrite its target. Every name a pid could give is planted here; the target must stay as it was.
    victim = tmp_path / "victim"
    victim.write_text("precious")
    for pid in range(os.getpid() - 2, os.getpid() + 3):
        (tmp_path / (".result.json.%d.tmp" % pid)).symlink_to(victim)
    write_atomic(str(tmp_path / "result.json"), "{}", mode=0o640)
    assert victim.read_text() == "precious"
    assert (tmp_path / "result.json").read_text() == "{}" and (tmp_path / "result.json").stat().st_mode & 0o777 == 0o640
    assert len([p for p in tmp_path.iterdir() if p.name.startswith(".result.json.")]) == 5  # only the planted


def test_write_atomic_leaves_no_temporary_file_when_the_write_fails(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_atomic(str(tmp_path / "result.json"), b"bytes, not text")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_read_tail_keeps_the_end_on_a_line_boundary(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"".join(b"line %06d\n" % i for i in range(100000)) + b"\xff last")
    tail = read_tail(str(path), 100)
    assert tail.endswith("line 099999\n\ufffd last")
    assert tail.startswith("line ")
    assert len(tail.encode()) <= 102
    assert read_tail(str(tmp_path / "missing"), 100) == ""


def test_the_gather_learns_every_stage_script_at_once_each_problem_once(tmp_path: Path) -> None:
    from ansible_collections.kvmops.rolling.plugins.module_utils._stage import stage_scripts
    make_script(tmp_path, "Maintenance")
    make_script(tmp_path, "PostMaintenance", 0o644)
    assert stage_scripts(str(tmp_path)) == (
        {"PreFlight": "skipped", "PreMaintenance": "skipped", "Maintenance": "would_run", "PostMaintenance": "failed"},
        ["%s/PostMaintenance is not executable (mode 0644); chmod 0755 it" % tmp_path])
    tmp_path.chmod(0o777)
    try:
        statuses, problems = stage_scripts(str(tmp_path))
    finally:
        tmp_path.chmod(0o700)
    assert set(statuses.values()) == {"failed"} and len(problems) == 1 and "is writable by group or others" in problems[0]
