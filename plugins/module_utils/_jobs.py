# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Long jobs on a host that outlive the connection that started them: job files, the detached runner, poll, cancel.

A job (one stage script run, one evacuation) lives in ``<state_dir>/jobs/<job_id>/``: ``job.json``
(what runs, since when, in which boot, which runner process), its logs, an optional
``progress.json`` and ``result.json`` once it has ended. Every file is written atomically and the
state dir is root-only, so a dropped connection, a controller restart or a reboot never loses a
result, and a result is only ever read back for the job id that started it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import StateDirError, prepare_state_dir
from ansible_collections.kvmops.rolling.plugins.module_utils._systemd import leave_login_session
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STATUS_FAILED,
    STATUS_REBOOTED,
    STATUS_RUNNING,
    read_tail,
    write_atomic,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import (
    CANCEL_WAIT_SECONDS,
    RESULT_CHECK_SECONDS,
    SHUTDOWN_GRACE_SECONDS,
)

BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
TAIL_BYTES = 8192
# Finished jobs kept on the host (with their capped logs); older ones are pruned.
# Bytes the finished jobs kept on a host may take together (each stream of a job is capped at a few MiB).
KEPT_JOBS_BYTES = 64 * 1024 * 1024
KEPT_JOBS = 200
# cancel() writes this into the job's dir before it sends the runner SIGTERM. A SIGTERM without it comes
# from the host going down (`systemctl reboot` and `shutdown -r` send SIGTERM to every process, in no
# particular order) or from a login session being ended, never from us.
CANCEL_FILE = "cancel.json"
# A runner that got a SIGTERM no cancel asked for writes this as it ends, without a result.
SHUTDOWN_FILE = "shutdown.json"
# A runner whose script succeeded and left a reboot pending writes this (the exit code, the evidence)
# before it waits for that reboot, so the job settled after it says what happened.
REBOOT_FILE = "reboot.json"

# Options only a job module's action plugin sets (documented by the doc fragment kvmops.rolling.rolling.job):
# which step of the job to take, and how long to wait for its end.
JOB_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "_mode": {"type": "str", "default": "start", "choices": ["start", "poll", "cancel"]},
    "_job_id": {"type": "str"},
    "_wait": {"type": "float", "default": 0.0},
}


class JobError(RollingError):
    """A job request that cannot be honoured (unknown job, another stage still running, ...)."""


# A job id names a directory under the jobs dir: no '/', no leading '.', nothing after a newline.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def checked_job_id(job_id: str) -> str:
    """The job id, once it is known to be a safe directory name (it is built from the task's run_id)."""
    if not _JOB_ID.fullmatch(job_id):
        raise JobError("job id %r is not a safe directory name: run_id may have 1 to 64 letters, digits, '-' or '_'"
                       % job_id)
    return job_id


class Cancelled(Exception):
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


