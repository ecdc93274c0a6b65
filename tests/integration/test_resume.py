"""An interrupted run, and the runs after it: the lock of a cluster, kill -9 of the controller, resume and repair."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import current_boot_id, process_start_ticks
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import CLUSTER_MARK, LOCK_MARK, write_mark
from labtools import Lab, process_alive, wait_until
from runtools import C1, OTHER_VENVS, STAGES, Run, wait_for_file

pytestmark = pytest.mark.lab

WAIT_SECONDS = 300


def held_hook(run: Run, name: str) -> str:
    """A stage body that says it started (its pid in a file) and waits for the test to let it end (another file)."""
    return "echo $$ > %s\n%s" % (run.dir / (name + ".started"), wait_for_file(run.dir / (name + ".go")))


def release(run: Run, name: str) -> None:
    (run.dir / (name + ".go")).touch()


def kill_run(process: "subprocess.Popen[str]") -> None:
    """kill -9 of the controller: ansible-playbook and its workers, at once."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def state_file(lab: Lab, host: str, name: str) -> Optional[Dict[str, Any]]:
    path = lab.state_dir(host) / name
    return json.loads(path.read_text()) if path.exists() else None


def updated_exactly_once(run: Run, hosts: List[str]) -> None:
    for host in hosts:
        assert run.stages_run(host) == list(STAGES), "%s ran %s" % (host, run.stages_run(host))
    assert sorted(entry["host"] for entry in run.report["hosts_updated"]) == sorted(hosts), run.output


@pytest.mark.parametrize("phase", ["PreMaintenance", "evacuation", "Maintenance", "PostMaintenance"])
def test_kill_9_then_resume_finishes_every_host_once(scenario: Run, lab: Lab, phase: str) -> None:
    before = lab.running_guests()
    scenario.hooks(C1, {} if phase == "evacuation" else {("hv2", phase): held_hook(scenario, phase)})
    process = scenario.start("-e", "rm_clusters=c1", "-e", "rm_max_parallel_migrations=1")
    if phase == "evacuation":
        # Killed the moment hv2's evacuation begins (its mark appears), before the controller sees it end.
        wait_until(lambda: (state_file(lab, "hv2", "maintenance.json") or {}).get("state") == "evacuating",
                   "hv2's evacuation", WAIT_SECONDS, interval=0.01, process=process)
    else:
        wait_until((scenario.dir / (phase + ".started")).exists, "hv2's %s stage" % phase, WAIT_SECONDS, process=process)
    kill_run(process)
    journal = state_file(lab, "hv2", "last_run.json") or {}
    interrupted = journal.get("run_id")
    assert interrupted and journal["record"]["status"] == "in_progress", journal
    if phase == "evacuation":
        assert "evacuation" not in journal["record"], "the kill came after the evacuation was recorded"
    lock = state_file(lab, "hv1", "lock.json")
    assert lock and lock["run_id"] == interrupted

    resumed = scenario.start("-e", "rm_clusters=c1", "-e", "rm_resume=true")
    if phase != "evacuation":
        # The stage, detached, still runs without its controller: the resumed run must follow it, not start it again.
        following = "hv2: %s stage of run %s was started before the run was interrupted" % (phase, interrupted)
        wait_until(lambda: following in (scenario.dir / "background-run.log").read_text(),
                   "the resumed run following hv2's %s stage" % phase, WAIT_SECONDS, process=resumed)
        release(scenario, phase)
    report = scenario.wait(resumed)

    assert resumed.returncode == 0, (scenario.dir / "background-run.log").read_text()[-5000:]
    assert report["run_id"] == report["resumed_from"] == interrupted
    assert report["success"] and not report["attention"]
    updated_exactly_once(scenario, C1)
    events = [" ".join(event) for event in scenario.events() if event[0] in ("disable", "enable")]
    assert events == ["disable c1", "enable c1"], events
    assert any(line.startswith("resuming run %s: hv1 updated already" % interrupted) for line in report["found"])
    [hv2] = [entry for entry in report["hosts_updated"] if entry["host"] == "hv2"]
    if phase == "evacuation":
        assert hv2["evacuation"]["adopted"] is True  # followed to its end, not started again
    else:
        assert hv2["stages"][phase]["adopted"] is True
    if phase in ("Maintenance", "PostMaintenance"):
        assert hv2["evacuation"] == journal["record"]["evacuation"]  # the interrupted run's, not done again
    after = lab.running_guests()
    assert sorted(after) == sorted(before)


