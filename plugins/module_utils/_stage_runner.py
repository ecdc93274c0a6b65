# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a stage script on the host: job files, the detached runner, polling and cancelling.

A job is one run of one stage script. It lives in ``<state_dir>/jobs/<job_id>/``: ``job.json``
(what runs, since when, in which boot, which runner process), ``stdout.log`` and ``stderr.log``
(the full output), and ``result.json`` once it has ended. Every file is written atomically and the
state dir is root-only, so a dropped connection, a controller restart or a reboot never loses a
result, and a result is only ever read back for the job id that started it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STATUS_FAILED,
    STATUS_REBOOTED,
    STATUS_RUNNING,
    STATUS_TIMEOUT,
    StageResult,
    classify_exit,
    describe_outcome,
    read_tail,
    signal_name,
    write_atomic,
)

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
TAIL_BYTES = 8192
# Seconds a timed-out script gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 5.0
# How often a waiting poll looks for the result: "at once" to a human, cheap for the host.
RESULT_CHECK_SECONDS = 0.05
# Finished jobs kept on the host (their full logs included); older ones are pruned.
KEPT_JOBS = 200
_PR_SET_CHILD_SUBREAPER = 36


class JobError(Exception):
    """A job request that cannot be honoured (unknown job, another stage still running, ...)."""


class _Cancelled(Exception):
    """Raised in the runner by the SIGTERM a cancel request sends it."""


def current_boot_id() -> str:
    with open(BOOT_ID_PATH) as handle:
        return handle.read().strip()


def process_start_ticks(pid: int) -> Optional[int]:
    """Start time of a live process in clock ticks since boot (tells a PID apart from its reuse)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[19])


def _children_map() -> Dict[int, List[int]]:
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":  # a zombie has already ended; it only waits to be reaped
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> Set[int]:
    """Every live process below ``pid`` in the process tree."""
    children = _children_map()
    found: Set[int] = set()
    pending = list(children.get(pid, []))
    while pending:
        child = pending.pop()
        if child not in found:
            found.add(child)
            pending.extend(children.get(child, []))
    return found


def _signal_all(pgid: int, pids: Set[int], signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def _reap_children() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_script_tree(proc: "subprocess.Popen[bytes]", grace: float) -> Optional[int]:
    """Stop the script's process group and every process it left below this one; return the last signal sent.

    The runner is a child subreaper, so a script's daemonised or re-parented children still hang
    below it and are found even after they left the script's process group.
    """
    me = os.getpid()
    _signal_all(proc.pid, descendants(me), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap_children()
        if proc.poll() is not None and not descendants(me):
            return signal.SIGTERM
        time.sleep(0.05)
    for _attempt in range(50):
        left = descendants(me)
        if not left and proc.poll() is not None:
            break
        _signal_all(proc.pid, left, signal.SIGKILL)
        time.sleep(0.05)
        _reap_children()
    proc.wait()
    return signal.SIGKILL


class JobStore:
    """The jobs directory of one host's state dir."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.jobs_dir = os.path.join(state_dir, "jobs")

    def prepare(self) -> None:
        """Create the state dir root-only; refuse one that others could write to."""
        for path in (self.state_dir, self.jobs_dir):
            if not os.path.isdir(path):
                os.makedirs(path, mode=0o700, exist_ok=True)
            os.chmod(path, 0o700)

    def job_dir(self, job_id: str) -> str:
        return os.path.join(self.jobs_dir, job_id)

    def path(self, job_id: str, name: str) -> str:
        return os.path.join(self.jobs_dir, job_id, name)

    def read_job(self, job_id: str) -> Optional[Dict[str, Any]]:
        try:
            with open(self.path(job_id, "job.json")) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            return None
        return data if isinstance(data, dict) else None

    def read_result(self, job_id: str) -> Optional[StageResult]:
        try:
            with open(self.path(job_id, "result.json")) as handle:
                return StageResult.from_json(handle.read(), job_id)
        except FileNotFoundError:
            return None

    def write_job(self, job_id: str, job: Mapping[str, Any]) -> None:
        write_atomic(self.path(job_id, "job.json"), json.dumps(job, sort_keys=True))

    def write_result(self, result: StageResult) -> None:
        write_atomic(self.path(result.job_id, "result.json"), result.to_json())

    def running_jobs(self, boot_id: str) -> List[Dict[str, Any]]:
        """Jobs of this boot with no result whose runner is still alive."""
        found = []
        for job_id in sorted(os.listdir(self.jobs_dir)) if os.path.isdir(self.jobs_dir) else []:
            job = self.read_job(job_id)
            if job and job.get("boot_id") == boot_id and not os.path.exists(self.path(job_id, "result.json")) \
                    and runner_alive(job):
                found.append(job)
        return found

    def prune(self, keep: int = KEPT_JOBS) -> None:
        """Remove the oldest finished jobs beyond ``keep``."""
        finished = []
        for job_id in os.listdir(self.jobs_dir):
            result_path = self.path(job_id, "result.json")
            if os.path.exists(result_path):
                finished.append((os.path.getmtime(result_path), job_id))
        for _mtime, job_id in sorted(finished)[:-keep] if len(finished) > keep else []:
            directory = self.job_dir(job_id)
            for name in os.listdir(directory):
                os.unlink(os.path.join(directory, name))
            os.rmdir(directory)


