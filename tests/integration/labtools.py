"""The lab of simulated KVM hosts as the end-to-end tests drive it, and real ansible-playbook runs against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

REPO = Path(__file__).resolve().parents[2]
KVMLAB = REPO / "tests" / "lab" / "kvmlab"
VENV_BIN = Path(sys.executable).parent


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
        if metadata:
            path = Path("/tmp/%s-metadata.xml" % name)
            path.write_text(metadata)
            args += ["--metadata-xml", str(path)]
        self.kvmlab(*args)

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
                         venv_bin: Path = VENV_BIN) -> Dict[str, Any]:
        """subprocess keyword arguments that run ansible-playbook on the lab from the repository."""
        environment = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                           PATH="%s:%s" % (venv_bin, os.environ.get("PATH", "")), ANSIBLE_FORCE_COLOR="0")
        environment.update(env or {})
        return {"args": [str(venv_bin / "ansible-playbook"), "-i", self.inventory, str(playbook), *args],
                "env": environment, "cwd": str(REPO), "text": True}

    def playbook(self, playbook: Path, *args: str, env: Optional[Dict[str, str]] = None,
                 timeout: float = 600, venv_bin: Path = VENV_BIN) -> "subprocess.CompletedProcess[str]":
        return subprocess.run(capture_output=True, timeout=timeout, check=False,
                              **self.playbook_command(playbook, *args, env=env, venv_bin=venv_bin))

    def run_stage(self, tmp_path: Path, host: str, check_mode: bool = False, **options: Any) -> Dict[str, Any]:
        """Run the maintenance_stage task on one host through a real playbook; return its registered result."""
        out = tmp_path / ("stage-%s.json" % uuid.uuid4().hex[:8])
        playbook = tmp_path / ("stage-%s.yml" % uuid.uuid4().hex[:8])
        playbook.write_text(yaml.safe_dump([{
            "hosts": host, "gather_facts": False,
            "tasks": [
                {"name": "stage", "kvmops.rolling.maintenance_stage": options, "register": "stage_result",
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
