"""The cluster lock between two controllers: a live run is never taken over, whatever the other run's settings,
whichever of its hosts is down; runs over disjoint clusters go on side by side."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Dict, List

import pytest

from labtools import Lab, wait_until
from runtools import ALL, C1, STAGES, Run, wait_for_file
from test_resume import TAKER_TIMING, WAIT_SECONDS, held_hook, release

pytestmark = pytest.mark.lab

C2 = [host for host in ALL if host not in C1]
# The holder renews its locks every second (rm_lock_timeout 3), and records a threshold of 3 + 180 s: the held
# Maintenance stage, the other run and the reset take about a minute on a quiet machine, twice that under load.
HOLDER_TIMING = ("-e", "rm_lock_timeout=3", "-e", "rm_stage_timeout=180", "-e", "rm_wait_maintenance_timeout=180")
HOLDER_THRESHOLD = 183


def lock_ages(lab: Lab, hosts: List[str], ages: Dict[str, float], stop: threading.Event) -> None:
    """Sample the age of each host's lock until STOP; keep the oldest seen (a host without a lock is skipped)."""
    while not stop.is_set():
        for host in hosts:
            try:
                ages[host] = max(ages.get(host, 0.0), time.time() - (lab.state_dir(host) / "lock.json").stat().st_mtime)
            except FileNotFoundError:
                pass
        stop.wait(0.5)


def test_a_live_run_whose_host_is_down_in_maintenance_is_not_taken_over_by_a_run_with_shorter_timings(
        scenario: Run, lab: Lab) -> None:
    # hv2 goes out of reach in its Maintenance stage (a reboot under way), then is hard-reset. Meanwhile a run
    # from another controller, whose own timings are far below the holder's, tries the cluster.
    scenario.hooks(C1, {("hv2", "Maintenance"): held_hook(scenario, "Maintenance")})
    ages: Dict[str, float] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=lock_ages, args=(lab, C1, ages, stop), daemon=True)
    holder = scenario.start("-e", "rm_clusters=c1", *HOLDER_TIMING)
    try:
        wait_until((scenario.dir / "Maintenance.started").exists, "hv2's Maintenance stage", WAIT_SECONDS,
                   process=holder)
        sampler.start()
        # hv3, not worked on yet, was renewed since the run took its lock (before each of hv1's and hv2's steps).
        hv3_lock = json.loads((lab.state_dir("hv3") / "lock.json").read_text())
        assert (lab.state_dir("hv3") / "lock.json").stat().st_mtime > hv3_lock["taken_at"] + 1, hv3_lock
        lab.kvmlab("link", "hv2", "down")
        try:
            time.sleep(4)  # every lock older than 3 polls of the other run, when it took a lock for stale before
            (scenario.dir / "taker").mkdir()
            taker = Run(lab, scenario.dir / "taker")
            refused = taker.play_from_controller("awx-pod-2", "-e", "rm_clusters=c1", *TAKER_TIMING)
        finally:
            lab.kvmlab("link", "hv2", "up")
        assert taker.completed.returncode != 0 and refused["details"].startswith(
            "aborted: cluster c1 is being maintained by run %s" % hv3_lock["run_id"]), refused["details"]
        assert "its threshold (%d s)" % HOLDER_THRESHOLD in refused["details"]
        assert taker.events() == [] and refused["hosts_updated"] == []
        lab.kvmlab("reboot", "hv2")  # ends the held Maintenance script: a reboot in Maintenance is its success
        report = scenario.wait(holder)
    finally:
        stop.set()
        release(scenario, "Maintenance")
    assert holder.returncode == 0, (scenario.dir / "background-run.log").read_text()[-5000:]
    assert report["success"] and not report["attention"], report
    assert [entry["host"] for entry in report["hosts_updated"]] == C1
    [hv2] = [entry for entry in report["hosts_updated"] if entry["host"] == "hv2"]
    assert hv2["stages"]["Maintenance"]["status"] == "rebooted"
    for host in C1:
        assert scenario.stages_run(host) == list(STAGES)
    # No lock of the live run was ever older than its threshold, on any host.
    assert ages and max(ages.values()) < HOLDER_THRESHOLD, ages


def test_two_runs_over_disjoint_clusters_from_two_controllers_both_succeed(scenario: Run, lab: Lab,
                                                                           tmp_path: Path) -> None:
    scenario.hooks(ALL)
    first = scenario.start("-e", "rm_clusters=c1")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = Run(lab, other_dir)
    other.log = scenario.log  # both runs' hooks log to the scenario's file
    second = other.play_from_controller("awx-pod-2", "-e", "rm_clusters=c2")
    report = scenario.wait(first)
    assert first.returncode == 0, (scenario.dir / "background-run.log").read_text()[-5000:]
    assert other.completed.returncode == 0, other.output
    assert [entry["host"] for entry in report["hosts_updated"]] == C1
    assert [entry["host"] for entry in second["hosts_updated"]] == C2
    for host in ALL:
        assert scenario.stages_run(host) == list(STAGES), host


