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
