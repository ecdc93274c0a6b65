# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one stage script to its end on the host: output to files, timeout, the kill of its whole tree.

The job plumbing around it (job files, detaching, poll, cancel) is in _jobs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import time
from typing import Any, Dict, List, Mapping, Optional

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import (
    TAIL_BYTES,
    CancelRequest,
    Cancelled,
    JobStore,
    descendants,
    listen_for_cancel,
    reap_children,
    signal_all,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STATUS_FAILED,
    STATUS_TIMEOUT,
    StageResult,
    classify_exit,
    describe_outcome,
    read_tail,
    signal_name,
)

# Seconds a timed-out script gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 5.0
_PR_SET_CHILD_SUBREAPER = 36


def kill_script_tree(proc: "subprocess.Popen[bytes]", grace: float) -> Optional[int]:
    """Stop the script's process group and every process it left below this one; return the last signal sent.

    The runner is a child subreaper, so a script's daemonised or re-parented children still hang
    below it and are found even after they left the script's process group.
    """
    me = os.getpid()
    signal_all(proc.pid, descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap_children()
        if proc.poll() is not None and not descendants(me):
            return signal.SIGTERM
        time.sleep(0.05)
    for _attempt in range(50):
        left = descendants(me)
        if not left and proc.poll() is not None:
            break
        signal_all(proc.pid, left, signal.SIGKILL)
        time.sleep(0.05)
        reap_children()
    proc.wait()
    return signal.SIGKILL


def execute(store: JobStore, job: Dict[str, Any], argv: List[str], env: Mapping[str, str], cwd: str) -> StageResult:
    """Run the job's script to its end, enforce its timeout, write and return its result.

    A SIGTERM to this process (a cancel request, or the connection of an attached run going away)
    stops the script like a timeout does, and the result says so.
    """
    job_id = job["job_id"]
    stdout_path = store.path(job_id, "stdout.log")
    stderr_path = store.path(job_id, "stderr.log")
    timeout = float(job["stage_timeout"])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # without it, a daemonised grandchild escapes the kill; the process group still goes
    listen_for_cancel()
    started = time.time()
    start_clock = time.monotonic()
    timed_out = False
    killed_by: Optional[int] = None
    proc: Optional["subprocess.Popen[bytes]"] = None
    with open(stdout_path, "ab", 0) as out, open(stderr_path, "ab", 0) as err:
        os.chmod(stdout_path, 0o600)
        os.chmod(stderr_path, 0o600)
        if not CancelRequest.requested:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd,
                                    close_fds=True, start_new_session=True)
        try:
            CancelRequest.armed = True
            if CancelRequest.requested:
                raise Cancelled()
            if proc is not None:
                proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except Cancelled:
            pass
        finally:
            CancelRequest.armed = False
        if proc is not None and (timed_out or CancelRequest.requested):
            killed_by = kill_script_tree(proc, KILL_GRACE_SECONDS)
    ended = time.time()
    cancelled = CancelRequest.requested and not timed_out
    returncode: Optional[int] = proc.returncode if proc is not None else None
    rc: Optional[int] = returncode
    signal_number: Optional[int] = None
    if returncode is not None and returncode < 0:  # Popen's way of saying a signal ended the script
        signal_number = abs(returncode)
        rc = None
    if timed_out:
        status, rc, signal_number = STATUS_TIMEOUT, None, killed_by
        msg = describe_outcome(STATUS_TIMEOUT, None, None, int(timeout))
    elif cancelled:
        status, rc, signal_number = STATUS_FAILED, None, killed_by
        how = "its process group was stopped with %s" % signal_name(killed_by) if killed_by \
            else "before the script started"
        msg = "cancelled after %.1f s, %s" % (ended - started, how)
    else:
        status = classify_exit(job["stage"], rc, signal_number)
        msg = describe_outcome(status, rc, signal_number)
    result = StageResult(
        job_id=job_id, run_id=job["run_id"], stage=job["stage"], status=status, script=job["script"], rc=rc,
        signal=signal_name(signal_number) if signal_number else None, started_at=started, ended_at=ended,
        duration=round(time.monotonic() - start_clock, 3), boot_id=job["boot_id"],
        stdout_tail=read_tail(stdout_path, TAIL_BYTES), stderr_tail=read_tail(stderr_path, TAIL_BYTES), msg=msg,
        extra={"stdout_log": stdout_path, "stderr_log": stderr_path, "cancelled": cancelled},
    )
    store.write_result(result.as_dict())
    return result