def test_kill_9_then_a_new_run_repairs_what_was_left(scenario: Run, lab: Lab) -> None:
    scenario.hooks(C1, {("hv2", "Maintenance"): held_hook(scenario, "Maintenance")})
    process = scenario.start("-e", "rm_clusters=c1")
    wait_until((scenario.dir / "Maintenance.started").exists, "hv2's Maintenance stage", WAIT_SECONDS, process=process)
    kill_run(process)
    interrupted = state_file(lab, "hv1", "lock.json")["run_id"]
    assert state_file(lab, "hv2", "maintenance.json")["run_id"] == interrupted
    assert state_file(lab, "hv3", "cluster.json")["run_id"] == interrupted

    log = scenario.dir / "background-run.log"
    killed_runs_output = log.stat().st_size
    repair = scenario.start("-e", "rm_clusters=c1")
    # hv2's Maintenance script outlives its controller: the new run waits for it to end (never kills it),
    # renewing the lock it took meanwhile, so no other run takes it for a stale one.
    lock = lab.state_dir("hv2") / "lock.json"
    wait_until(lambda: b"of run %s still runs" % interrupted.encode()
               in log.read_bytes()[killed_runs_output:], "the new run waiting for hv2's Maintenance script",
               WAIT_SECONDS, process=repair)
    # Taking the lock writes it twice at most (the lock step, the wait task); more times are the renewals.
    seen = set()
    wait_until(lambda: seen.add(lock.stat().st_mtime) or len(seen) > 2, "the waiting run renewing its lock",
               WAIT_SECONDS, interval=0.5, process=repair)
    assert state_file(lab, "hv2", "lock.json")["run_id"] != interrupted
    assert process_alive(int((scenario.dir / "Maintenance.started").read_text()))  # still waited for
    release(scenario, "Maintenance")
    report = scenario.wait(repair)

    assert repair.returncode == 0, (scenario.dir / "background-run.log").read_text()[-5000:]
    assert report["run_id"] != interrupted and report["resumed_from"] == ""
    found = report["found"]
    assert any(line.startswith("run %s" % interrupted) and "ansible-playbook process" in line for line in found), found
    assert "hv2: left in maintenance by run %s: it leaves maintenance" % interrupted in found
    assert "cluster c1: left disabled by run %s: it is enabled again" % interrupted in found
    # A new run, not a resumed one: every host is done again, hv1 for the second time.
    assert scenario.stages_run("hv1") == list(STAGES) + list(STAGES)
    assert [" ".join(e) for e in scenario.events() if e[0] in ("disable", "enable")] == \
        ["disable c1", "enable c1", "disable c1", "enable c1"]


def test_the_locks_of_two_dead_runs_are_taken_over_at_once_and_what_they_left_is_repaired(
        scenario: Run, lab: Lab) -> None:
    # Two runs from this controller died without a trace here, their locks fresh (so the timeout is no reason):
    # one before this machine rebooted (another boot id), one whose ansible-playbook is gone (its pid is
    # taken by another process, started at another time). The second had disabled c1.
    here, pid = socket.gethostname(), os.getpid()
    before_reboot, gone = "before-reboot-%s" % uuid.uuid4().hex[:6], "gone-%s" % uuid.uuid4().hex[:6]
    controllers = {
        before_reboot: {"host": here, "boot_id": "not-" + current_boot_id(), "pid": pid,
                        "pid_start_ticks": process_start_ticks(pid)},
        gone: {"host": here, "boot_id": current_boot_id(), "pid": pid, "pid_start_ticks": process_start_ticks(pid) + 1},
    }
    for host, run in (("hv1", before_reboot), ("hv2", before_reboot), ("hv3", gone)):
        write_mark(str(lab.state_dir(host)), LOCK_MARK, {"cluster": "c1", "run_id": run, "started": "2026-11-24T22:10:00Z",
                                                         "controller": controllers[run], "taken_at": time.time()})
        write_mark(str(lab.state_dir(host)), CLUSTER_MARK, {"cluster": "c1", "run_id": gone, "since": time.time()})
    scenario.hooks(C1)

    report = scenario.play("-e", "rm_clusters=c1")

    assert scenario.completed.returncode == 0 and report["success"], scenario.output
    found = report["found"]
    assert "run %s, started 2026-11-24T22:10:00Z, was interrupted: its controller %s has rebooted since" % (
        before_reboot, here) in found, found
    assert "run %s, started 2026-11-24T22:10:00Z, was interrupted: its ansible-playbook process (pid %d on %s) is " \
        "gone" % (gone, pid, here) in found, found
    assert "cluster c1: left disabled by run %s: it is enabled again" % gone in found
    updated_exactly_once(scenario, C1)
    assert [" ".join(e) for e in scenario.events() if e[0] in ("disable", "enable")] == \
        ["enable c1", "disable c1", "enable c1"]


