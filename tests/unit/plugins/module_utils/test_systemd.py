"""Where systemd is PID 1 the runner moves into a transient scope of its own; elsewhere it stays detached."""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils import _systemd as systemd


def test_the_scope_is_named_after_the_job() -> None:
    assert systemd.scope_unit_name("r1.Maintenance-stage.ab12") == "kvm-rolling-maintenance-r1.Maintenance-stage.ab12.scope"
    assert systemd.scope_unit_name("a b/c") == "kvm-rolling-maintenance-a_b_c.scope"


def test_the_call_is_start_transient_unit_with_the_pid() -> None:
    command = systemd.start_scope_command("kvm-rolling-maintenance-x.scope", 4242, "kvmops.rolling Maintenance stage")
    assert command[:7] == ["busctl", "call", "--quiet", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                           "org.freedesktop.systemd1.Manager", "StartTransientUnit"]
    # signature, name, mode, then 3 properties (each name, type, value) and no auxiliary units
    assert command[7:] == ["ssa(sv)a(sa(sv))", "kvm-rolling-maintenance-x.scope", "fail", "3",
                           "PIDs", "au", "1", "4242", "Description", "s", "kvmops.rolling Maintenance stage",
                           "CollectMode", "s", "inactive-or-failed", "0"]


def test_without_systemd_as_init_the_runner_stays_where_it_is(tmp_path: Path) -> None:
    calls: List[Sequence[str]] = []
    assert systemd.leave_login_session("j1", "evacuation", 7, runtime_dir=str(tmp_path / "none"),
                                       run=lambda command: calls.append(command) or "") is None
    assert calls == []


def test_with_systemd_the_runner_moves_into_its_scope(tmp_path: Path) -> None:
    calls: List[Sequence[str]] = []
    unit = systemd.leave_login_session("j1", "Maintenance stage", 7, runtime_dir=str(tmp_path),
                                       run=lambda command: calls.append(command) or "")
    assert unit == "kvm-rolling-maintenance-j1.scope" and calls[0][-8] == "7"


def test_a_refused_move_says_what_systemd_answered(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="did not start the transient unit kvm-rolling-maintenance-j1.scope: "
                                      "Access denied"):
        systemd.leave_login_session("j1", "evacuation", 7, runtime_dir=str(tmp_path), run=lambda _c: "Access denied")
