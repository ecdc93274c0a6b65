"""What shows a reboot a stage script scheduled and did not wait for, read from systemd's own output."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils import _reboot as reboot

# What `systemd-run --on-active=5 systemctl reboot` leaves, as systemd 252 (Debian 12) prints it.
LIST_TIMERS = (
    "Wed 2026-12-02 16:00:05 UTC 4s left n/a n/a run-u42.timer run-u42.service\n"
    "Thu 2026-12-03 00:00:00 UTC 7h left Wed 2026-12-02 00:00:00 UTC 16h ago logrotate.timer logrotate.service\n")
SHOW_EXEC_START = {
    "run-u42.service": "{ path=/usr/bin/systemctl ; argv[]=/usr/bin/systemctl reboot ; ignore_errors=no ; "
                       "start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
    "logrotate.service": "{ path=/usr/sbin/logrotate ; argv[]=/usr/sbin/logrotate /etc/logrotate.conf ; "
                         "ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
}


def systemctl(outputs: Dict[str, str], calls: List[List[str]]) -> reboot.RunCommand:
    def run(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        if argv[1] == "show":
            return SHOW_EXEC_START.get(argv[-1], "")
        return outputs.get(argv[1], "")
    return run


@pytest.fixture
def systemd_host(tmp_path: Path) -> Dict[str, str]:
    (tmp_path / "system").mkdir()
    return {"scheduled_file": str(tmp_path / "scheduled"), "systemd_dir": str(tmp_path / "system")}


def test_a_shutdown_scheduled_with_shutdown_r_is_pending(systemd_host: Dict[str, str]) -> None:
    Path(systemd_host["scheduled_file"]).write_text("USEC=1796227200000000\nWARN_WALL=1\nMODE=reboot\n")
    calls: List[List[str]] = []
    found = reboot.pending_reboot(systemctl({}, calls), **systemd_host)
    assert found == "reboot scheduled in %s" % systemd_host["scheduled_file"]
    assert calls == []  # the file is enough


def test_a_timer_that_runs_systemctl_reboot_is_pending(systemd_host: Dict[str, str]) -> None:
    calls: List[List[str]] = []
    found = reboot.pending_reboot(systemctl({"list-timers": LIST_TIMERS}, calls), **systemd_host)
    assert found == "timer-started run-u42.service runs `/usr/bin/systemctl reboot`"


def test_a_queued_reboot_target_is_pending(systemd_host: Dict[str, str]) -> None:
    jobs = "1234 reboot.target start waiting\n1240 systemd-reboot.service start waiting\n"
    found = reboot.pending_reboot(systemctl({"list-jobs": jobs}, []), **systemd_host)
    assert found == "systemd starting reboot.target"


def test_ordinary_timers_and_no_schedule_are_nothing_pending(systemd_host: Dict[str, str]) -> None:
    timers = LIST_TIMERS.splitlines()[1] + "\n"
    assert reboot.pending_reboot(systemctl({"list-timers": timers}, []), **systemd_host) is None


def test_without_systemd_only_the_schedule_file_is_read(tmp_path: Path) -> None:
    calls: List[List[str]] = []
    assert reboot.pending_reboot(systemctl({"list-jobs": "1 reboot.target start waiting"}, calls),
                                 scheduled_file=str(tmp_path / "none"), systemd_dir=str(tmp_path / "none")) is None
    assert calls == []


@pytest.mark.parametrize(("argv", "shuts_down"), [
    (["/usr/bin/systemctl", "reboot"], True),
    (["systemctl", "--no-block", "poweroff"], True),
    (["systemctl", "start", "reboot.target"], True),
    (["/sbin/shutdown", "-r", "now"], True),
    (["reboot"], True),
    (["systemctl", "restart", "libvirtd"], False),
    (["systemctl", "start", "apt-daily.service"], False),
    (["/usr/sbin/logrotate", "/etc/logrotate.conf"], False),
    ([], False),
])
def test_is_shutdown_command(argv: List[str], shuts_down: bool) -> None:
    assert reboot.is_shutdown_command(argv) is shuts_down


def test_parsers_take_what_systemd_prints() -> None:
    assert reboot.scheduled_shutdown("USEC=1\nMODE=poweroff\n") == "poweroff"
    assert reboot.scheduled_shutdown("garbage") is None
    assert reboot.timer_units(LIST_TIMERS) == ["run-u42.service", "logrotate.service"]
    assert reboot.exec_start_argvs(SHOW_EXEC_START["run-u42.service"]) == [["/usr/bin/systemctl", "reboot"]]
    assert reboot.queued_shutdown_jobs("9 kexec.target start waiting\n10 foo.service start running\n") == \
        ["kexec.target"]
