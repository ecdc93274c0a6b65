"""The lab of simulated KVM hosts as the end-to-end tests drive it, and real ansible-playbook runs against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml

from bootstrapped import TOOLS
from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import process_start_ticks
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import CLUSTER_MARK, LOCK_MARK, MAINTENANCE_MARK

REPO = Path(__file__).resolve().parents[2]
KVMLAB = REPO / "extensions" / "lab" / "kvmlab"
VENV_BIN = Path(sys.executable).parent
LIBVIRTD_PID_FILE = "/run/libvirt/libvirtd.pid"
# What a run that ended, however it ended, leaves on no host: a host in maintenance, a cluster disabled, a lock.
RUN_MARKS = (MAINTENANCE_MARK, CLUSTER_MARK, LOCK_MARK)


def sleep_marker() -> str:
    """A sleep duration no other process uses, to look for a script's processes afterwards."""
    return "40.%09d" % (uuid.uuid4().int % 10 ** 9)


def wait_until(condition: Callable[[], Any], what: str, limit: float = 120, interval: float = 0.1,
               process: "Optional[subprocess.Popen[str]]" = None) -> Any:
    """Wait for a state (not for a time): return the condition's first true value; fail naming WHAT after LIMIT s,
    or as soon as PROCESS (the run that should bring the state about) has ended."""
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError("the run ended (rc %s) before %s" % (process.returncode, what))
        if time.monotonic() >= deadline:
            raise AssertionError("gave up after %g s waiting for %s" % (limit, what))
        time.sleep(interval)


def placement_metadata(tags: Sequence[str] = (), groups: Sequence[str] = ()) -> str:
    """A guest's placement metadata (docs/placement-metadata.md): required host tags, anti-affinity groups."""
    return ('<rm:placement xmlns:rm="urn:kvmops:rolling:placement:1">%s%s</rm:placement>' % (
        "".join("<rm:host-tag>%s</rm:host-tag>" % tag for tag in tags),
        "".join("<rm:anti-affinity-group>%s</rm:anti-affinity-group>" % group for group in groups)))


def process_alive(pid: int) -> bool:
    """Whether PID is a live process (a zombie waiting for the machine's lazy PID 1 counts as dead)."""
    return process_start_ticks(pid) is not None


