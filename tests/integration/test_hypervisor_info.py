"""hypervisor_info end to end: ansible-playbook over SSH to a simulated KVM host and its real libvirtd."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

from labtools import Lab

pytestmark = pytest.mark.lab
HOST = "hv3"
NS = "urn:kvmops:rolling:placement:1"


def hypervisor_info(lab: Lab, tmp_path: Path, host: str, check_mode: bool = False, **options: Any) -> Dict[str, Any]:
    """Run kvmops.rolling.hypervisor_info on one host through a real playbook; return its registered result."""
    out = tmp_path / ("info-%s.json" % uuid.uuid4().hex[:8])
    playbook = tmp_path / ("info-%s.yml" % uuid.uuid4().hex[:8])
    playbook.write_text(yaml.safe_dump([{
        "hosts": host, "gather_facts": False,
        "tasks": [
            {"name": "info", "kvmops.rolling.hypervisor_info": options, "register": "info", "ignore_errors": True},
            {"name": "save", "delegate_to": "localhost", "check_mode": False,
             "ansible.builtin.copy": {"content": "{{ info | to_json }}", "dest": str(out)}},
        ],
    }]))
    completed = lab.playbook(playbook, *(["--check"] if check_mode else []))
    if not out.exists():
        raise AssertionError("the playbook left no result:\n%s\n%s" % (completed.stdout, completed.stderr))
    result: Dict[str, Any] = json.loads(out.read_text())
    return result


def by_name(result: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {entry["name"]: entry for entry in result["hypervisor"]["domains"]}


@pytest.fixture
def extra_guests(lab: Lab) -> Iterator[List[str]]:
    """Names of guests a test adds to HOST; destroyed and undefined afterwards."""
    names: List[str] = []
    yield names
    for name in names:
        lab.exec(HOST, "virsh", "destroy", name, check=False)
        lab.exec(HOST, "virsh", "undefine", name, check=False)


@pytest.fixture
def state_dir(lab: Lab) -> Iterator[Path]:
    """HOST's state dir (its /var/lib/kvm-rolling-maintenance), with maintenance.json removed afterwards."""
    path = lab.state_dir(HOST)
    yield path
    (path / "maintenance.json").unlink(missing_ok=True)


def test_reports_node_guests_and_placement_metadata(lab: Lab, tmp_path: Path, extra_guests: List[str]) -> None:
    name = "hi-%s" % uuid.uuid4().hex[:6]
    metadata = tmp_path / "placement.xml"
    metadata.write_text("<rm:placement xmlns:rm='%s'><rm:host-tag>ssd</rm:host-tag><rm:host-tag>gpu</rm:host-tag>"
                        "<rm:anti-affinity-group>db-primary</rm:anti-affinity-group></rm:placement>" % NS)
    extra_guests.append(name)
    lab.kvmlab("guest", HOST, name, "--memory-mib", "1536", "--vcpus", "2", "--metadata-xml", str(metadata))
    # Whatever runs on the host now (earlier tests may have moved the lab's guests around).
    running_here = sorted(guest for guest, hosts in lab.running_guests().items() if hosts == [HOST])

    for check_mode in (False, True):
        result = hypervisor_info(lab, tmp_path, HOST, check_mode=check_mode)
        assert not result.get("failed") and result["changed"] is False, result
        hypervisor = result["hypervisor"]
        assert hypervisor["hostname"] == HOST and hypervisor["uri"] == "qemu:///system"
        assert hypervisor["node"]["cpus"] >= 1 and hypervisor["node"]["memory_mib"] > 1024
        assert hypervisor["node"]["libvirt_version"].count(".") == 2
        assert hypervisor["maintenance"] is None
        assert "free_memory" not in json.dumps(hypervisor["node"])
        domains = by_name(result)
        assert sorted(guest for guest, entry in domains.items() if entry["active"]) == running_here
        assert [entry["name"] for entry in hypervisor["domains"]] == sorted(domains)
        added = domains[name]
        assert (added["state"], added["active"], added["transitional"], added["persistent"]) == \
            ("running", True, False, True)
        assert (added["memory_mib"], added["vcpus"]) == (1536, 2)
        assert (added["host_tags"], added["anti_affinity_groups"]) == (["gpu", "ssd"], ["db-primary"])
        assert added["migration_blockers"] == [] and added["notes"] == []
        for standard in (guest for guest in running_here if guest.startswith("hv") and "-vm" in guest):
            entry = domains[standard]
            assert (entry["state"], entry["memory_mib"], entry["vcpus"], entry["host_tags"], entry["transitional"]) \
                == ("running", 64, 1, [], False)


def test_metadata_set_with_virsh_paused_and_shut_off_guests(lab: Lab, tmp_path: Path,
                                                            extra_guests: List[str]) -> None:
    paused, stopped = "hp-%s" % uuid.uuid4().hex[:6], "hs-%s" % uuid.uuid4().hex[:6]
    extra_guests.extend([paused, stopped])
    lab.kvmlab("guest", HOST, paused, "--memory-mib", "128")
    lab.kvmlab("guest", HOST, stopped, "--memory-mib", "3000", "--no-start")
    # The commands docs/placement-metadata.md gives operators: a running guest gets --live --config.
    lab.exec(HOST, "virsh", "metadata", paused, NS, "--key", "rm", "--live", "--config", "--set",
             "<placement><anti-affinity-group>web</anti-affinity-group></placement>")
    lab.exec(HOST, "virsh", "suspend", paused)
    lab.exec(HOST, "virsh", "metadata", stopped, NS, "--key", "rm", "--config", "--set",
             "<placement><host-tag>ssd</host-tag><host-tag></host-tag></placement>")

    domains = by_name(hypervisor_info(lab, tmp_path, HOST))
    entry = domains[paused]
    assert (entry["state"], entry["state_reason"], entry["active"], entry["transitional"]) == \
        ("paused", "user", True, False)
    assert entry["anti_affinity_groups"] == ["web"]
    entry = domains[stopped]
    assert (entry["state"], entry["active"], entry["transitional"], entry["memory_mib"]) == \
        ("shutoff", False, False, 3000)
    assert entry["host_tags"] == ["ssd"]
    assert entry["migration_blockers"] == [
        "placement metadata (%s): empty <host-tag>; fix it with `virsh metadata`" % NS]


def test_maintenance_state_is_reported_and_corruption_named(lab: Lab, tmp_path: Path, state_dir: Path) -> None:
    (state_dir / "maintenance.json").write_text('{"run_id": "it-1", "since": 1700000000}')
    result = hypervisor_info(lab, tmp_path, HOST)
    assert result["hypervisor"]["maintenance"] == {"run_id": "it-1", "since": 1700000000}

    (state_dir / "maintenance.json").write_text('{"run_id": ')
    result = hypervisor_info(lab, tmp_path, HOST)
    assert result["failed"]
    assert result["msg"].startswith("/var/lib/kvm-rolling-maintenance/maintenance.json is corrupt (not valid JSON"), \
        result["msg"]


def test_unreachable_libvirt_fails_with_an_actionable_message(lab: Lab, tmp_path: Path) -> None:
    result = hypervisor_info(lab, tmp_path, HOST, uri="qemu:///system?socket=/run/libvirt/absent-sock")
    assert result["failed"]
    assert result["msg"].startswith("connecting to libvirt (URI qemu:///system?socket=/run/libvirt/absent-sock) "
                                    "failed: Failed to connect socket"), result["msg"]
    assert "[libvirt error 38, VIR_ERR_SYSTEM_ERROR]" in result["msg"] and "Hint: libvirtd is not running" in result["msg"]