def test_a_second_run_refuses_while_the_first_holds_the_cluster(scenario: Run, lab: Lab, tmp_path: Path) -> None:
    scenario.hooks(C1, {("hv1", "PreMaintenance"): held_hook(scenario, "first")})
    first = scenario.start("-e", "rm_clusters=c1")
    try:
        wait_until((scenario.dir / "first.started").exists, "the first run's PreMaintenance on hv1", WAIT_SECONDS, process=first)
        second_dir = tmp_path / "second"
        second_dir.mkdir()
        second = Run(lab, second_dir)
        report = second.play("-e", "rm_hosts=hv3")
        lock = state_file(lab, "hv3", "lock.json")
        assert second.completed.returncode != 0 and report, second.output
        assert report["details"].startswith(
            "aborted: cluster c1 is being maintained by run %s, started %s on controller" % (lock["run_id"], lock["started"]))
        assert second.events() == [] and report["hosts_updated"] == []
        assert state_file(lab, "hv3", "lock.json") == lock  # the first run's lock is left alone
    finally:
        release(scenario, "first")
    scenario.wait(first)
    assert first.returncode == 0
    updated_exactly_once(scenario, C1)


def test_two_runs_started_at_once_never_both_maintain_and_leave_no_lock(
        scenario: Run, lab: Lab, tmp_path: Path) -> None:
    # Each takes the lock of c1 on every host at once: whichever takes a host first, at most one run goes on, and
    # one that refuses (both may, when each took some hosts first) touches no host and keeps none of its locks.
    scenario.hooks(C1)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Run(lab, other_dir)
    runs = [(scenario, scenario.start("-e", "rm_clusters=c1")), (other, other.start("-e", "rm_clusters=c1"))]
    reports = [run.wait(process) for run, process in runs]
    maintained = [run for (run, _process), report in zip(runs, reports)
                  if report["hosts_updated"] or report["hosts_failed"]]
    summary = [(report.get("run_id"), report.get("started"), report.get("ended"), report.get("details"))
               for report in reports]
    assert len(maintained) <= 1, summary
    for (run, process), report in zip(runs, reports):
        marks = [" ".join(e) for e in run.events() if e[0] in ("disable", "enable")]  # each run logs its own
        if run in maintained:
            assert report["success"] and sorted(entry["host"] for entry in report["hosts_updated"]) == C1, report
            assert marks == ["disable c1", "enable c1"]
        else:
            assert process.returncode != 0 and report["details"].startswith("aborted: "), summary
            assert marks == [] and report["hosts_updated"] + report["hosts_failed"] == []
    assert [host for host in C1 if state_file(lab, host, "lock.json") is not None] == []


