# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Marks a run leaves in a host's state dir: the truth about the run lives with the hosts.

``maintenance.json``: the host is in maintenance (never a migration target); ``cluster.json``: this
run disabled the host's cluster; ``lock.json``: a run holds the host's cluster (its modification time
is the run's last sign of life, and it records how often the run renews it and after how long without a
renewal the run may be taken for gone); ``last_run.json``: the host's record in the last run that touched it,
which a resumed run goes on from. Each is a small JSON object written atomically.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Mapping, Optional

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import write_atomic

MAINTENANCE_MARK = "maintenance.json"
CLUSTER_MARK = "cluster.json"
LOCK_MARK = "lock.json"
JOURNAL_MARK = "last_run.json"
# Serialises every read-then-write of lock.json on the host (take, takeover, renewal, release) between runs.
LOCK_FLOCK = ".lock.flock"


class MarkError(RollingError):
    """A mark exists but cannot be read or parsed: the state it records is unknown."""


class LockLost(RollingError):
    """The run no longer holds the lock of the host's cluster: another run may be at work on it."""


class StateDirError(RollingError):
    """The state dir (or a dir in it) is one that someone else could have planted or could change."""


def prepare_state_dir(path: str) -> None:
    """Create PATH 0700; StateDirError naming the fix when it is a symlink, not a directory, owned by another user
    or writable by group or others (root reads job results and locks from it and writes into it: whoever controls it
    could forge results or turn root's writes wherever a symlink points)."""
    if not os.path.lexists(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link (to %s)" % os.readlink(path)
    elif not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.geteuid():
        problem = "is owned by uid %d, not by the connecting user (uid %d)" % (info.st_uid, os.geteuid())
    elif info.st_mode & 0o022:
        problem = "is writable by group or others (mode %04o)" % stat.S_IMODE(info.st_mode)
    else:
        os.chmod(path, 0o700)  # readable by others (an older umask) is only tightened: nothing could be planted
        return
    raise StateDirError("the state dir %s %s: anyone who controls it can forge job results; remove it (it is "
                        "created 0700 again) or make it a directory of the connecting user with mode 0700"
                        % (path, problem))


def read_mark(state_dir: str, name: str) -> Optional[Dict[str, Any]]:
    """The mark's content; None when it (or the state dir) does not exist."""
    path = os.path.join(state_dir, name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise MarkError("cannot read %s: %s%s; the state it records is unknown" % (
            path, exc.strerror, " (run the module as root, with become)" if exc.errno in (1, 13) else ""))
    try:
        content = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise MarkError("%s is corrupt (%s: %s); the state it records is unknown: inspect the file, then restore "
                        "or remove it" % (path, "not UTF-8" if isinstance(exc, UnicodeDecodeError)
                                          else "not valid JSON", exc))
    if not isinstance(content, dict):
        raise MarkError("%s is corrupt (not a JSON object); inspect the file, then restore or remove it" % path)
    return content


def write_mark(state_dir: str, name: str, content: Mapping[str, Any]) -> None:
    write_atomic(os.path.join(state_dir, name), json.dumps(content, sort_keys=True))


def remove_mark(state_dir: str, name: str) -> bool:
    """Remove the mark; False when there was none."""
    try:
        os.unlink(os.path.join(state_dir, name))
    except FileNotFoundError:
        return False
    return True


def describe_holder(lock: Mapping[str, Any], age: Optional[float]) -> str:
    """Who holds a lock, in the words both a refused run and the lock module use."""
    controller = lock.get("controller") or {}
    return "run %s, started %s on controller %s (pid %s), last heard from %s s ago" % (
        lock.get("run_id"), lock.get("started") or "at an unknown time", controller.get("host", "?"),
        controller.get("pid", "?"), "?" if age is None else "%.0f" % age)


def mark_age(state_dir: str, name: str) -> Optional[float]:
    """Seconds since the mark was last written or renewed, by the host's clock; None when there is none."""
    try:
        return max(0.0, round(time.time() - os.stat(os.path.join(state_dir, name)).st_mtime, 1))
    except (FileNotFoundError, NotADirectoryError):
        return None


def seconds_since_boot() -> Optional[float]:
    try:
        with open("/proc/uptime") as handle:
            return float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def lock_age(state_dir: str) -> Optional[float]:
    """How long the lock's holder has not been heard from: never counted from before the host's last boot (while
    the host was down, and until it was back, its holder could not renew it: a holder waiting for the host's
    reboot is at work, not gone). None when there is no lock."""
    age = mark_age(state_dir, LOCK_MARK)
    uptime = seconds_since_boot()
    if age is None or uptime is None:
        return age
    return min(age, round(uptime, 1))


def lock_renewed_at(state_dir: str) -> Optional[float]:
    """When the lock was last renewed (its modification time): a taker checks it did not change since it judged."""
    try:
        return os.stat(os.path.join(state_dir, LOCK_MARK)).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None


@contextmanager
def lock_guard(state_dir: str) -> Iterator[None]:
    """Hold the host's lock flock: no other run reads-then-writes lock.json meanwhile."""
    with open(os.path.join(state_dir, LOCK_FLOCK), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def keep_lock(state_dir: str, run_id: str) -> str:
    """Renew the lock ``run_id`` holds on this host (its age restarts), under the lock flock so that a takeover
    cannot come between the check and the renewal. "" when it holds it; else why it no longer does: another run
    may now work on the cluster, so the caller must stop, never go on."""
    gone = "the lock of the host's cluster is gone from %s (another run may have taken it over and released it)" \
        % state_dir
    try:
        with lock_guard(state_dir):
            lock = read_mark(state_dir, LOCK_MARK)
            if not lock:
                return gone
            if lock.get("run_id") != run_id:
                return "the lock of cluster %s was taken over by %s" % (
                    lock.get("cluster", "?"), describe_holder(lock, lock_age(state_dir)))
            os.utime(os.path.join(state_dir, LOCK_MARK))
    except MarkError as exc:
        return "the lock of the host's cluster cannot be read (%s)" % exc
    except (FileNotFoundError, NotADirectoryError):
        return gone
    except OSError as exc:
        return "the lock in %s could not be renewed (%s): another run could take it for a stale one" % (
            state_dir, exc.strerror)
    return ""


def release_lock(state_dir: str, run_id: str, check_mode: bool) -> Optional[Dict[str, Any]]:
    """Release the lock ``run_id`` holds on this host, under the lock flock; returns the lock found (None when
    there was none), which is left alone when another run holds it. Nothing is written in check mode, not even
    the flock file."""
    if check_mode or not os.path.isdir(state_dir):
        return read_mark(state_dir, LOCK_MARK)
    with lock_guard(state_dir):
        lock = read_mark(state_dir, LOCK_MARK)
        if lock is not None and lock.get("run_id") == run_id:
            remove_mark(state_dir, LOCK_MARK)
    return lock


def step_lock_lost(params: Mapping[str, Any], check_mode: bool) -> str:
    """Before a host step of a run that holds the lock (``holds_lock``): renew it, and say why the step must not go on
    when the run no longer holds it. "" otherwise, and always in check mode (a check run takes no lock)."""
    if check_mode or not params.get("holds_lock"):
        return ""
    return keep_lock(params["state_dir"], params["run_id"])