def signal_all(pgid: int, pids: Set[int], signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def reap_children() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class JobStore:
    """The jobs directory of one host's state dir."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.jobs_dir = os.path.join(state_dir, "jobs")

    def prepare(self) -> None:
        """Create the state dir root-only; refuse one that someone else could have planted or could change."""
        for path in (self.state_dir, self.jobs_dir):
            try:
                prepare_state_dir(path)
            except StateDirError as exc:
                raise JobError(str(exc))

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

    def read_result(self, job_id: str) -> Optional[Dict[str, Any]]:
        """The job's result, or None while it runs; refuses a result that belongs to another job."""
        try:
            with open(self.path(job_id, "result.json")) as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        return parse_result(text, job_id)

    def write_job(self, job_id: str, job: Mapping[str, Any]) -> None:
        write_atomic(self.path(job_id, "job.json"), json.dumps(job, sort_keys=True))

    def write_result(self, result: Mapping[str, Any]) -> None:
        write_atomic(self.path(result["job_id"], "result.json"), json.dumps(result, sort_keys=True))

    def write_progress(self, job_id: str, progress: Mapping[str, Any]) -> None:
        write_atomic(self.path(job_id, "progress.json"), json.dumps(progress, sort_keys=True))

    def read_progress(self, job_id: str) -> Optional[Dict[str, Any]]:
        return self._read_note(job_id, "progress.json")

    def write_cancel_request(self, job_id: str) -> None:
        write_atomic(self.path(job_id, CANCEL_FILE), json.dumps({"requested_at": time.time()}))

    def cancel_requested(self, job_id: str) -> bool:
        return os.path.exists(self.path(job_id, CANCEL_FILE))

    def write_shutdown_note(self, job_id: str, note: Mapping[str, Any]) -> None:
        write_atomic(self.path(job_id, SHUTDOWN_FILE), json.dumps(note, sort_keys=True))

    def read_shutdown_note(self, job_id: str) -> Optional[Dict[str, Any]]:
        return self._read_note(job_id, SHUTDOWN_FILE)

    def write_reboot_note(self, job_id: str, note: Mapping[str, Any]) -> None:
        write_atomic(self.path(job_id, REBOOT_FILE), json.dumps(note, sort_keys=True))

    def read_reboot_note(self, job_id: str) -> Optional[Dict[str, Any]]:
        return self._read_note(job_id, REBOOT_FILE)

    def _read_note(self, job_id: str, name: str) -> Optional[Dict[str, Any]]:
        try:
            with open(self.path(job_id, name)) as handle:
                data = json.load(handle)
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def job_ids(self) -> List[str]:
        """Every job on record here, finished or not (none before the first job)."""
        return sorted(os.listdir(self.jobs_dir)) if os.path.isdir(self.jobs_dir) else []

    def running_jobs(self, boot_id: str) -> List[Dict[str, Any]]:
        """Jobs of this boot with no result whose runner is still alive."""
        found = []
        for job_id in self.job_ids():
            job = self.read_job(job_id)
            if job and job.get("boot_id") == boot_id and not os.path.exists(self.path(job_id, "result.json")) \
                    and runner_alive(job):
                found.append(job)
        return found

    def run_ids(self) -> List[str]:
        """The runs with a job on record here (a job id starts with its run's id, which holds no dot)."""
        return sorted({name.split(".", 1)[0] for name in self.job_ids() if "." in name and not name.startswith(".")})

    def newest_job(self, run_id: str, label: str) -> Optional[Dict[str, Any]]:
        """The newest job ``run_id`` started here with this label (a stage, the evacuation), if any."""
        newest: Optional[Dict[str, Any]] = None
        for job_id in self.job_ids():
            job = self.read_job(job_id)
            if job and job.get("run_id") == run_id and job.get("label") == label \
                    and (newest is None or job.get("created_at", 0) > newest.get("created_at", 0)):
                newest = job
        return newest

    def prune(self, keep: int = KEPT_JOBS, keep_bytes: int = KEPT_JOBS_BYTES) -> None:
        """Remove the oldest finished jobs beyond ``keep`` of them, and beyond ``keep_bytes`` on disk together."""
        finished = []
        for job_id in os.listdir(self.jobs_dir):
            result_path = self.path(job_id, "result.json")
            if os.path.exists(result_path):
                finished.append((os.path.getmtime(result_path), job_id, self._size(job_id)))
        finished.sort(reverse=True)  # newest first
        total = 0
        for index, (_mtime, job_id, size) in enumerate(finished):
            total += size
            if index >= keep or total > keep_bytes:
                directory = self.job_dir(job_id)
                for name in os.listdir(directory):
                    os.unlink(os.path.join(directory, name))
                os.rmdir(directory)

    def _size(self, job_id: str) -> int:
        directory = self.job_dir(job_id)
        return sum(os.lstat(os.path.join(directory, name)).st_size for name in os.listdir(directory))


def as_run_by_this_process(job: Mapping[str, Any]) -> Dict[str, Any]:
    """The job record naming this process as its runner."""
    pid = os.getpid()
    return dict(job, runner_pid=pid, runner_start_ticks=process_start_ticks(pid))


def runner_alive(job: Mapping[str, Any]) -> bool:
    pid = job.get("runner_pid")
    if not isinstance(pid, int):
        return False
    return process_start_ticks(pid) == job.get("runner_start_ticks")


class CancelRequest:
    """A SIGTERM stops the runner's work (a cancel, if cancel() recorded one first; else the host going
    down); it only interrupts the runner where the work has armed it."""

    requested = False
    armed = False

    @classmethod
    def on_sigterm(cls, _signum: int, _frame: Any) -> None:
        cls.requested = True
        if cls.armed:
            raise Cancelled()


def listen_for_cancel() -> None:
    """From now on a SIGTERM to this process is a cancel request (never a sudden death of the runner)."""
    signal.signal(signal.SIGTERM, CancelRequest.on_sigterm)


def start_detached(store: JobStore, job: Dict[str, Any], work: Callable[[], None],
                   keep_fds: Sequence[int] = ()) -> None:
    """Run ``work`` in a runner detached from this process and its connection; return once the job is registered.

    The runner is a grandchild in a session of its own with no tie to the connection's file
    descriptors, so killing the ssh session, the controller or this module leaves it running.
    ``work`` must write the job's result; if it raises, the runner writes a failed result instead.
    """
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked processes
        try:
            os.close(read_end)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            _become_runner(store, job, work, write_end, keep_fds)
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as handle:
        registered = handle.read()
    if registered != b"registered":
        raise JobError("the %s runner did not start: %s" % (job["label"], registered.decode("utf-8", "replace")[-500:]))


def _become_runner(store: JobStore, job: Dict[str, Any], work: Callable[[], None], ready_fd: int,
                   keep_fds: Sequence[int]) -> None:  # pragma: no cover - runs in the forked runner
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    kept = sorted({ready_fd, *keep_fds})
    for low, high in zip([3] + [fd + 1 for fd in kept], kept + [65536]):
        os.closerange(low, high)
    os.chdir("/")
    listen_for_cancel()
    record = as_run_by_this_process(job)
    try:  # out of the ssh session's scope where systemd is PID 1, so logind cannot end the runner with it
        record["unit"] = leave_login_session(job["job_id"], job["label"], os.getpid())
    except OSError as exc:
        record["unit_error"] = str(exc)
    try:
        store.write_job(job["job_id"], record)
        os.write(ready_fd, b"registered")
    except Exception as exc:  # the parent reports it: there is no other way out of here
        os.write(ready_fd, ("could not register the job: %s" % exc).encode())
        return
    finally:
        os.close(ready_fd)
    try:
        work()
    except Exception as exc:
        settle(store, job, STATUS_FAILED, job["boot_id"], "the %s runner failed: %s" % (job["label"], exc))


def parse_result(text: str, job_id: str) -> Dict[str, Any]:
    """A result file's content; refuses one that is not a result or belongs to another job (stale or foreign)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JobError("the result of job %s is not valid JSON: %s" % (job_id, exc))
    if not isinstance(data, dict) or not isinstance(data.get("status"), str):
        raise JobError("the result of job %s has no status" % job_id)
    if data.get("job_id") != job_id:
        raise JobError("the result file of job %s belongs to job %r" % (job_id, data.get("job_id")))
    return data


def _described(job: Mapping[str, Any]) -> Dict[str, Any]:
    """The job's own fields, without the runner bookkeeping (its unit, if any, stays: the operator may look)."""
    return {key: value for key, value in job.items() if key not in ("runner_pid", "runner_start_ticks", "created_at")}


def poll(store: JobStore, job_id: str, wait: float) -> Tuple[str, Dict[str, Any]]:
    """Wait up to ``wait`` seconds for the job to end; return (status, result or progress fields).

    Settles a job whose host rebooted (new boot id) or whose runner vanished, writing the result
    so every later poll agrees.
    """
    deadline = time.monotonic() + max(0.0, wait)
    while True:
        result = store.read_result(job_id)
        if result is not None:
            return result["status"], result
        job = store.read_job(job_id)
        if job is None:
            raise JobError("there is no job %r on this host (state dir %s)" % (job_id, store.state_dir))
        boot_id = current_boot_id()
        if job.get("boot_id") != boot_id:
            scheduled = store.read_reboot_note(job_id)
            return settle(store, job, STATUS_REBOOTED, boot_id, reboot_message(job, scheduled, boot_id),
                          rc=(scheduled or {}).get("script_rc"))
        shutdown = None
        if not runner_alive(job):
            if os.path.exists(store.path(job_id, "result.json")):
                continue  # it ended between the two reads
            shutdown = store.read_shutdown_note(job_id)
            if shutdown is None:
                return settle(store, job, STATUS_FAILED, boot_id, "the %s runner (pid %s) vanished without a result"
                              % (job["label"], job.get("runner_pid")))
            if not host_going_down(shutdown, time.time()):
                return settle(store, job, STATUS_FAILED, boot_id, unexplained_sigterm_message(job, shutdown))
        if time.monotonic() >= deadline:
            return STATUS_RUNNING, dict(_described(job), status=STATUS_RUNNING, started_at=job["created_at"],
                                        elapsed=round(time.time() - job["created_at"], 3), boot_id=boot_id,
                                        progress=store.read_progress(job_id), shutting_down=shutdown is not None,
                                        **_tails(store, job_id))
        time.sleep(RESULT_CHECK_SECONDS)


def reboot_message(job: Mapping[str, Any], scheduled: Optional[Mapping[str, Any]], boot_id: str) -> str:
    """How a job whose host rebooted ended: during its script, or after it, as the script had scheduled."""
    boots = "boot id %s, now %s" % (job.get("boot_id"), boot_id)
    if scheduled:
        return ("the host rebooted after the %s script exited %s and left a reboot pending (%s; %s)"
                % (job["label"].replace(" stage", ""), scheduled.get("script_rc"), scheduled.get("evidence"), boots))
    return "the host rebooted while the %s ran (%s)" % (job["label"], boots)


def host_going_down(shutdown: Mapping[str, Any], now: float) -> bool:
    """Whether a job whose runner ended on a SIGTERM nobody asked for still waits for its host's reboot."""
    noted_at = shutdown.get("noted_at")
    return isinstance(noted_at, (int, float)) and now - noted_at < SHUTDOWN_GRACE_SECONDS


def unexplained_sigterm_message(job: Mapping[str, Any], shutdown: Mapping[str, Any]) -> str:
    return ("the %s runner was stopped by a SIGTERM that no cancel asked for, and the host did not reboot within "
            "%.0f s: something killed it (its login session ending, with logind's KillUserProcesses?); the script "
            "was stopped with it (%s)" % (job["label"], SHUTDOWN_GRACE_SECONDS, shutdown.get("script", "no script")))


def adoptable_job(store: JobStore, run_id: str, label: str, succeeded: Callable[[str], bool]) -> Optional[str]:
    """The job a resumed run follows instead of doing the work again: the newest attempt of ``run_id`` at
    this work, if it still runs or ended in success. A failed attempt is never adopted: it is tried again."""
    job = store.newest_job(run_id, label)
    if job is None:
        return None
    status, _fields = poll(store, job["job_id"], 0.0)
    return job["job_id"] if status == STATUS_RUNNING or succeeded(status) else None


def cancel(store: JobStore, job_id: str) -> Tuple[str, Dict[str, Any]]:
    """Ask the job's runner to stop its work (a SIGTERM it treats as a cancel request); return the final result."""
    job = store.read_job(job_id)
    if job is None:
        raise JobError("there is no job %r on this host (state dir %s)" % (job_id, store.state_dir))
    if store.read_result(job_id) is None and runner_alive(job):
        store.write_cancel_request(job_id)  # first: the runner tells our SIGTERM from a shutdown's by it
        os.kill(job["runner_pid"], signal.SIGTERM)
    return poll(store, job_id, CANCEL_WAIT_SECONDS)


def settle(store: JobStore, job: Mapping[str, Any], status: str, boot_id: str, msg: str,
           rc: Optional[int] = None) -> Tuple[str, Dict[str, Any]]:
    """End a job its runner could not end (reboot, runner gone or failed): write and return its result."""
    now = time.time()
    result = dict(_described(job), status=status, msg=msg, rc=rc, signal=None, started_at=job["created_at"],
                  ended_at=now, duration=round(now - job["created_at"], 3), boot_id=boot_id,
                  job_boot_id=job.get("boot_id"), progress=store.read_progress(job["job_id"]),
                  **_tails(store, job["job_id"]))
    store.write_result(result)
    return status, result


def _tails(store: JobStore, job_id: str) -> Dict[str, str]:
    return {"stdout_tail": read_tail(store.path(job_id, "stdout.log"), TAIL_BYTES),
            "stderr_tail": read_tail(store.path(job_id, "stderr.log"), TAIL_BYTES)}
