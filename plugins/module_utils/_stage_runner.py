# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one stage script to its end on the host: output to files, timeout, the kill of its whole tree.

The job plumbing around it (job files, detaching, poll, cancel) is in _jobs.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import (
    TAIL_BYTES,
    CancelRequest,
    Cancelled,
    JobStore,
    descendants,
    listen_for_cancel,
    process_start_ticks,
    reap_children,
    signal_all,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._output_cap import OutputCap
from ansible_collections.kvmops.rolling.plugins.module_utils._reboot import pending_reboot
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STATUS_FAILED,
    STATUS_OK,
    STATUS_TIMEOUT,
    StageResult,
    classify_exit,
    describe_outcome,
    mask_secrets,
    read_tail,
    signal_name,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import (
    CONNECTION_CHECK_SECONDS,
    KILL_GRACE_SECONDS,
    OUTPUT_CHECK_SECONDS,
    REBOOT_CHECK_SECONDS,
    SHUTDOWN_SIGNAL_GRACE_SECONDS,
)

_PR_SET_CHILD_SUBREAPER = 36

ConnectionCheck = Callable[[], Optional[str]]


class ConnectionLost(Exception):
    """The connection an attached runner belongs to is gone."""


def connection_watch(output_fd: int = 1) -> ConnectionCheck:
    """For a runner attached to its connection (the module process of the agent executor): a check that
    says why the connection is gone, or None while it lasts. Gone: the ssh session that started this
    process ended (its parent changed or died), the pipe the module answers on was closed, or a SIGHUP
    came (sshd hanging up)."""
    parent = os.getppid()
    parent_ticks = process_start_ticks(parent)
    hangup = []
    signal.signal(signal.SIGHUP, lambda _signum, _frame: hangup.append(True))
    watcher = select.poll()
    watcher.register(output_fd, select.POLLERR | select.POLLHUP)

    def lost() -> Optional[str]:
        if hangup:
            return "the ssh session hung up (SIGHUP)"
        if os.getppid() != parent or process_start_ticks(parent) != parent_ticks:
            return "the ssh session that ran it (pid %d) ended" % parent
        if any(events & (select.POLLERR | select.POLLHUP) for _fd, events in watcher.poll(0)):
            return "the connection's pipe was closed"
        return None
    return lost


def wait_script(proc: "subprocess.Popen[bytes]", timeout: float, cap: OutputCap,
                lost: Optional[ConnectionCheck] = None) -> None:
    """proc.wait(timeout), trimming the script's output files meanwhile, and raising ConnectionLost as soon as the
    connection of an attached runner is gone."""
    deadline = time.monotonic() + timeout
    interval = CONNECTION_CHECK_SECONDS if lost is not None else OUTPUT_CHECK_SECONDS
    while True:
        try:
            proc.wait(timeout=max(0.0, min(interval, deadline - time.monotonic())))
            return
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
        cap.check()
        why = lost() if lost is not None else None
        if why:
            raise ConnectionLost(why)


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


def sigterm_followed(grace: float) -> bool:
    """Whether a SIGTERM reaches this runner within ``grace`` seconds (the host going down signals everyone)."""
    deadline = time.monotonic() + grace
    while not CancelRequest.requested and time.monotonic() < deadline:
        time.sleep(0.05)
    return CancelRequest.requested


def await_pending_reboot(pending: Callable[[], Optional[str]], deadline: float) -> str:
    """Wait for the reboot a script that succeeded left pending (``shutdown -r +1; exit 0``): "interrupted"
    when a SIGTERM comes (the host going down, or a cancel), "withdrawn" once nothing shows it pending any
    more (``shutdown -c``), "timeout" at the stage's deadline."""
    try:
        CancelRequest.armed = True
        while True:
            if CancelRequest.requested:
                raise Cancelled()
            if time.monotonic() >= deadline:
                return "timeout"
            time.sleep(REBOOT_CHECK_SECONDS)
            if pending() is None:
                return "withdrawn"
    except Cancelled:
        return "interrupted"
    finally:
        CancelRequest.armed = False


def execute(store: JobStore, job: Dict[str, Any], argv: List[str], env: Mapping[str, str], cwd: str,
            pending: Callable[[], Optional[str]] = pending_reboot,
            attached: Optional[ConnectionCheck] = None, secrets: Sequence[str] = (),
            script_fd: Optional[int] = None) -> Optional[StageResult]:
    """Run the job's script to its end, enforce its timeout, write and return its result.

    A SIGTERM to this process stops the script like a timeout does. If cancel() recorded a request
    first, the result says cancelled. Otherwise the host is going down: the runner notes it and ends
    without a result (returning None), so the job is settled as rebooted once the host is back, and
    as failed if it does not reboot (_jobs.poll). A script that succeeded but left a reboot pending
    (``pending``) has not ended its stage: the runner waits for that reboot, within the stage timeout.
    An ``attached`` runner (agent executor) stops the script's whole tree as soon as its connection is
    gone (``attached`` says why) and fails the stage naming the lost connection: never unsupervised.
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
    interrupted = False  # by a SIGTERM to this runner, before the script ended on its own
    disconnected = ""  # why the connection of an attached runner is gone
    killed_by: Optional[int] = None
    proc: Optional["subprocess.Popen[bytes]"] = None
    cap = OutputCap({"stdout": stdout_path, "stderr": stderr_path})
    with open(stdout_path, "ab", 0) as out, open(stderr_path, "ab", 0) as err:
        os.chmod(stdout_path, 0o600)
        os.chmod(stderr_path, 0o600)
        if not CancelRequest.requested:
            # Executed from the descriptor the script was vetted through: a file swapped in since never runs.
            # Its own session, fds and output files: more than run_command gives, and outside any AnsibleModule.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd,  # pylint: disable=ansible-bad-function
                                    close_fds=True, start_new_session=True,
                                    executable=None if script_fd is None else "/proc/self/fd/%d" % script_fd,
                                    pass_fds=() if script_fd is None else (script_fd,))
        try:
            CancelRequest.armed = True
            if CancelRequest.requested:
                raise Cancelled()
            if proc is not None:
                wait_script(proc, timeout, cap, attached)
        except subprocess.TimeoutExpired:
            timed_out = True
        except Cancelled:
            interrupted = True
        except ConnectionLost as exc:
            disconnected = str(exc)
        finally:
            CancelRequest.armed = False
        if proc is not None and proc.returncode is not None and proc.returncode < 0:
            interrupted = sigterm_followed(SHUTDOWN_SIGNAL_GRACE_SECONDS)
        if proc is not None and (timed_out or interrupted or disconnected):
            killed_by = kill_script_tree(proc, KILL_GRACE_SECONDS)
    returncode: Optional[int] = proc.returncode if proc is not None else None
    rc: Optional[int] = returncode
    signal_number: Optional[int] = None
    if returncode is not None and returncode < 0:  # Popen's way of saying a signal ended the script
        signal_number = abs(returncode)
        rc = None
    awaited, evidence = "none", None
    if proc is not None and not (timed_out or interrupted or disconnected) \
            and classify_exit(job["stage"], rc, None) == STATUS_OK:
        evidence = pending()
        if evidence is not None:  # noted first: a hard reset while the runner waits still says what happened
            store.write_reboot_note(job_id, {"script_rc": rc, "evidence": evidence})
            awaited = await_pending_reboot(pending, start_clock + timeout)
            interrupted = awaited == "interrupted"
    ended = time.time()
    cancelled = interrupted and not timed_out
    if cancelled and not store.cancel_requested(job_id):
        store.write_shutdown_note(job_id, {"noted_at": ended, "boot_id": job["boot_id"], "script": job["script"]})
        return None
    if timed_out:
        status, rc, signal_number = STATUS_TIMEOUT, None, killed_by
        msg = describe_outcome(STATUS_TIMEOUT, None, None, int(timeout))
    elif cancelled:
        status, rc, signal_number = STATUS_FAILED, None, killed_by
        how = "its process group was stopped with %s" % signal_name(killed_by) if killed_by \
            else "before the script started"
        msg = "cancelled after %.1f s, %s" % (ended - started, how)
    elif disconnected:
        status, rc, signal_number = STATUS_FAILED, None, killed_by
        msg = ("the connection was lost while the stage ran attached to it (agent executor): %s; %s"
               % (disconnected, "the script's process tree was stopped with %s" % signal_name(killed_by)
                  if killed_by else "the script had ended"))
    elif awaited == "timeout":
        status = STATUS_TIMEOUT
        msg = ("the script exited %s and %s, but the host had not gone down by the stage timeout of %d s"
               % (rc, evidence, int(timeout)))
    else:
        status = classify_exit(job["stage"], rc, signal_number)
        msg = describe_outcome(status, rc, signal_number)
        if awaited == "withdrawn":
            msg += "; the reboot it left pending (%s) was called off before it came" % evidence
    cap.check(final=True)
    result = StageResult(
        job_id=job_id, run_id=job["run_id"], stage=job["stage"], status=status, script=job["script"], rc=rc,
        signal=signal_name(signal_number) if signal_number else None, started_at=started, ended_at=ended,
        duration=round(time.monotonic() - start_clock, 3), boot_id=job["boot_id"],
        stdout_tail=mask_secrets(read_tail(stdout_path, TAIL_BYTES), secrets),
        stderr_tail=mask_secrets(read_tail(stderr_path, TAIL_BYTES), secrets), msg=msg,
        extra={"stdout_log": stdout_path, "stderr_log": stderr_path, "cancelled": cancelled,
               "connection_lost": disconnected, "output_dropped": dict(cap.dropped)},
    )
    store.write_result(result.as_dict())
    return result
