"""The rolling maintenance playbook end to end on the lab: 2 clusters x 3 hosts, real hooks, real migrations."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from runtools import ALL, C1, OTHER_VENVS, PLAYBOOK, STAGES, Run

pytestmark = pytest.mark.lab


def test_a_clean_run_updates_every_host_cluster_by_cluster(scenario: Run) -> None:
    scenario.hooks(ALL)
    report = scenario.play("-e", "rm_zones=z1")
    assert scenario.completed.returncode == 0, scenario.output
    assert report["success"] and [entry["host"] for entry in report["hosts_updated"]] == ALL
    assert report["hosts_skipped"] == [] and report["hosts_failed"] == []
    for entry in report["hosts_updated"]:
        assert entry["cluster"] == ("c1" if entry["host"] in C1 else "c2")
        assert [entry["stages"][stage]["status"] for stage in STAGES] == ["ok"] * 4
        assert all(entry["stages"][stage]["rc"] == 0 for stage in STAGES)
        assert entry["evacuation"]["status"] == "ok"
    events = scenario.events()
    # Every PreFlight first (in parallel), then each host's stages in turn, clusters disabled around their hosts.
    assert sorted(event[1] for event in events[:6]) == ALL and {event[0] for event in events[:6]} == {"PreFlight"}
    assert [" ".join(event[:2]) for event in events[6:]] == (
        ["disable c1"] + ["%s %s" % (stage, host) for host in C1 for stage in STAGES[1:]] + ["enable c1", "disable c2"]
        + ["%s %s" % (stage, host) for host in ALL[3:] for stage in STAGES[1:]] + ["enable c2"])
    for event in events:
        if event[0] == "Maintenance":
            assert event[2] == "0", "%s still ran guests during its Maintenance stage" % event[1]
    assert "SUCCESS - 6 updated, 0 skipped, 0 failed" in scenario.output
    assert scenario.report_path.stat().st_mode & 0o777 == 0o600  # output tails may hold what a script printed


def test_hosts_that_need_no_maintenance_are_skipped_with_the_spec_reasons(scenario: Run) -> None:
    scenario.hooks(C1, {("hv1", "PreFlight"): "exit 70", ("hv2", "PreMaintenance"): "exit 70",
                        ("hv3", "Maintenance"): None})
    before = scenario.lab.running_guests()
    report = scenario.play("-e", "rm_clusters=c1")
    assert scenario.completed.returncode == 0, scenario.output
    skipped = {entry["host"]: (entry["stage"], entry["reason"]) for entry in report["hosts_skipped"]}
    assert skipped == {"hv1": ("PreFlight", "Pre-flight stage set to avoid maintenance"),
                       "hv2": ("PreMaintenance", "Pre-maintenance stage set to avoid maintenance"),
                       "hv3": ("Maintenance", "There is no maintenance script on the host")}
    assert report["success"] and report["hosts_updated"] == []
    # The plan foresees the skips it can (no Maintenance script; PreFlight 70, planned again after PreFlight):
    # those hosts are not evacuated and stay targets. PreMaintenance 70 only shows on the day.
    assert report["plan"]["skips"] == {"hv1": "Pre-flight stage set to avoid maintenance",
                                       "hv3": "There is no maintenance script on the host"}, report["plan"]
    lines = report["plan"]["lines"]
    assert lines[0] == "c1/hv1: expected to be skipped (Pre-flight stage set to avoid maintenance): not evacuated, " \
                       "stays a target" and lines[2].startswith("c1/hv3: expected to be skipped"), lines
    assert scenario.stages_run("hv1") == ["PreFlight"]
    assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance"]
    assert scenario.stages_run("hv3") == ["PreFlight"]
    assert scenario.lab.running_guests() == before  # nothing was moved


def test_a_run_where_no_host_has_a_maintenance_script_names_the_hooks_dir_first(scenario: Run) -> None:
    scenario.hooks(C1)
    typo = "/etc/kvm-rolling-maintenance/hook"  # one letter short: every host's scripts are elsewhere
    report = scenario.play("-e", "rm_clusters=c1", "-e", "rm_hooks_dir=%s" % typo)
    assert report["details"].startswith("no host in scope has a Maintenance script (looked in %s): nothing was "
                                        "maintained; is rm_hooks_dir right?" % typo), report["details"]
    assert [entry["host"] for entry in report["hosts_skipped"]] == C1
    assert [event for event in scenario.events() if event[0] in STAGES] == []  # the cluster was disabled, per SPEC
    lines = scenario.output.splitlines()
    assert any(line.startswith("Rolling maintenance ") and "no host in scope has a Maintenance script" in line
               for line in lines), scenario.output[-3000:]


def _fail_capacity_recheck(run: Run, host: str) -> threading.Thread:
    """While HOST's PreMaintenance waits, a guest too big for any host appears on it: the re-check must refuse."""
    started, proceed = run.dir / "premaintenance-started", run.dir / "proceed"

    def inject() -> None:
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if started.exists():
            run.lab.add_guest(host, "t-huge", memory_mib=run.lab.schedulable_memory_mib() + 200)
        proceed.touch()

    thread = threading.Thread(target=inject, daemon=True)
    thread.start()
    return thread


