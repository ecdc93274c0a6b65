"""Capacity planning and maintenance mode end to end: real libvirt, real QEMU guests, real live migrations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from labtools import KVMLAB, Lab, placement_metadata

pytestmark = pytest.mark.lab
CLUSTER = ["hv1", "hv2", "hv3"]


@pytest.fixture
def guests(lab: Lab) -> Iterator[List[str]]:
    """Test guests to add (names given by the test), removed afterwards; every guest of the lab still runs once."""
    before = lab.running_guests()
    added: List[str] = []
    yield added
    after = lab.running_guests()
    for name in before:
        assert len(after.get(name, [])) == 1, "%s runs on %s after the test" % (name, after.get(name))
    for host in CLUSTER:
        lab.exec(host, "rm", "-f", "/var/lib/kvm-rolling-maintenance/maintenance.json")
    for name in added:
        lab.remove_guest(name)


def maintenance_playbook(tmp_path: Path, evacuate: str, moves: Any = None, extra_task: Dict[str, Any] = None,
                         **options: Any) -> Path:
    """Gather the cluster, plan the evacuation of one host (or take the given moves), enter maintenance, leave it."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    plays: List[Dict[str, Any]] = [
        {"hosts": ",".join(CLUSTER), "gather_facts": False, "tasks": [
            {"kvmops.rolling.hypervisor_info": {}, "register": "info"},
            {"ansible.builtin.set_fact": {"rm_hypervisor": "{{ info.hypervisor }}"}},
        ]},
        {"hosts": "localhost", "gather_facts": False, "tasks": [
            {"kvmops.rolling.capacity_plan": {"hosts": [evacuate]}, "register": "plan", "ignore_errors": True},
            {"ansible.builtin.copy": {"content": "{{ plan | to_json }}", "dest": str(out / "plan.json")},
             "check_mode": False},
        ]},
        {"hosts": evacuate, "gather_facts": False, "tasks": [
            {"ansible.builtin.meta": "end_play", "when": "moves is none and hostvars.localhost.plan is failed",
             "vars": {"moves": moves}}] + ([extra_task] if extra_task else []) + [
            {"kvmops.rolling.host_maintenance": dict(
                {"state": "present", "ping_interval": 1,
                 "moves": moves if moves is not None else "{{ hostvars.localhost.plan.moves[inventory_hostname] }}"},
                **options), "register": "evacuation", "ignore_errors": True},
            {"ansible.builtin.copy": {"content": "{{ evacuation | to_json }}", "dest": str(out / "evacuation.json")},
             "delegate_to": "localhost", "check_mode": False},
            {"kvmops.rolling.hypervisor_info": {}, "register": "during"},
            {"ansible.builtin.copy": {"content": "{{ during.hypervisor.maintenance | to_json }}",
                                      "dest": str(out / "mark.json")}, "delegate_to": "localhost", "check_mode": False},
            {"kvmops.rolling.host_maintenance": {"state": "absent"}},
        ]},
    ]
    path = tmp_path / ("maintenance-%s.yml" % uuid.uuid4().hex[:6])
    path.write_text(yaml.safe_dump(plays))
    return path


def run(lab: Lab, tmp_path: Path, playbook: Path, *args: str) -> Dict[str, Any]:
    completed = lab.playbook(playbook, *args)
    out = tmp_path / "out"
    found = {name: json.loads((out / (name + ".json")).read_text())
             for name in ("plan", "evacuation", "mark") if (out / (name + ".json")).exists()}
    found["_output"] = completed.stdout + completed.stderr
    return found


def test_evacuating_a_host_moves_every_guest_to_another_host_of_its_cluster(
        lab: Lab, guests: List[str], tmp_path: Path) -> None:
    def on_hv1() -> List[str]:
        return sorted(name for name, hosts in lab.running_guests().items() if hosts == ["hv1"])

    while len(on_hv1()) < 3:  # a fresh lab has 2; earlier tests may have moved guests around
        guests.append("t-extra%d" % len(guests))
        lab.add_guest("hv1", guests[-1])
    evacuated = on_hv1()
    assert len(evacuated) >= 3
    found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv1", max_parallel_migrations=2))
    assert found["plan"]["feasible"], found["_output"]
    evacuation = found["evacuation"]
    assert evacuation["status"] == "ok" and evacuation["moved"] == len(evacuated), evacuation
    assert found["mark"]["run_id"] and found["mark"]["state"] == "in_maintenance"
    running = lab.running_guests()
    for name in evacuated:
        assert len(running[name]) == 1 and running[name][0] in ("hv2", "hv3"), (name, running[name])
        host = running[name][0]
        info = lab.exec(host, "virsh", "-c", "qemu:///system", "dominfo", name).stdout
        assert "Persistent:     yes" in info
        assert lab.exec("hv1", "virsh", "-c", "qemu:///system", "dominfo", name, check=False).returncode != 0
    planned = {move["vm"]: move["target"] for move in found["plan"]["moves"]["hv1"]}
    assert {name: running[name][0] for name in evacuated} == planned


