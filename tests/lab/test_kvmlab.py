"""Smoke test of extensions/lab/kvmlab: a small lab of its own (1 cluster x 2 hosts x 1 guest).

Runs as root only. Uses its own KVMLAB_DIR / KVMLAB_NAME / KVMLAB_SUBNET, so it can run while the
default lab and the test workers' labs are up. The tests run in file order and share one lab (module fixture).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

yaml = pytest.importorskip("yaml")

pytestmark = [
    pytest.mark.lab,
    pytest.mark.xdist_group("kvmlab-smoke"),  # one lab for the module: its tests go to one worker, in order
    pytest.mark.skipif(os.geteuid() != 0, reason="kvmlab needs root"),
]

KVMLAB = Path(__file__).resolve().parents[2] / "extensions" / "lab" / "kvmlab"
LAB_DIR = "/tmp/kvmlab-smoke"
LAB_NAME = "kvmsmoke"
SUBNET_PREFIX = "10.213.59."
LAB_ENV = {**os.environ, "KVMLAB_DIR": LAB_DIR, "KVMLAB_NAME": LAB_NAME,
           "KVMLAB_SUBNET": SUBNET_PREFIX + "0/24"}


def kvmlab(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(KVMLAB), *args], env=LAB_ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check:
        assert proc.returncode == 0, f"kvmlab {' '.join(args)}: rc={proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def ssh(lab: dict[str, Any], host: str, command: str, connect_timeout: int = 5,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["ssh", "-i", lab["key"], "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ControlMaster=no",
         "-o", "ControlPath=none", "-o", f"ConnectTimeout={connect_timeout}",
         f"root@{lab['hosts'][host]}", command],
        capture_output=True, text=True, timeout=connect_timeout + 30, check=False)
    if check:
        assert proc.returncode == 0, f"ssh {host} {command!r}: rc={proc.returncode}\n{proc.stderr}"
    return proc


def guests() -> dict[str, list[dict[str, Any]]]:
    return json.loads(kvmlab("guests", "--json").stdout)


@pytest.fixture(scope="module")
def lab() -> Iterator[dict[str, Any]]:
    kvmlab("up", "--clusters", "1", "--hosts-per-cluster", "2", "--vms-per-host", "1", timeout=180)
    try:
        inventory_path = kvmlab("inventory").stdout.strip()
        inventory = yaml.safe_load(Path(inventory_path).read_text())
        hosts = inventory["all"]["children"]["kvm_hosts"]["children"]["c1"]["hosts"]
        yield {
            "inventory": inventory,
            "key": inventory["all"]["vars"]["ansible_ssh_private_key_file"],
            "hosts": {name: spec["ansible_host"] for name, spec in hosts.items()},
        }
    finally:
        kvmlab("down", check=False)


def test_inventory_and_ssh(lab: dict[str, Any]) -> None:
    assert list(lab["hosts"]) == ["hv1", "hv2"]
    assert lab["hosts"] == {"hv1": SUBNET_PREFIX + "11", "hv2": SUBNET_PREFIX + "12"}
    spec = lab["inventory"]["all"]["children"]["kvm_hosts"]["children"]["c1"]["hosts"]["hv2"]
    assert (spec["rm_zone"], spec["rm_pod"], spec["rm_cluster"]) == ("z1", "p1", "c1")
    boot_ids = {}
    for host in lab["hosts"]:
        assert ssh(lab, host, "hostname").stdout.strip() == host
        boot_ids[host] = ssh(lab, host, "cat /proc/sys/kernel/random/boot_id").stdout.strip()
        # Plain qemu:///system in a session reaches the host's own libvirtd.
        listed = ssh(lab, host, "virsh -c qemu:///system list --name").stdout.split()
        assert listed == [f"{host}-vm1"]
        assert ssh(lab, host, "stat -c %a /var/lib/kvm-rolling-maintenance "
                              "/etc/kvm-rolling-maintenance/hooks").stdout.split() == ["700", "755"]
    assert len(set(boot_ids.values())) == 2
    # The host dir's hooks/ is what the host sees as its hooks dir.
    hooks = Path(kvmlab("path", "hv1", "hooks").stdout.strip())
    (hooks / "marker").write_text("x")
    assert ssh(lab, "hv1", "ls /etc/kvm-rolling-maintenance/hooks").stdout.split() == ["marker"]
    assert ssh(lab, "hv2", "ls /etc/kvm-rolling-maintenance/hooks").stdout.split() == []
    (hooks / "marker").unlink()


def test_live_migration(lab: dict[str, Any]) -> None:
    target = lab["hosts"]["hv2"]
    proc = kvmlab("exec", "hv1", "--", "virsh", "-c", "qemu:///system", "migrate", "--live", "--p2p",
                  "--persistent", "--undefinesource", "hv1-vm1", f"qemu+tcp://{target}/system")
    assert proc.returncode == 0
    listing = guests()
    everywhere = [(host, g) for host, entries in listing.items() for g in entries
                  if g.get("name") == "hv1-vm1"]
    assert everywhere == [("hv2", {"name": "hv1-vm1", "state": "running", "persistent": True})]


def test_exec_passes_exit_code(lab: dict[str, Any]) -> None:
    proc = kvmlab("exec", "hv2", "--", "sh", "-c", "hostname; pwd; exit 3", check=False)
    assert (proc.returncode, proc.stdout.split()) == (3, ["hv2", "/"])
    assert kvmlab("exec", "hv9", "--", "true", check=False).returncode != 0


def test_reboot_changes_boot_id(lab: dict[str, Any]) -> None:
    before = ssh(lab, "hv2", "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    kvmlab("reboot", "hv2")
    after = ssh(lab, "hv2", "cat /proc/sys/kernel/random/boot_id").stdout.strip()
    assert after and after != before
    # Definitions survive, the guests come back shut off (as after a real reboot).
    states = {g["name"]: (g["state"], g["persistent"]) for g in guests()["hv2"]}
    assert states == {"hv1-vm1": ("shut off", True), "hv2-vm1": ("shut off", True)}


def test_link_down_drops_traffic(lab: dict[str, Any]) -> None:
    kvmlab("link", "hv1", "down")
    try:
        started = time.monotonic()
        proc = ssh(lab, "hv1", "true", connect_timeout=2, check=False)
        assert proc.returncode == 255
        assert time.monotonic() - started >= 1.5, "expected a timeout, not a refusal"
        status = json.loads(kvmlab("status", "--json").stdout)["hv1"]
        assert status["link"] == "down" and status["sshd"] and status["libvirtd"]
    finally:
        kvmlab("link", "hv1", "up")
    assert ssh(lab, "hv1", "hostname").stdout.strip() == "hv1"


def test_down_leaves_nothing_behind(lab: dict[str, Any]) -> None:
    status = json.loads(kvmlab("status", "--json").stdout)
    pids = [st[f"{name}_pid"] for st in status.values() for name in ("holder", "sshd", "libvirtd")]
    assert all(pids)
    kvmlab("down")
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert LAB_NAME not in netns
    routes = subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout
    assert SUBNET_PREFIX not in routes
    links = subprocess.run(["ip", "link"], capture_output=True, text=True, check=True).stdout
    assert f"{LAB_NAME}-c" not in links
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(pid_running(pid) for pid in pids):
        time.sleep(0.1)
    assert not [pid for pid in pids if pid_running(pid)]
    leftovers = [pid for pid in running_pids() if LAB_DIR.encode() in cmdline(pid)]
    assert not leftovers
    assert kvmlab("down").returncode == 0  # a second down is a no-op
    assert kvmlab("status", check=False).returncode != 0  # "lab not up" is an error


def running_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and pid_running(int(name))]


def pid_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is gone, just not yet reaped by its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
