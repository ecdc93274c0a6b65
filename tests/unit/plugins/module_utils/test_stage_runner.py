"""The host-side runner, on this machine's real processes: exits, timeouts, detaching, reboots, cancels."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils import _jobs as jobs
from ansible_collections.kvmops.rolling.plugins.module_utils import _stage_runner as runner
from ansible_collections.kvmops.rolling.plugins.module_utils._output_cap import KEPT_HEAD_BYTES, KEPT_TAIL_BYTES
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import open_stage_script, write_atomic


@pytest.fixture
def store(tmp_path: Path) -> jobs.JobStore:
    job_store = jobs.JobStore(str(tmp_path / "state"))
    job_store.prepare()
    return job_store


@pytest.fixture
def boot_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "boot_id"
    path.write_text(str(uuid.uuid4()) + "\n")
    monkeypatch.setattr(jobs, "BOOT_ID_PATH", str(path))
    return path


def new_job(store: jobs.JobStore, script: Path, stage: str = "Maintenance", timeout: int = 30) -> Dict[str, Any]:
    job_id = "run.%s.%s" % (stage, uuid.uuid4().hex[:8])
    os.mkdir(store.job_dir(job_id), 0o700)
    return {"job_id": job_id, "run_id": "run", "kind": "stage", "label": "%s stage" % stage, "stage": stage,
            "script": str(script), "argv": [str(script)],
            "created_at": time.time(), "boot_id": jobs.current_boot_id(), "stage_timeout": timeout,
            "executor": "service"}


def start(store: jobs.JobStore, job: Dict[str, Any], script: Path, cwd: Path) -> None:
    jobs.start_detached(store, job, lambda: runner.execute(store, job, [str(script)], dict(os.environ), str(cwd)))


def shell_script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / ("script-%s.sh" % uuid.uuid4().hex[:6])
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def unique_duration() -> str:
    """A sleep duration no other process on the machine uses, to find the script's processes by."""
    return "300.%09d" % (uuid.uuid4().int % 10 ** 9)


def processes_with(marker: str) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.parametrize(("body", "stage", "status", "rc", "sig"), [
    ("echo hi; exit 0", "Maintenance", "ok", 0, None),
    ("exit 70", "PreMaintenance", "no_maintenance", 70, None),
    ("exit 70", "PostMaintenance", "ok", 70, None),
    ("echo broken >&2; exit 3", "Maintenance", "failed", 3, None),
    ("kill -USR1 $$", "Maintenance", "failed", None, "SIGUSR1"),
])
def test_execute_exit_paths(tmp_path: Path, store: jobs.JobStore, boot_id: Path, monkeypatch: pytest.MonkeyPatch,
                            body: str, stage: str, status: str, rc: int, sig: str) -> None:
    monkeypatch.setattr(runner, "SHUTDOWN_SIGNAL_GRACE_SECONDS", 0.2)  # a signal death waits for a shutdown's
    script = shell_script(tmp_path, body)
    job = new_job(store, script, stage)
    result = runner.execute(store, job, [str(script)], dict(os.environ), str(tmp_path))
    assert (result.status, result.rc, result.signal) == (status, rc, sig)
    assert store.read_result(job["job_id"]) == result.as_dict()