FAILURES = {
    "PreFlight": "echo 'kernel too old' >&2; exit 3",
    "PreMaintenance": "echo 'not today' >&2; exit 4",
    "Maintenance": "echo 'apt failed' >&2; exit 5",
    "PostMaintenance": "echo 'libvirt broken' >&2; exit 6",
}


@pytest.mark.parametrize("forced", [False, True], ids=["fail-fast", "forced"])
@pytest.mark.parametrize("point", ["PreFlight", "PreMaintenance", "capacity", "Maintenance", "PostMaintenance"])
def test_a_failure_at_each_point(scenario: Run, point: str, forced: bool) -> None:
    special: Dict[Tuple[str, str], Optional[str]] = {}
    injector = None
    if point == "capacity":
        special["hv2", "PreMaintenance"] = "touch %s; while [ ! -e %s ]; do sleep 0.1; done" % (
            scenario.dir / "premaintenance-started", scenario.dir / "proceed")
        injector = _fail_capacity_recheck(scenario, "hv2")
    else:
        special["hv2", point] = FAILURES[point]
    scenario.hooks(C1, special)
    before = scenario.lab.running_guests()
    report = scenario.play("-e", "rm_clusters=c1", *(["-e", "rm_forced=true"] if forced else []))
    if injector:
        injector.join()
    statuses = scenario.statuses()
    expected_stage = point
    if forced:  # the run goes on, and still exits 2: hv2 needed maintenance and did not get it
        assert statuses == {"hv1": ("updated", ""), "hv2": ("failed", expected_stage), "hv3": ("updated", "")}, report
        assert scenario.completed.returncode == 2 and not report["success"], scenario.output
        assert not report["details"].startswith("aborted"), report["details"]
    else:
        assert scenario.completed.returncode != 0 and not report["success"], scenario.output
        assert statuses["hv2"] == ("failed", expected_stage), report
        assert statuses["hv3"] == ("skipped", "not started")
        assert statuses["hv1"] == (("skipped", "not started") if point == "PreFlight" else ("updated", ""))
        assert "aborted: hv2: %s" % expected_stage in report["details"]
        if point == "PreFlight":  # no host touched at all
            assert all(stage == "PreFlight" for event in scenario.events() for stage in event[:1]), scenario.events()
            assert scenario.lab.running_guests() == before
    [entry] = [item for item in report["hosts_failed"] if item["host"] == "hv2"]
    if point == "capacity":
        assert "t-huge" in entry["reason"] and "needs %d MiB" % (scenario.lab.schedulable_memory_mib() + 200) \
            in entry["reason"]
    else:
        assert "failed with exit code" in entry["reason"]
        assert entry["stages"][point]["stderr_tail"] == FAILURES[point].split("'")[1] + "\n"
    if point in ("Maintenance", "PostMaintenance") or point == "capacity":
        assert "PreMaintenance" in scenario.stages_run("hv2")


@pytest.mark.parametrize(("args", "complaint"), [
    (["-e", "rm_clusters=c1", "-e", "rm_hosts=hv1"], "more than one scope (rm_hosts, rm_clusters)"),
    ([], "no scope: set exactly one of rm_hosts, rm_clusters, rm_pods, rm_zones"),
    (["-e", "rm_clusters=c7"], "rm_clusters: no inventory host has rm_cluster = 'c7'"),
    (["-e", "rm_clusters=c1", "-e", "rm_stage_timeout=5", "-e", "rm_ping_interval=10"],
     "rm_stage_timeout (5 s) is lower than rm_ping_interval (10 s)"),
])
def test_invalid_input_is_refused_before_anything_is_touched(scenario: Run, args: List[str], complaint: str) -> None:
    scenario.hooks(C1)
    scenario.completed = scenario.lab.playbook(PLAYBOOK, "-e", "rm_report_path=%s" % scenario.report_path, *args)
    assert scenario.completed.returncode != 0
    assert "invalid input, nothing was touched" in scenario.output and complaint in scenario.output, scenario.output
    assert scenario.events() == []


