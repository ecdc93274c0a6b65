# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the host is about to go down: a reboot a stage script asked for and did not wait for.

A patch script often ends with ``shutdown -r +1`` or ``systemd-run --on-active=5 systemctl reboot`` and
exits 0 at once. The stage is not over then: the next step must wait for the host to go down and come
back. The evidence is read from systemd (the only init that schedules shutdowns this way); each probe
is a pure parser of what systemd shows, so it is tested without a host. Private to the collection.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Callable, List, Optional, Sequence

from ansible_collections.kvmops.rolling.plugins.module_utils._systemd import SYSTEMD_RUNTIME_DIR, systemd_is_init

# `shutdown -r +N` (and `shutdown -r HH:MM`) write this file; `shutdown -c` removes it.
SCHEDULED_SHUTDOWN_FILE = "/run/systemd/shutdown/scheduled"
SHUTDOWN_TARGETS = ("reboot.target", "poweroff.target", "halt.target", "kexec.target", "soft-reboot.target")
_SHUTDOWN_VERBS = ("reboot", "poweroff", "halt", "kexec", "soft-reboot")
_SHUTDOWN_PROGRAMS = ("reboot", "shutdown", "poweroff", "halt")

RunCommand = Callable[[Sequence[str]], str]


def scheduled_shutdown(text: str) -> Optional[str]:
    """The mode (reboot, poweroff, ...) of a shutdown systemd has scheduled, from SCHEDULED_SHUTDOWN_FILE."""
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    mode = fields.get("MODE", "").strip()
    return mode or None


def queued_shutdown_jobs(list_jobs: str) -> List[str]:
    """Shutdown targets in ``systemctl list-jobs --no-legend --plain`` (a `systemctl reboot` under way)."""
    found = []
    for line in list_jobs.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1] in SHUTDOWN_TARGETS:
            found.append(words[1])
    return found


def timer_units(list_timers: str) -> List[str]:
    """The units the timers in ``systemctl list-timers --all --no-legend --plain`` activate (last column)."""
    return [line.split()[-1] for line in list_timers.splitlines() if line.split()]


def is_shutdown_command(argv: Sequence[str]) -> bool:
    """Whether a command line shuts the host down: `systemctl reboot`, `systemctl start reboot.target`,
    `shutdown -r now`, `reboot`, ..."""
    if not argv:
        return False
    program = os.path.basename(argv[0])
    words = [word for word in argv[1:] if not word.startswith("-")]
    if program == "systemctl":
        return bool(words) and (words[0] in _SHUTDOWN_VERBS
                                or (words[0] in ("start", "isolate") and any(w in SHUTDOWN_TARGETS for w in words)))
    return program in _SHUTDOWN_PROGRAMS


def exec_start_argvs(show_exec_start: str) -> List[List[str]]:
    """The command lines in ``systemctl show -p ExecStart --value UNIT`` ("{ path=... ; argv[]=... ; ... }")."""
    return [match.group(1).split() for match in re.finditer(r"argv\[\]=([^;]*)", show_exec_start)]


def _run(argv: Sequence[str]) -> str:
    try:
        # The detached runner and the host checks run outside any AnsibleModule: no run_command there.
        return subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                              stderr=subprocess.DEVNULL, timeout=15, check=False).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return ""


def pending_reboot(run: RunCommand = _run, scheduled_file: str = SCHEDULED_SHUTDOWN_FILE,
                   systemd_dir: str = SYSTEMD_RUNTIME_DIR) -> Optional[str]:
    """What shows that the host is about to go down, in words for the report; None when nothing does."""
    try:
        with open(scheduled_file) as handle:
            mode = scheduled_shutdown(handle.read())
    except OSError:
        mode = None
    if mode:
        return "%s scheduled in %s" % (mode, scheduled_file)
    if not systemd_is_init(systemd_dir):
        return None
    jobs = queued_shutdown_jobs(run(["systemctl", "list-jobs", "--no-legend", "--plain"]))
    if jobs:
        return "systemd starting %s" % jobs[0]
    for unit in timer_units(run(["systemctl", "list-timers", "--all", "--no-legend", "--plain"])):
        for argv in exec_start_argvs(run(["systemctl", "show", "-p", "ExecStart", "--value", unit])):
            if is_shutdown_command(argv):
                return "timer-started %s runs `%s`" % (unit, " ".join(argv))
    return None