def as_run_by_this_process(job: Mapping[str, Any]) -> Dict[str, Any]:
    """The job record naming this process as its runner."""
    pid = os.getpid()
    return dict(job, runner_pid=pid, runner_start_ticks=process_start_ticks(pid))


def runner_alive(job: Mapping[str, Any]) -> bool:
    pid = job.get("runner_pid")
    if not isinstance(pid, int):
        return False
    return process_start_ticks(pid) == job.get("runner_start_ticks")


class _CancelRequest:
    """SIGTERM asks the runner to stop the script; it only interrupts the wait for the script's end."""

    requested = False
    armed = False

    @classmethod
    def on_sigterm(cls, _signum: int, _frame: Any) -> None:
        cls.requested = True
        if cls.armed:
            raise _Cancelled()


def listen_for_cancel() -> None:
    """From now on a SIGTERM to this process is a cancel request (never a sudden death of the runner)."""
    signal.signal(signal.SIGTERM, _CancelRequest.on_sigterm)


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
        if not _CancelRequest.requested:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd,
                                    close_fds=True, start_new_session=True)
        try:
            _CancelRequest.armed = True
            if _CancelRequest.requested:
                raise _Cancelled()
            if proc is not None:
                proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except _Cancelled:
            pass
        finally:
            _CancelRequest.armed = False
        if proc is not None and (timed_out or _CancelRequest.requested):
            killed_by = kill_script_tree(proc, KILL_GRACE_SECONDS)
    ended = time.time()
    cancelled = _CancelRequest.requested and not timed_out
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
    store.write_result(result)
    return result


