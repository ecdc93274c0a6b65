"""A rolling maintenance run on the lab, as the end-to-end tests drive it: logging hooks, the playbook, the report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from labtools import REPO, Lab

PLAYBOOK = REPO / "playbooks" / "rolling_maintenance.yml"
STAGES = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")
C1 = ["hv1", "hv2", "hv3"]
ALL = ["hv1", "hv2", "hv3", "hv4", "hv5", "hv6"]
# The newest supported ansible-core, when its venv was bootstrapped (2.18 and 2.20 are checked by make matrix).
OTHER_VENVS = [path for path in [REPO / ".venv-2.21"] if (path / "bin" / "ansible-playbook").exists()]


def wait_for_file(path: Path) -> str:
    """Shell for a hook: wait until the test creates PATH (at most 120 s, so a broken test cannot hang the run)."""
    return "i=0; while [ ! -e %s ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done" % path


class Run:
    """One scenario: hooks that log every stage to a file the controller reads, and the playbook run."""

    def __init__(self, lab: Lab, tmp_path: Path) -> None:
        self.lab = lab
        self.dir = tmp_path
        self.log = tmp_path / "events.log"
        self.log.touch()
        self.log.chmod(0o666)
        self.report_path = tmp_path / "report.json"
        self.completed: Any = None
        self.background: "List[subprocess.Popen[str]]" = []
        self.report: Dict[str, Any] = {}

    def hooks(self, hosts: List[str], special: Optional[Dict[Tuple[str, str], Optional[str]]] = None) -> None:
        """Every stage logs itself (with how many guests run on the host); ``special`` overrides one
        (host, stage): a body to run after logging, or None for no script at all."""
        special = special or {}
        for host in hosts:
            self.lab.clear_hooks(host)
            for stage in STAGES:
                if (host, stage) in special and special[host, stage] is None:
                    continue
                body = ('echo "$RM_STAGE $RM_HOST $(virsh -c qemu:///system list --name | grep -c .)" >> %s\n%s'
                        % (self.log, special.get((host, stage)) or "exit 0"))
                self.lab.write_hook(host, stage, body)

    def run_vars(self) -> List[str]:
        """The extra vars of every scenario run: fast polls, the report in the scenario's dir, cluster events logged."""
        return ["-e", json.dumps({
            "rm_ping_interval": 1, "rm_report_path": str(self.report_path),
            "rm_cluster_disable_command": "sh -c 'echo disable $RM_CLUSTER >> %s'" % self.log,
            "rm_cluster_enable_command": "sh -c 'echo enable $RM_CLUSTER >> %s'" % self.log})]

    def play(self, *args: str, venv_bin: Optional[Path] = None) -> Dict[str, Any]:
        kwargs = {"venv_bin": venv_bin} if venv_bin else {}
        self.completed = self.lab.playbook(PLAYBOOK, *self.run_vars(), *args, **kwargs)
        return self.read_report()

    def play_from_controller(self, hostname: str, *args: str) -> Dict[str, Any]:
        """The run from another controller: ansible-playbook in a UTS namespace of its own, named HOSTNAME (a
        second machine as the lock sees one: its own host name, none of its processes known here)."""
        command = self.lab.playbook_command(PLAYBOOK, *self.run_vars(), *args)
        command["args"] = ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *command["args"]]
        self.completed = subprocess.run(capture_output=True, timeout=600, check=False, **command)
        return self.read_report()

    def read_report(self) -> Dict[str, Any]:
        self.report = json.loads(self.report_path.read_text()) if self.report_path.exists() else {}
        return self.report

    def start(self, *args: str, venv_bin: Optional[Path] = None) -> "subprocess.Popen[str]":
        """The run in the background, in a process group of its own (so it can be killed whole, like a closed laptop)."""
        kwargs = {"venv_bin": venv_bin} if venv_bin else {}
        with open(self.dir / "background-run.log", "a") as output:  # the run keeps its own copy of the file
            process = subprocess.Popen(stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                                       **self.lab.playbook_command(PLAYBOOK, *self.run_vars(), *args, **kwargs))
        self.background.append(process)
        return process

    def end_background(self, timeout: float = 600) -> None:
        """Let the runs a failed test left in the background end (they clean up after themselves); kill what hangs."""
        for process in self.background:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def wait(self, process: "subprocess.Popen[str]", timeout: float = 600) -> Dict[str, Any]:
        """The end of a run started in the background: its exit code, and its report read."""
        process.wait(timeout=timeout)
        return self.read_report()

    @property
    def output(self) -> str:
        return self.completed.stdout + self.completed.stderr

    def events(self) -> List[List[str]]:
        return [line.split() for line in self.log.read_text().splitlines()]

    def stages_run(self, host: str) -> List[str]:
        return [event[0] for event in self.events() if len(event) == 3 and event[1] == host]

    def statuses(self) -> Dict[str, Tuple[str, str]]:
        found = {entry["host"]: ("updated", "") for entry in self.report["hosts_updated"]}
        found.update({entry["host"]: ("skipped", entry["stage"]) for entry in self.report["hosts_skipped"]})
        found.update({entry["host"]: ("failed", entry["stage"]) for entry in self.report["hosts_failed"]})
        return found