def test_the_detached_runner_runs_the_file_the_script_was_vetted_through_whatever_is_swapped_in_after(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script = hooks / "Maintenance"
    script.write_text('#!/bin/sh\necho "vetted, I am $RM_SCRIPT"\n')
    script.chmod(0o755)
    opened = open_stage_script(str(hooks), "Maintenance", [os.getuid()])
    assert opened is not None
    path, fd = opened
    swapped = hooks / "swapped"
    swapped.write_text("#!/bin/sh\necho swapped\n")
    swapped.chmod(0o755)
    os.rename(swapped, script)  # between the check and the run, by whoever could write the hooks dir
    job = new_job(store, script)
    try:
        env = dict(os.environ, RM_SCRIPT=path)
        jobs.start_detached(store, job, lambda: runner.execute(store, job, [path], env, str(hooks), script_fd=fd),
                            keep_fds=(fd,))
    finally:
        os.close(fd)
    status, result = jobs.poll(store, job["job_id"], 20)
    assert status == "ok" and result["stdout_tail"] == "vetted, I am %s\n" % path, result


def test_timeout_kills_the_whole_tree_even_what_ignores_sigterm_or_left_the_group(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "KILL_GRACE_SECONDS", 1.0)
    marker = unique_duration()
    script = shell_script(tmp_path, "trap '' TERM\nsetsid sleep %s &\nsleep %s &\nsleep %s\n" % (marker, marker, marker))
    job = new_job(store, script, timeout=1)
    result = runner.execute(store, job, [str(script)], dict(os.environ), str(tmp_path))
    assert result.status == "timeout" and result.signal == "SIGKILL" and result.rc is None
    assert "timed out after 1 s" in result.msg
    assert processes_with(marker) == []


def test_large_output_does_not_block_and_is_capped_keeping_its_start_and_end(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    script = shell_script(tmp_path, "echo THE-START; head -c 10485760 /dev/zero | tr '\\0' x; echo; echo THE-END; "
                                    "echo err-end >&2")
    job = new_job(store, script)
    result = runner.execute(store, job, [str(script)], dict(os.environ), str(tmp_path))
    assert result.status == "ok"
    assert result.stdout_tail.endswith("THE-END\n") and len(result.stdout_tail) <= jobs.TAIL_BYTES
    assert result.stderr_tail == "err-end\n"
    kept = Path(store.path(job["job_id"], "stdout.log")).read_bytes()
    dropped = len("THE-START\n") + 10485760 + len("\nTHE-END\n") - KEPT_HEAD_BYTES - KEPT_TAIL_BYTES
    assert kept.startswith(b"THE-START\nxxx") and kept.endswith(b"x\nTHE-END\n")
    # Exact unless a trim while the script wrote lost what it wrote in between (then fewer are counted).
    counted = result.extra["output_dropped"]
    assert 0 < counted["stdout"] <= dropped and counted["stderr"] == 0, counted
    assert b"[kvmops.rolling: %d bytes of output dropped here" % counted["stdout"] in kept
    assert len(kept) < KEPT_HEAD_BYTES + KEPT_TAIL_BYTES + 200


def test_detached_job_runs_on_and_is_polled_to_its_end(tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    script = shell_script(tmp_path, "sleep 1; echo done")
    job = new_job(store, script)
    start(store, job, script, tmp_path)
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert status == "running" and fields["job_id"] == job["job_id"]  # start returned while the script runs
    assert fields["unit"] is None  # no systemd as PID 1 here: the runner is a detached process
    assert [other["job_id"] for other in store.running_jobs(jobs.current_boot_id())] == [job["job_id"]]
    status, fields = jobs.poll(store, job["job_id"], 10)
    assert (status, fields["rc"], fields["stdout_tail"]) == ("ok", 0, "done\n")
    assert store.running_jobs(jobs.current_boot_id()) == []


def test_a_new_boot_id_settles_the_job_as_rebooted(tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    script = shell_script(tmp_path, "sleep 30")
    job = new_job(store, script)
    start(store, job, script, tmp_path)
    boot_id.write_text(str(uuid.uuid4()) + "\n")
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert status == "rebooted" and "rebooted" in fields["msg"]
    boot_id.write_text(job["boot_id"])  # the result is settled: later polls agree whatever the boot id
    assert jobs.poll(store, job["job_id"], 0)[0] == "rebooted"
    jobs.cancel(store, job["job_id"])  # stop the sleeping script of this simulated boot


def test_cancel_stops_the_script(tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    marker = unique_duration()
    script = shell_script(tmp_path, "sleep %s" % marker)
    job = new_job(store, script)
    start(store, job, script, tmp_path)
    status, fields = jobs.cancel(store, job["job_id"])
    assert status == "failed" and fields["cancelled"] and "cancelled after" in fields["msg"], fields
    assert processes_with(marker) == []


def runner_pid(store: jobs.JobStore, job_id: str) -> int:
    job = store.read_job(job_id)
    assert job is not None and isinstance(job.get("runner_pid"), int), job
    return int(job["runner_pid"])


def wait_for(condition: Any, what: str, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting for %s" % what
        time.sleep(0.05)


@pytest.mark.parametrize("first", ["runner", "script"])
def test_a_sigterm_no_cancel_asked_for_is_a_shutdown_settled_as_rebooted(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path, first: str) -> None:
    """`systemctl reboot` signals every process, in any order: the stage is not failed, nor called cancelled;
    it waits for the new boot id."""
    marker = unique_duration()
    started = tmp_path / "started"
    body = "kill -TERM $$" if first == "script" else "sleep %s" % marker
    script = shell_script(tmp_path, "touch %s\n%s" % (started, body))
    job = new_job(store, script)
    start(store, job, script, tmp_path)
    wait_for(started.exists, "the script to start")
    pid = runner_pid(store, job["job_id"])
    os.kill(pid, signal.SIGTERM)  # the shutdown's SIGTERM (the script had its own first in the "script" case)
    wait_for(lambda: jobs.process_start_ticks(pid) is None, "the runner to end")
    assert store.read_result(job["job_id"]) is None and store.read_shutdown_note(job["job_id"]) is not None
    assert processes_with(marker) == []  # never left running unsupervised
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert status == "running" and fields["shutting_down"], fields
    boot_id.write_text(str(uuid.uuid4()) + "\n")
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert status == "rebooted" and "rebooted while the Maintenance stage ran" in fields["msg"], fields


def test_a_sigterm_without_a_reboot_fails_the_stage_once_the_grace_is_over(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = shell_script(tmp_path, "sleep %s" % unique_duration())
    job = new_job(store, script)
    start(store, job, script, tmp_path)
    pid = runner_pid(store, job["job_id"])
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: jobs.process_start_ticks(pid) is None, "the runner to end")
    monkeypatch.setattr(jobs, "SHUTDOWN_GRACE_SECONDS", 0.0)  # the host stayed up past the grace
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert status == "failed" and "SIGTERM that no cancel asked for" in fields["msg"], fields
    assert "did not reboot" in fields["msg"]


def test_a_vanished_runner_is_a_failure_not_a_hang(tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    script = shell_script(tmp_path, "sleep 1")
    job = new_job(store, script)
    store.write_job(job["job_id"], dict(job, runner_pid=2 ** 22 + 7, runner_start_ticks=1))
    status, fields = jobs.poll(store, job["job_id"], 5)
    assert status == "failed" and "Maintenance stage runner (pid 4194311) vanished" in fields["msg"]


def test_stale_or_foreign_results_are_refused(store: jobs.JobStore) -> None:
    os.mkdir(store.job_dir("job-a"))
    write_atomic(store.path("job-a", "result.json"), json.dumps({"job_id": "job-b", "status": "ok"}))
    with pytest.raises(jobs.JobError, match="belongs to job 'job-b'"):
        store.read_result("job-a")
    write_atomic(store.path("job-a", "result.json"), "{half")
    with pytest.raises(jobs.JobError, match="not valid JSON"):
        store.read_result("job-a")
    write_atomic(store.path("job-a", "result.json"), json.dumps({"job_id": "job-a"}))
    with pytest.raises(jobs.JobError, match="has no status"):
        store.read_result("job-a")


def test_unknown_job(store: jobs.JobStore) -> None:
    with pytest.raises(jobs.JobError, match="there is no job 'nope'"):
        jobs.poll(store, "nope", 0)


@pytest.mark.parametrize("job_id", ["../x", ".hidden", "a/b", "run\n", "", "x" * 129, "run id"])
def test_a_job_id_that_is_no_safe_directory_name_is_refused(job_id: str) -> None:
    with pytest.raises(jobs.JobError, match="is not a safe directory name"):
        jobs.checked_job_id(job_id)


def test_a_job_id_built_from_a_run_id_is_accepted() -> None:
    assert jobs.checked_job_id("20261125T023919Z-52004.Maintenance-stage.f31e7de9") \
        == "20261125T023919Z-52004.Maintenance-stage.f31e7de9"


def test_a_reboot_the_script_left_pending_ends_the_stage_as_rebooted(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    """`shutdown -r +1; exit 0`: the stage is not over until the host has gone down and come back."""
    script = shell_script(tmp_path, "echo patched; exit 0")
    job = new_job(store, script)
    jobs.start_detached(store, job, lambda: runner.execute(store, job, [str(script)], dict(os.environ), str(tmp_path),
                                                           pending=lambda: "reboot scheduled in /run/x"))
    wait_for(lambda: store.read_reboot_note(job["job_id"]) is not None, "the runner to see the pending reboot")
    status, _fields = jobs.poll(store, job["job_id"], 0)
    assert status == "running"  # the script has exited; the stage waits for the reboot
    os.kill(runner_pid(store, job["job_id"]), signal.SIGTERM)  # the host goes down
    wait_for(lambda: store.read_shutdown_note(job["job_id"]) is not None, "the runner to note the shutdown")
    boot_id.write_text(str(uuid.uuid4()) + "\n")
    status, fields = jobs.poll(store, job["job_id"], 0)
    assert (status, fields["rc"], fields["stdout_tail"]) == ("rebooted", 0, "patched\n"), fields
    assert fields["msg"].startswith("the host rebooted after the Maintenance script exited 0 and left a reboot "
                                    "pending (reboot scheduled in /run/x; boot id"), fields["msg"]


@pytest.mark.parametrize("withdrawn", [True, False], ids=["called-off", "never-came"])
def test_a_pending_reboot_that_is_called_off_or_never_comes(tmp_path: Path, store: jobs.JobStore, boot_id: Path,
                                                            monkeypatch: pytest.MonkeyPatch, withdrawn: bool) -> None:
    monkeypatch.setattr(runner, "REBOOT_CHECK_SECONDS", 0.05)
    checks: List[int] = []

    def pending() -> Any:
        checks.append(1)
        return None if withdrawn and len(checks) > 3 else "reboot scheduled in /run/x"

    script = shell_script(tmp_path, "exit 0")
    job = new_job(store, script, timeout=1)
    result = runner.execute(store, job, [str(script)], dict(os.environ), str(tmp_path), pending=pending)
    assert result is not None
    if withdrawn:  # `shutdown -c`: the script's own result stands, and says so
        assert (result.status, result.rc) == ("ok", 0)
        assert result.msg.endswith("the reboot it left pending (reboot scheduled in /run/x) was called off before "
                                   "it came")
    else:
        assert (result.status, result.rc) == ("timeout", 0)
        assert result.msg == ("the script exited 0 and reboot scheduled in /run/x, but the host had not gone down "
                              "by the stage timeout of 1 s")


ATTACHED_RUNNER = """
import json, os, sys
from ansible_collections.kvmops.rolling.plugins.module_utils import _jobs as jobs, _stage_runner as runner
store = jobs.JobStore(sys.argv[1])
job = json.loads(sys.argv[2])
store.write_job(job["job_id"], jobs.as_run_by_this_process(job))
runner.execute(store, job, [job["script"]], dict(os.environ), "/", attached=runner.connection_watch())
"""


def test_an_attached_runner_whose_connection_goes_stops_the_script_tree(
        tmp_path: Path, store: jobs.JobStore, boot_id: Path) -> None:
    """The agent executor: the module answers on a pipe to sshd; when that closes, nothing runs on unsupervised."""
    marker = unique_duration()
    started = tmp_path / "started"
    script = shell_script(tmp_path, "touch %s\nsetsid sleep %s &\nsleep %s" % (started, marker, marker))
    job = new_job(store, script)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    agent = subprocess.Popen([sys.executable, "-c", ATTACHED_RUNNER, store.state_dir, json.dumps(job)],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    wait_for(started.exists, "the script to start")
    assert agent.stdout is not None
    agent.stdout.close()  # the connection goes: sshd closes its end of the module's pipe
    agent.wait(30)
    result = store.read_result(job["job_id"])
    assert result is not None and result["status"] == "failed", result
    assert result["msg"].startswith("the connection was lost while the stage ran attached to it (agent executor): "
                                    "the connection's pipe was closed; the script's process tree was stopped")
    assert processes_with(marker) == []