def _essence(report: Dict[str, Any]) -> Dict[str, Any]:
    """What must not depend on the strategy: which host ended how, in which order, with which stage statuses."""
    def hosts(key: str) -> List[Any]:
        return [(entry["host"], entry["cluster"], entry.get("stage"), entry.get("reason"),
                 {stage: item["status"] for stage, item in entry["stages"].items()}) for entry in report[key]]
    return {"success": report["success"], "updated": hosts("hosts_updated"), "skipped": hosts("hosts_skipped"),
            "failed": hosts("hosts_failed")}


def test_cluster_serial_and_linear_give_the_same_report(scenario: Run, tmp_path: Path) -> None:
    special = {("hv2", "PreMaintenance"): "exit 70", ("hv5", "Maintenance"): "exit 9"}
    scenario.hooks(ALL, special)
    serial = _essence(scenario.play("-e", "rm_zones=z1", "-e", "rm_forced=true"))
    scenario.hooks(ALL, special)
    linear = _essence(scenario.play("-e", "rm_zones=z1", "-e", "rm_forced=true", "-e", "rm_strategy=ansible.builtin.linear"))
    assert serial == linear
    assert [entry[0] for entry in serial["updated"]] == ["hv1", "hv3", "hv4", "hv6"]


@pytest.mark.skipif(not OTHER_VENVS, reason="no second ansible-core venv (.venv-*) was bootstrapped")
@pytest.mark.parametrize("venv", OTHER_VENVS, ids=[path.name for path in OTHER_VENVS])
def test_a_clean_run_on_another_ansible_core(scenario: Run, venv: Path) -> None:
    scenario.hooks(C1, {("hv3", "PostMaintenance"): "exit 70"})  # 70 after PreMaintenance is a success
    report = scenario.play("-e", "rm_clusters=c1", venv_bin=venv / "bin")
    assert scenario.completed.returncode == 0, scenario.output
    # From 2.19 on the host play runs under linear by default: strategies from collections are deprecated there.
    assert "DEPRECATION" not in scenario.output, scenario.output
    version = os.popen("%s --version" % (venv / "bin" / "ansible-playbook")).read().split("\n")[0]
    assert report["success"] and [entry["host"] for entry in report["hosts_updated"]] == C1, version
    post = report["hosts_updated"][2]["stages"]["PostMaintenance"]
    assert (post["status"], post["rc"], post["succeeded"]) == ("ok", 70, True)


def test_check_mode_runs_nothing_and_shows_the_whole_plan(scenario: Run) -> None:
    scenario.hooks(ALL)
    before = scenario.lab.running_guests()
    # A number given as -e NAME=VALUE is a string, as a survey answer is: it is taken as the number.
    report = scenario.play("-e", "rm_zones=z1", "-e", "rm_reserved_host_memory_mib=1024", "--check")
    assert scenario.completed.returncode == 0, scenario.output
    assert report["check_mode"] and "check mode: no script ran, nothing was migrated or disabled" in report["details"]
    assert scenario.events() == []  # no stage script, no disable command
    assert scenario.lab.running_guests() == before
    lines = report["plan"]["lines"]
    assert [line.split(":")[0] for line in lines] == ["c1/hv1", "c1/hv2", "c1/hv3", "c2/hv4", "c2/hv5", "c2/hv6"]
    for host in ALL:
        guests = sorted(name for name, hosts in before.items() if hosts == [host])
        line = [item for item in lines if item.startswith("c%d/%s:" % (1 if host in C1 else 2, host))][0]
        assert all("%s -> " % guest in line for guest in guests), line
        assert line in scenario.output
    assert report["hosts_updated"] == [] and [entry["host"] for entry in report["hosts_planned"]] == ALL
    assert "6 planned, 0 skipped, 0 failed of 6 host(s) (check mode" in report["details"]
    stages = report["hosts_planned"][0]["stages"]
    assert [stages[stage]["status"] for stage in STAGES] == ["would_run"] * 4


def test_a_cluster_the_admin_disabled_is_left_as_it_was(scenario: Run) -> None:
    scenario.hooks(C1)
    admin = scenario.dir / "admin-disabled.yml"
    admin.write_text("all:\n  children:\n    c1:\n      vars:\n        rm_cluster_enabled: false\n")
    report = scenario.play("-e", "rm_clusters=c1", "-i", str(admin))
    assert scenario.completed.returncode == 0 and report["success"], scenario.output
    assert [entry["host"] for entry in report["hosts_updated"]] == C1
    assert not [event for event in scenario.events() if event[0] in ("disable", "enable")]