@pytest.mark.parametrize(("case", "complaint"), [
    ("memory", "t-big: needs {big} MiB"),
    ("tags", "t-gpu: requires host tag gpu"),
    ("anti-affinity", "t-db1: anti-affinity group db"),
])
def test_a_cluster_that_cannot_absorb_the_host_fails_the_check_before_anything_moves(
        lab: Lab, guests: List[str], tmp_path: Path, case: str, complaint: str) -> None:
    big = lab.schedulable_memory_mib() + 200  # more than any host of the cluster can take
    complaint = complaint.format(big=big)
    if case == "memory":
        guests.append("t-big")
        lab.add_guest("hv1", "t-big", memory_mib=big)
    elif case == "tags":
        guests.append("t-gpu")
        lab.add_guest("hv1", "t-gpu", metadata=placement_metadata(tags=["gpu"]))
    else:
        for index, host in enumerate(CLUSTER, 1):
            guests.append("t-db%d" % index)
            lab.add_guest(host, "t-db%d" % index, metadata=placement_metadata(groups=["db"]))
    before = lab.running_guests()
    found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv1"))
    plan = found["plan"]
    assert plan["failed"] and not plan["feasible"]
    assert "capacity check failed, nothing was moved" in plan["msg"] and complaint in plan["msg"], plan["msg"]
    assert "evacuation" not in found
    assert lab.running_guests() == before


def test_required_tags_are_honoured_when_a_host_has_them(lab: Lab, guests: List[str], tmp_path: Path) -> None:
    guests.append("t-gpu")
    lab.add_guest("hv1", "t-gpu", metadata=placement_metadata(tags=["gpu"]))
    tagged = tmp_path / "tags.yml"
    tagged.write_text(yaml.safe_dump({"all": {"hosts": {"hv3": {"rm_host_tags": ["gpu", "ssd"]}}}}))
    found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv1"), "-i", str(tagged))
    assert found["evacuation"]["status"] == "ok", found["_output"]
    assert lab.guest_host("t-gpu") == "hv3"


def test_the_check_counts_room_cumulatively(lab: Lab, guests: List[str], tmp_path: Path) -> None:
    # hv3 is disabled: hv2 alone must take both; each guest (55 % of a host) fits there alone, both do not.
    half = lab.schedulable_memory_mib() * 55 // 100
    guests.extend(["t-half1", "t-half2"])
    lab.add_guest("hv1", "t-half1", memory_mib=half)
    lab.add_guest("hv1", "t-half2", memory_mib=half)
    disabled = tmp_path / "disabled.yml"
    disabled.write_text(yaml.safe_dump({"all": {"hosts": {"hv3": {"rm_host_enabled": False}}}}))
    before = lab.running_guests()
    found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv1"), "-i", str(disabled))
    plan = found["plan"]
    assert not plan["feasible"] and "t-half" in plan["msg"] and "needs %d MiB" % half in plan["msg"], plan["msg"]
    assert "evacuation" not in found and lab.running_guests() == before


def test_a_migration_failing_mid_evacuation_leaves_maintenance_and_loses_no_guest(
        lab: Lab, guests: List[str], tmp_path: Path) -> None:
    guests.extend(["t-m1", "t-m2"])
    for name in guests:
        lab.add_guest("hv1", name)
    uuids = {name: lab.exec("hv1", "virsh", "-c", "qemu:///system", "domuuid", name).stdout.strip() for name in guests}
    hv2, hv3 = (lab.hosts[name]["ansible_host"] for name in ("hv2", "hv3"))
    moves = [{"vm": "t-m1", "uuid": uuids["t-m1"], "target": "hv2", "target_uri": "qemu+tcp://%s/system" % hv2},
             {"vm": "t-m2", "uuid": uuids["t-m2"], "target": "hv3", "target_uri": "qemu+tcp://%s/system" % hv3}]
    kill_target = {"name": "hv3's libvirtd dies", "delegate_to": "localhost", "ansible.builtin.command": (
        "%s exec hv3 -- sh -c 'kill $(cat /run/libvirt/libvirtd.pid)'" % KVMLAB)}
    try:
        found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv1", moves=moves, extra_task=kill_target,
                                                        max_parallel_migrations=1))
    finally:
        lab.start_libvirtd("hv3")
    evacuation = found["evacuation"]
    assert evacuation["failed"] and evacuation["status"] == "failed", evacuation
    assert not evacuation["in_maintenance"] and found["mark"] is None
    outcome = {move["vm"]: (move["status"], move["target"]) for move in evacuation["moves"]}
    assert outcome == {"t-m1": ("moved", "hv2"), "t-m2": ("failed", "hv3")}
    assert "the migration of t-m2 to hv3 failed" in evacuation["msg"]
    assert lab.guest_host("t-m1") == "hv2" and lab.guest_host("t-m2") == "hv1"


def test_check_mode_shows_the_plan_and_moves_nothing(lab: Lab, guests: List[str], tmp_path: Path) -> None:
    if lab.ensure_guest("hv2", "t-check-hv2"):  # earlier tests moved them away
        guests.append("t-check-hv2")
    before = lab.running_guests()
    found = run(lab, tmp_path, maintenance_playbook(tmp_path, "hv2"), "--check")
    evacuation = found["evacuation"]
    assert evacuation["status"] == "would_run" and not evacuation["failed"], evacuation
    planned = {move["vm"] for move in evacuation["moves"]}
    assert planned == {name for name, hosts in before.items() if hosts == ["hv2"]} and planned
    assert lab.running_guests() == before
    assert lab.exec("hv2", "test", "-e", "/var/lib/kvm-rolling-maintenance/maintenance.json", check=False).returncode