# The holder's timing: rm_lock_timeout 3 on top of its longest step (12 s): its lock records a threshold of 15 s.
HOLDER_TIMING = ("-e", "rm_lock_timeout=3", "-e", "rm_stage_timeout=12", "-e", "rm_wait_maintenance_timeout=12")
HOLDER_THRESHOLD = 15
# The taker's: far below the holder's, which are the ones that count.
TAKER_TIMING = ("-e", "rm_lock_timeout=1")


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_stale_lock_is_taken_over_after_the_holders_threshold(scenario: Run, lab: Lab, how: str) -> None:
    # A controller that stops answering (a laptop closed: its process lives on) or is killed (an AWX pod
    # deleted). Another controller (an AWX pod) takes its lock over once it is older than the threshold the
    # holder recorded, never by its own shorter one; on the laptop itself a live holder is never stale.
    scenario.hooks(C1, {("hv1", "PreMaintenance"): held_hook(scenario, "first")})
    first = scenario.start("-e", "rm_clusters=c1", *HOLDER_TIMING)
    try:
        wait_until((scenario.dir / "first.started").exists, "the first run's PreMaintenance on hv1", WAIT_SECONDS,
                   process=first)
        if how == "stopped":
            os.killpg(first.pid, signal.SIGSTOP)
        else:
            kill_run(first)
        stale = state_file(lab, "hv1", "lock.json")
        assert stale["threshold"] == HOLDER_THRESHOLD and stale["renew_interval"] == 1, stale
        release(scenario, "first")
        early = scenario.play_from_controller("awx-pod-2", "-e", "rm_clusters=c1", *TAKER_TIMING)
        assert scenario.completed.returncode != 0 and early["details"].startswith(
            "aborted: cluster c1 is being maintained by run %s" % stale["run_id"]), early["details"]
        assert "its threshold (%d s)" % HOLDER_THRESHOLD in early["details"]
        locks = [lab.state_dir(host) / "lock.json" for host in C1]
        wait_until(lambda: min(time.time() - path.stat().st_mtime for path in locks) > HOLDER_THRESHOLD + 1,
                   "every lock of the first run older than its threshold", WAIT_SECONDS)
        if how == "stopped":
            here = scenario.play("-e", "rm_clusters=c1", *TAKER_TIMING)
            assert scenario.completed.returncode != 0 and here["details"].startswith(
                "aborted: cluster c1 is being maintained by run %s" % stale["run_id"]), here["details"]
        else:
            # A host of the cluster that cannot be read may hold the fresh copy of the lock: refused, unless named.
            lab.kvmlab("link", "hv3", "down")
            try:
                unread = scenario.play_from_controller("awx-pod-2", "-e", "rm_clusters=c1", *TAKER_TIMING)
            finally:
                lab.kvmlab("link", "hv3", "up")
            assert scenario.completed.returncode != 0 and unread["details"].startswith(
                "aborted: cluster c1 is locked by run %s, and hv3 could not be read" % stale["run_id"]), \
                unread["details"]
            assert "-e rm_take_over=%s" % stale["run_id"] in unread["details"]
        report = scenario.play_from_controller("awx-pod-2", "-e", "rm_clusters=c1", *TAKER_TIMING)
        assert scenario.completed.returncode == 0, scenario.output
        if how == "stopped":
            # The holder wakes up: its next step finds the lock lost, and it stops cleanly.
            os.killpg(first.pid, signal.SIGCONT)
            woken = scenario.wait(first)  # its report replaces the taker's in the same file
            assert first.returncode != 0
            assert "this run no longer holds its lock, so it stopped" in woken["details"], woken["details"]
            assert not woken["attention"], woken["attention"]
    finally:
        if first.poll() is None:
            kill_run(first)
    assert any(line.startswith("run %s" % stale["run_id"]) and "has not been heard from" in line
               and "its threshold is %d s" % HOLDER_THRESHOLD in line for line in report["found"]), report["found"]
    assert "cluster c1: left disabled by run %s: it is enabled again" % stale["run_id"] in report["found"]
    assert sorted(entry["host"] for entry in report["hosts_updated"]) == C1


@pytest.mark.parametrize("venv", [None] + OTHER_VENVS, ids=lambda venv: venv.name if venv else "default")
def test_ctrl_c_cancels_the_stage_and_cleans_up(scenario: Run, lab: Lab, venv: Optional[Path]) -> None:
    scenario.hooks(C1, {("hv2", "Maintenance"): held_hook(scenario, "Maintenance")})
    process = scenario.start("-e", "rm_clusters=c1", venv_bin=venv / "bin" if venv else None)
    wait_until((scenario.dir / "Maintenance.started").exists, "hv2's Maintenance stage", WAIT_SECONDS, process=process)
    os.killpg(process.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    report = scenario.wait(process)

    assert process.returncode != 0
    assert report["details"].startswith("aborted: interrupted by the operator (Ctrl-C)"), report["details"]
    assert not report["attention"]  # nothing left in maintenance, no cluster left disabled
    assert scenario.statuses() == {"hv1": ("updated", ""), "hv2": ("failed", "Maintenance"),
                                   "hv3": ("skipped", "not started")}
    assert report["hosts_failed"][0]["stages"]["Maintenance"]["status"] == "cancelled"
    assert scenario.stages_run("hv3") == ["PreFlight"]
    assert [" ".join(e) for e in scenario.events() if e[0] in ("disable", "enable")] == ["disable c1", "enable c1"]
    # The script was killed with the stage, not left running.
    assert not process_alive(int((scenario.dir / "Maintenance.started").read_text()))


def test_a_new_run_given_the_id_of_a_finished_run_is_refused_and_runs_nothing(scenario: Run) -> None:
    # Its jobs' results would be taken as the new run's: each stage that succeeded before would be skipped now.
    scenario.hooks(["hv3"])
    run = "reused-%s" % uuid.uuid4().hex[:8]
    first = scenario.play("-e", "rm_hosts=hv3", "-e", "rm_run_id=%s" % run)
    assert scenario.completed.returncode == 0 and first["success"], scenario.output[-3000:]
    scenario.log.write_text("")
    second = scenario.play("-e", "rm_hosts=hv3", "-e", "rm_run_id=%s" % run)
    assert scenario.completed.returncode != 0 and not second["success"], scenario.output[-3000:]
    assert ("rm_run_id: run %s already ran on hv3; a new run needs an id of its own (leave rm_run_id out), or take "
            "that run up with rm_resume" % run) in second["details"], second["details"]
    assert second["hosts_updated"] == [] and scenario.events() == []