def start_detached(store: JobStore, job: Dict[str, Any], argv: List[str], env: Mapping[str, str], cwd: str) -> None:
    """Start the job in a runner detached from this process and its connection; return once it is registered.

    The runner is a grandchild in a session of its own with no tie to the connection's file
    descriptors, so killing the ssh session, the controller or this module leaves it running.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _become_runner(store, job, argv, env, cwd, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as handle:
        registered = handle.read()
    if registered != b"registered":
        raise JobError("the stage runner did not start: %s" % registered.decode("utf-8", "replace")[-500:])


def _become_runner(store: JobStore, job: Dict[str, Any], argv: List[str], env: Mapping[str, str], cwd: str,
                   ready_fd: int) -> None:  # pragma: no cover - runs in the forked runner
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.closerange(3, ready_fd)
    os.closerange(ready_fd + 1, 65536)
    os.chdir("/")
    listen_for_cancel()
    try:
        store.write_job(job["job_id"], as_run_by_this_process(job))
        os.write(ready_fd, b"registered")
    except Exception as exc:  # the parent reports it: there is no other way out of here
        os.write(ready_fd, ("could not register the job: %s" % exc).encode())
        return
    finally:
        os.close(ready_fd)
    try:
        execute(store, job, argv, env, cwd)
    except Exception as exc:
        store.write_result(StageResult(
            job_id=job["job_id"], run_id=job["run_id"], stage=job["stage"], status=STATUS_FAILED,
            script=job["script"], boot_id=job["boot_id"], started_at=job["created_at"], ended_at=time.time(),
            msg="the stage runner failed: %s" % exc))


def poll(store: JobStore, job_id: str, wait: float) -> Tuple[str, Dict[str, Any]]:
    """Wait up to ``wait`` seconds for the job to end; return (status, result or progress fields).

    Settles a job whose host rebooted (new boot id) or whose runner vanished, writing the result
    so every later poll agrees.
    """
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        result = store.read_result(job_id)
        if result is not None:
            return result.status, _result_fields(result)
        job = store.read_job(job_id)
        if job is None:
            raise JobError("there is no stage job %r on this host (state dir %s)" % (job_id, store.state_dir))
        boot_id = current_boot_id()
        if job.get("boot_id") != boot_id:
            return _settle(store, job, STATUS_REBOOTED, boot_id,
                           "the host rebooted while the stage ran (boot id %s, now %s)" % (job.get("boot_id"), boot_id))
        if not runner_alive(job):
            if os.path.exists(store.path(job_id, "result.json")):
                continue  # it ended between the two reads
            return _settle(store, job, STATUS_FAILED, boot_id,
                           "the stage runner (pid %s) vanished without a result" % job.get("runner_pid"))
        if time.monotonic() >= deadline:
            return STATUS_RUNNING, {"job_id": job_id, "stage": job["stage"], "run_id": job["run_id"],
                                    "script": job["script"], "started_at": job["created_at"],
                                    "elapsed": round(time.time() - job["created_at"], 3), "boot_id": boot_id,
                                    "stdout_tail": read_tail(store.path(job_id, "stdout.log"), TAIL_BYTES),
                                    "stderr_tail": read_tail(store.path(job_id, "stderr.log"), TAIL_BYTES)}
        time.sleep(RESULT_CHECK_SECONDS)


def cancel(store: JobStore, job_id: str, wait: float) -> Tuple[str, Dict[str, Any]]:
    """Ask the job's runner to stop the script (SIGTERM, then SIGKILL after a grace); return its final result."""
    job = store.read_job(job_id)
    if job is None:
        raise JobError("there is no stage job %r on this host (state dir %s)" % (job_id, store.state_dir))
    if store.read_result(job_id) is None and runner_alive(job):
        os.kill(job["runner_pid"], signal.SIGTERM)
    return poll(store, job_id, max(wait, KILL_GRACE_SECONDS + 5))


def _settle(store: JobStore, job: Mapping[str, Any], status: str, boot_id: str, msg: str) -> Tuple[str, Dict[str, Any]]:
    job_id = job["job_id"]
    result = StageResult(
        job_id=job_id, run_id=job["run_id"], stage=job["stage"], status=status, script=job["script"],
        started_at=job["created_at"], ended_at=time.time(), boot_id=boot_id, msg=msg,
        duration=round(time.time() - job["created_at"], 3),
        stdout_tail=read_tail(store.path(job_id, "stdout.log"), TAIL_BYTES),
        stderr_tail=read_tail(store.path(job_id, "stderr.log"), TAIL_BYTES),
        extra={"job_boot_id": job.get("boot_id")},
    )
    store.write_result(result)
    return status, _result_fields(result)


def _result_fields(result: StageResult) -> Dict[str, Any]:
    fields = json.loads(result.to_json())
    fields.update(fields.pop("extra"))
    return fields