class Lab:
    """The running lab, as the tests see it."""

    def __init__(self) -> None:
        self.inventory = self.kvmlab("inventory").stdout.strip()
        with open(self.inventory) as handle:
            tree = yaml.safe_load(handle)
        clusters = tree["all"]["children"]["kvm_hosts"]["children"]
        self.hosts: Dict[str, Dict[str, Any]] = {}
        for cluster in clusters.values():
            self.hosts.update(cluster["hosts"])

    @staticmethod
    def kvmlab(*args: str, check: bool = True, timeout: float = 300) -> "subprocess.CompletedProcess[str]":
        return subprocess.run([str(KVMLAB), *args], capture_output=True, text=True, check=check, timeout=timeout)

    def hooks_dir(self, host: str) -> Path:
        return Path(self.kvmlab("path", host, "hooks").stdout.strip())

    def exec(self, host: str, *command: str, check: bool = True) -> "subprocess.CompletedProcess[str]":
        return self.kvmlab("exec", host, "--", *command, check=check)

    def host_dir(self, host: str) -> Path:
        return Path(self.kvmlab("path", host).stdout.strip())

    def state_dir(self, host: str) -> Path:
        """HOST's state dir (its /var/lib/kvm-rolling-maintenance), seen from the machine."""
        return Path(self.kvmlab("path", host, "state").stdout.strip())

    def marks_left(self, hosts: List[str]) -> Dict[str, List[str]]:
        """Host -> the run marks on it, for the HOSTS that have any."""
        found = {host: [mark for mark in RUN_MARKS if (self.state_dir(host) / mark).exists()] for host in hosts}
        return {host: marks for host, marks in found.items() if marks}

    def ssh_sessions(self, host: str) -> List[int]:
        """The PIDs of HOST's sshd session processes ("sshd: root@notty"; not the listener), found in the host's
        own network namespace (hosts of every lab share the machine's PID namespace)."""
        holder = int((self.host_dir(host) / "holder.pid").read_text().split()[0])
        netns = os.stat("/proc/%d/ns/net" % holder).st_ino
        found = []
        for entry in os.listdir("/proc"):
            try:
                if not entry.isdigit() or os.stat("/proc/%s/ns/net" % entry).st_ino != netns:
                    continue
                argv = Path("/proc/%s/cmdline" % entry).read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if argv.startswith("sshd: ") and "@" in argv:
                found.append(int(entry))
        return found

    def boot_id(self, host: str) -> str:
        return self.exec(host, "cat", "/proc/sys/kernel/random/boot_id").stdout.strip()

    def processes_matching(self, host: str, pattern: str) -> str:
        """``pgrep -af PATTERN`` as seen on HOST (hosts share the machine's PID namespace: use unique patterns)."""
        return self.exec(host, "pgrep", "-af", pattern, check=False).stdout.strip()

    def libvirtd_pid(self, host: str) -> Optional[int]:
        """The PID of the host's libvirtd while it lives."""
        try:
            pid = int((self.host_dir(host) / "run-libvirt" / "libvirtd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if process_alive(pid) else None

    def kill_libvirtd(self, host: str, signum: int = 9) -> int:
        """Send the host's libvirtd a signal (SIGKILL by default: it dies, its guests' QEMUs live on); return its PID."""
        pid = self.libvirtd_pid(host)
        assert pid, "%s has no libvirtd running" % host
        os.kill(pid, signum)
        return pid

    def start_libvirtd(self, host: str) -> None:
        """Start the host's libvirtd as the lab boots it, once the old one is gone; it reattaches to running guests."""
        wait_until(lambda: self.libvirtd_pid(host) is None, "the old libvirtd of %s to end" % host, limit=60)
        self.exec(host, "libvirtd", "--daemon", "--listen", "--pid-file", LIBVIRTD_PID_FILE)
        wait_until(lambda: self.exec(host, "virsh", "-c", "qemu:///system", "version", check=False).returncode == 0,
                   "libvirtd of %s to answer" % host, limit=60)

    def restart_libvirtd(self, host: str) -> None:
        """Stop the host's libvirtd (if it runs) and start it again, e.g. to load new libvirt hook scripts."""
        if self.libvirtd_pid(host):
            self.kill_libvirtd(host, 15)
        self.start_libvirtd(host)

    def running_guests(self) -> Dict[str, List[str]]:
        """Guest name -> the hosts it runs on (a healthy lab has exactly one for each)."""
        report = json.loads(self.kvmlab("guests", "--json").stdout)
        found: Dict[str, List[str]] = {}
        for host, guests in report.items():
            for guest in guests:
                assert "error" not in guest, "%s: %s" % (host, guest)
                if guest["state"] == "running":
                    found.setdefault(guest["name"], []).append(host)
        return found

    def node_memory_mib(self, host: str = "hv1") -> int:
        """The memory libvirt reports for a lab host (the machine's, seen through its VM; it varies between machines)."""
        for line in self.exec(host, "virsh", "-c", "qemu:///system", "nodeinfo").stdout.splitlines():
            if line.startswith("Memory size:"):
                return int(line.split()[2]) // 1024
        raise AssertionError("virsh nodeinfo on %s reports no memory size" % host)

    def schedulable_memory_mib(self, host: str = "hv1") -> int:
        """What the planner may fill on a lab host: node memory less the default reserved 1024 MiB."""
        return self.node_memory_mib(host) - 1024

    def guest_host(self, name: str) -> str:
        [host] = self.running_guests()[name]
        return host

    def add_guest(self, host: str, name: str, memory_mib: int = 64, metadata: str = "") -> None:
        args = ["guest", host, name, "--memory-mib", str(memory_mib)]
        if not metadata:
            self.kvmlab(*args)
            return
        with tempfile.NamedTemporaryFile("w", suffix="-metadata.xml") as handle:  # /tmp is every worker's
            handle.write(metadata)
            handle.flush()
            self.kvmlab(*args, "--metadata-xml", handle.name)

    def ensure_guest(self, host: str, name: str = "") -> str:
        """At least one guest runs on HOST alone (earlier tests move guests around); returns the one added, or ""."""
        if any(hosts == [host] for hosts in self.running_guests().values()):
            return ""
        name = name or "t-on-%s" % host
        self.add_guest(host, name)
        return name

    def remove_guest(self, name: str) -> None:
        """Destroy and undefine a guest wherever it is defined."""
        report = json.loads(self.kvmlab("guests", "--json").stdout)
        for host, guests in report.items():
            if any(guest.get("name") == name for guest in guests):
                self.exec(host, "virsh", "-c", "qemu:///system", "destroy", name, check=False)
                self.exec(host, "virsh", "-c", "qemu:///system", "undefine", name, check=False)

    def write_hook(self, host: str, name: str, body: str, mode: int = 0o755) -> Path:
        path = self.hooks_dir(host) / name
        path.write_text(body if body.startswith("#!") else "#!/bin/sh\n" + body + "\n")
        path.chmod(mode)
        return path

    def clear_hooks(self, host: str) -> None:
        for entry in self.hooks_dir(host).iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    def playbook_command(self, playbook: Path, *args: str, env: Optional[Dict[str, str]] = None,
                         venv_bin: Path = VENV_BIN, inventory: Optional[Path] = None) -> Dict[str, Any]:
        """subprocess keyword arguments that run ansible-playbook on the lab (or ``inventory``) from the repository."""
        environment = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                           PATH="%s:%s" % (venv_bin, os.environ.get("PATH", "")), ANSIBLE_FORCE_COLOR="0")
        environment.update(env or {})
        return {"args": [str(venv_bin / "ansible-playbook"), "-i", str(inventory or self.inventory), str(playbook), *args],
                "env": environment, "cwd": str(REPO), "text": True}

    def playbook(self, playbook: Path, *args: str, env: Optional[Dict[str, str]] = None,
                 timeout: float = 600, venv_bin: Path = VENV_BIN) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(capture_output=True, timeout=timeout, check=False,
                              **self.playbook_command(playbook, *args, env=env, venv_bin=venv_bin))

    def run_stage(self, tmp_path: Path, host: str, check_mode: bool = False, **options: Any) -> Dict[str, Any]:
        """Run the maintenance_stage task on one host through a real playbook; return its registered result."""
        return self.run_module(tmp_path, host, "kvmops.rolling.maintenance_stage", check_mode, **options)

    def run_module(self, tmp_path: Path, host: str, module: str, check_mode: bool = False,
                   **options: Any) -> Dict[str, Any]:
        """Run one task of MODULE on one host through a real playbook; return its registered result."""
        out = tmp_path / ("result-%s.json" % uuid.uuid4().hex[:8])
        playbook = tmp_path / ("task-%s.yml" % uuid.uuid4().hex[:8])
        playbook.write_text(yaml.safe_dump([{
            "hosts": host, "gather_facts": False,
            "tasks": [
                {"name": "task", module: options, "register": "stage_result",
                 "ignore_errors": True},
                {"name": "save", "delegate_to": "localhost",
                 "ansible.builtin.copy": {"content": "{{ stage_result | to_json }}", "dest": str(out)},
                 "check_mode": False},
            ],
        }]))
        completed = self.playbook(playbook, *(["--check"] if check_mode else []))
        if not out.exists():
            raise AssertionError("the playbook left no result:\n%s\n%s" % (completed.stdout, completed.stderr))
        result: Dict[str, Any] = json.loads(out.read_text())
        result["_output"] = completed.stdout + completed.stderr
        return result


def installed_collection(where: Path) -> Path:
    """The collection built into a tarball and installed from it under WHERE, as a user installs it; returns the
    collections path holding that copy alone."""
    subprocess.run([str(TOOLS / "ansible-galaxy"), "collection", "build", "--output-path", str(where), str(REPO)],
                   check=True, capture_output=True)
    [tarball] = where.glob("kvmops-rolling-*.tar.gz")
    installed = where / "collections"
    subprocess.run([str(TOOLS / "ansible-galaxy"), "collection", "install", "-p", str(installed), str(tarball)],
                   check=True, capture_output=True, cwd=where,
                   env={name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")})
    return installed