@pytest.mark.parametrize("forced", [False, True], ids=["fail-fast", "forced"])
def test_a_cluster_whose_disable_command_fails_has_none_of_its_hosts_maintained(scenario: Run, forced: bool) -> None:
    scenario.hooks(ALL)
    refuse_c1 = ("sh -c 'echo disable $RM_CLUSTER >> %s; [ $RM_CLUSTER != c1 ] || { echo scheduler says no >&2; "
                 "exit 3; }'" % scenario.log)
    report = scenario.play("-e", "rm_zones=z1", "-e", json.dumps({"rm_cluster_disable_command": refuse_c1}),
                           *(["-e", "rm_forced=true"] if forced else []))
    assert scenario.completed.returncode == 2 and not report["success"], scenario.output[-3000:]
    statuses = scenario.statuses()
    failed_in_c1 = C1 if forced else ["hv1"]  # fail-fast stops at the first: the others are not started
    assert {host: statuses[host] for host in C1} == {
        host: ("failed", "disable cluster") if host in failed_in_c1 else ("skipped", "not started") for host in C1}
    for entry in report["hosts_failed"]:
        assert "exited 3: scheduler says no" in entry["reason"], entry
    for host in C1:  # PreFlight ran everywhere in parallel; nothing after it on c1
        assert scenario.stages_run(host) == ["PreFlight"], scenario.events()
    c2 = [host for host in ALL if host not in C1]
    if forced:  # the run goes on with the next cluster
        assert {host: statuses[host] for host in c2} == {host: ("updated", "") for host in c2}, statuses
    else:
        assert report["details"].startswith("aborted: hv1: disable cluster:"), report["details"]
        assert {host: statuses[host] for host in c2} == {host: ("skipped", "not started") for host in c2}
    # the finish still takes c1's marks back (the fixture checks none is left) and tells the scheduler
    assert ["enable", "c1"] in scenario.events()


def test_two_clusters_of_the_same_name_in_two_zones_are_two_clusters(scenario: Run) -> None:
    scenario.hooks(ALL)
    c2 = ALL[3:]
    # The lab's c2 becomes a second c1, in zone z2 (in the lab's own group: hosts set right under "all"
    # would come first in ansible's inventory order).
    namesakes = scenario.dir / "namesakes.yml"
    namesakes.write_text("all:\n  children:\n    kvm_hosts:\n      children:\n        c2:\n          hosts:\n" + "".join(
        "            %s: {rm_zone: z2, rm_pod: p1, rm_cluster: c1}\n" % host for host in c2))
    for host in ("hv1", "hv4"):
        scenario.lab.ensure_guest(host)
    where = {guest: hosts[0] for guest, hosts in scenario.lab.running_guests().items()}
    commands = {"rm_cluster_%s_command" % word: "sh -c 'echo %s $RM_ZONE/$RM_POD/$RM_CLUSTER >> %s'"
                % (word, scenario.log) for word in ("disable", "enable")}
    # The bare name is both clusters, each planned under its zone/pod/name (check mode: nothing moves).
    planned = scenario.play("--check", "-i", str(namesakes), "-e", "rm_clusters=c1")
    assert scenario.completed.returncode == 0, scenario.output[-3000:]
    assert [(entry["host"], entry["cluster"]) for entry in planned["hosts_planned"]] == (
        [(host, "z1/p1/c1") for host in C1] + [(host, "z2/p1/c1") for host in c2]), planned["details"]
    assert [cluster["cluster"] for cluster in planned["plan"]["clusters"]] == ["z1/p1/c1", "z2/p1/c1"]
    # For real, one host of each (a host per cluster shows the marks and where guests go, at a third the time).
    report = scenario.play("-i", str(namesakes), "-e", "rm_hosts=hv1,hv4", "-e", json.dumps(commands))
    assert scenario.completed.returncode == 0 and report["success"], scenario.output[-3000:]
    assert [(entry["host"], entry["cluster"]) for entry in report["hosts_updated"]] == (
        [("hv1", "z1/p1/c1"), ("hv4", "z2/p1/c1")])
    # Each cluster disabled around its own hosts only, the scheduler told which one by zone, pod and name.
    marks = [" ".join(event) for event in scenario.events() if event[0] in ("disable", "enable")]
    assert marks == ["disable z1/p1/c1", "enable z1/p1/c1", "disable z2/p1/c1", "enable z2/p1/c1"]
    steps = [" ".join(event[:2]) for event in scenario.events() if event[0] != "PreFlight"]
    assert steps.index("enable z1/p1/c1") < steps.index("disable z2/p1/c1") < steps.index("PreMaintenance hv4")
    # Every guest moved within its own cluster: none crossed into the namesake in the other zone.
    after = scenario.lab.running_guests()
    assert set(after) == set(where) and all(len(hosts) == 1 for hosts in after.values()), after
    assert not any(hosts == ["hv1"] or hosts == ["hv4"] for hosts in after.values()), after
    for guest, host in where.items():
        assert (after[guest][0] in C1) == (host in C1), (guest, host, after[guest])