def test_a_cluster_the_run_is_done_with_is_free_for_another_run_at_once(
        scenario: Run, lab: Lab, tmp_path: Path) -> None:
    """The run over z1 enables c1 again after its last host and releases c1's locks in the same call: while it
    works on c2 (hv4's PreMaintenance waits), c1's hosts hold no lock and no mark, c2's hold the run's lock, and a
    run from another controller maintains c1."""
    paused, proceed = scenario.dir / "hv4-paused", scenario.dir / "proceed"
    scenario.hooks(ALL, {("hv4", "PreMaintenance"): "touch %s\n%s" % (paused, wait_for_file(proceed))})
    first = scenario.start("-e", "rm_zones=z1")
    try:
        wait_until(paused.exists, "hv4's PreMaintenance", limit=300, process=first)
        files = {host: sorted(path.name for path in lab.state_dir(host).glob("*.json")) for host in ALL}
        locks = {host: json.loads((lab.state_dir(host) / "lock.json").read_text())["run_id"] for host in C2}
        other_dir = tmp_path / "other"
        other_dir.mkdir()
        other = Run(lab, other_dir)
        other.log = scenario.log
        second = other.play_from_controller("awx-pod-2", "-e", "rm_clusters=c1")
    finally:
        proceed.touch()
    report = scenario.wait(first)
    assert first.returncode == 0, (scenario.dir / "background-run.log").read_text()[-5000:]
    for host in C1:
        assert "lock.json" not in files[host] and "cluster.json" not in files[host], files
    assert len(set(locks.values())) == 1 and all("cluster.json" in files[host] for host in C2), (locks, files)
    assert other.completed.returncode == 0, other.output[-5000:]
    assert [entry["host"] for entry in second["hosts_updated"]] == C1
    assert [entry["host"] for entry in report["hosts_updated"]] == ALL
    for host in ALL:
        assert not (lab.state_dir(host) / "lock.json").exists(), host


def test_a_takeover_is_refused_on_a_host_whose_lock_was_renewed_after_it_was_judged(lab: Lab, tmp_path: Path) -> None:
    # The taker judged run "old" gone by the lock it read; old renewed it since (it is at work): under the host's
    # flock, the takeover is refused and the lock left as it was. Judged as it is now, it is taken over.
    state = lab.state_dir("hv1")
    lock = state / "lock.json"
    lock.write_text(json.dumps({"cluster": "c1", "run_id": "old", "started": "2026-12-03T01:00:00Z",
                                "controller": {"host": "awx-pod-1", "pid": 7}}))
    judged = time.time() - 60
    os.utime(lock, (judged + 30, judged + 30))  # renewed 30 s after the taker read it
    take = {"state": "present", "cluster": "c1", "run_id": "new", "takeover": "old"}
    try:
        refused = lab.run_module(tmp_path, "hv1", "kvmops.rolling.run_lock", takeover_renewed_at=judged, **take)
        assert refused["failed"] and not refused["held"], refused
        assert refused["msg"].startswith("cluster c1: run old renewed its lock after this run judged it gone"), refused
        assert json.loads(lock.read_text())["run_id"] == "old"
        taken = lab.run_module(tmp_path, "hv1", "kvmops.rolling.run_lock", takeover_renewed_at=judged + 30, **take)
        assert taken["held"] and json.loads(lock.read_text())["run_id"] == "new", taken
    finally:
        lock.unlink()


def test_an_attached_stage_stops_at_once_when_its_run_loses_the_lock(scenario: Run, lab: Lab) -> None:
    # Under the agent executor no poll renews the lock while the stage runs: the attached runner does, every
    # second. Another run takes the lock of hv1 over meanwhile: the runner stops the script's whole tree, and
    # the run stops as at any other step (hv1 fails, leaves maintenance, the cluster is left to the taker).
    scenario.hooks(C1, {("hv1", "Maintenance"): held_hook(scenario, "Maintenance")})
    run = scenario.start("-e", "rm_clusters=c1", "-e", "rm_executor=agent")
    lock = lab.state_dir("hv1") / "lock.json"
    try:
        wait_until((scenario.dir / "Maintenance.started").exists, "hv1's Maintenance stage", WAIT_SECONDS,
                   process=run)
        taken = dict(json.loads(lock.read_text()), run_id="taker-1", controller={"host": "awx-pod-2", "pid": 7})
        planted = lock.with_name(".lock.json.test")
        planted.write_text(json.dumps(taken))
        os.replace(planted, lock)  # as a takeover writes it: atomically
        report = scenario.wait(run, timeout=WAIT_SECONDS)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, 9)
            run.wait()
    try:
        assert run.returncode != 0, (scenario.dir / "background-run.log").read_text()[-5000:]
        assert "this run no longer holds its lock, so it stopped" in report["details"], report["details"]
        assert "taken over by run taker-1" in report["details"], report["details"]
        statuses = scenario.statuses()
        assert statuses["hv1"] == ("failed", "Maintenance") and statuses["hv2"] == ("skipped", "not started"), statuses
        [stage] = [entry["stages"]["Maintenance"] for entry in report["hosts_failed"]]
        assert "agent executor" in stage["msg"] and "was stopped with" in stage["msg"], stage
        script = int((scenario.dir / "Maintenance.started").read_text())
        assert not Path("/proc/%d" % script).exists()  # the script is gone from hv1 (hosts share the pid space)
        assert not (lab.state_dir("hv1") / "maintenance.json").exists()
        assert not report["attention"], report["attention"]
        # The taker holds hv1 now, with this run's mark of the cluster there to repair; this run released its
        # other locks and ran no enable command: the cluster is the taker's.
        assert json.loads(lock.read_text())["run_id"] == "taker-1"
        assert json.loads((lab.state_dir("hv1") / "cluster.json").read_text())["run_id"] == report["run_id"]
        assert all(not (lab.state_dir(host) / "lock.json").exists() for host in C1[1:])
        assert ["disable", "c1"] in scenario.events() and ["enable", "c1"] not in scenario.events()
    finally:
        for host in C1:  # what the taker would repair
            for mark in ("lock.json", "cluster.json"):
                (lab.state_dir(host) / mark).unlink(missing_ok=True)
