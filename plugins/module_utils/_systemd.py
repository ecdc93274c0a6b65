# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where systemd is PID 1, a job's runner leaves the login session it was started from.

A runner forked from an ssh session lives in that session's scope unit: logind ends it with the session
(``KillUserProcesses=yes``, ``loginctl terminate-session``), however detached the process is. So the
runner moves itself into a transient scope unit of its own, as ``systemd-run --scope`` does, through
systemd's ``StartTransientUnit`` call (with ``busctl``, which every systemd host has): the same process,
its script and its children, now outside any session. A reboot still stops that unit like any other
(SIGTERM first), which the runner tells from a cancel. Pure argv building and one call; private.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Callable, List, Optional, Sequence

# Present only where systemd is PID 1 (sd_booted(3)).
SYSTEMD_RUNTIME_DIR = "/run/systemd/system"
UNIT_PREFIX = "kvm-rolling-maintenance-"
_UNIT_CHARS = re.compile(r"[^A-Za-z0-9:_.-]")


def _run(command: Sequence[str]) -> str:
    """Run COMMAND; "" when it succeeded, else what it said."""
    try:
        # Called by the detached runner, outside any AnsibleModule: no run_command there.
        done = subprocess.run(list(command), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,  # pylint: disable=ansible-bad-function
                              stderr=subprocess.PIPE, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if done.returncode == 0 else done.stderr.decode("utf-8", "replace").strip() or "exit %d" % done.returncode


def systemd_is_init(runtime_dir: str = SYSTEMD_RUNTIME_DIR) -> bool:
    return os.path.isdir(runtime_dir)


def scope_unit_name(job_id: str) -> str:
    """The transient scope of a job: the job id, with anything a unit name cannot hold as '_'."""
    return "%s%s.scope" % (UNIT_PREFIX, _UNIT_CHARS.sub("_", job_id))


def start_scope_command(unit: str, pid: int, description: str) -> List[str]:
    """``busctl`` arguments that put process PID into a new transient scope UNIT (StartTransientUnit, mode fail).
    Its CollectMode lets systemd forget the unit once it ends, whatever its result."""
    return ["busctl", "call", "--quiet", "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager", "StartTransientUnit", "ssa(sv)a(sa(sv))", unit, "fail",
            "3", "PIDs", "au", "1", str(pid), "Description", "s", description,
            "CollectMode", "s", "inactive-or-failed", "0"]


def leave_login_session(job_id: str, label: str, pid: int, runtime_dir: str = SYSTEMD_RUNTIME_DIR,
                        run: Callable[[Sequence[str]], str] = _run) -> Optional[str]:
    """Move process PID into the job's own scope where systemd is PID 1; return the unit's name, None elsewhere.

    Raises OSError naming systemd's answer when the move fails: the caller keeps the runner detached and says so.
    """
    if not systemd_is_init(runtime_dir):
        return None
    unit = scope_unit_name(job_id)
    command = start_scope_command(unit, pid, "kvmops.rolling %s (job %s)" % (label, job_id))
    error = run(command)
    if error:
        raise OSError("systemd did not start the transient unit %s: %s" % (unit, error))
    return unit
