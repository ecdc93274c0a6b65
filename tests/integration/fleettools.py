"""A larger fleet for scale runs: the lab's hosts plus extra hosts reached by local connection.

An extra host is the controller itself seen as another hypervisor: its own hooks dir and state dir
(under the test's directory), stage scripts that log to the run's events log, and libvirt's test
driver (``test:///<dir>/node.xml``, real libvirt API in-process) describing a node with CPUs,
memory and a few shut-off guests. Nothing runs on it that could migrate, so every evacuation of an
extra host has zero guests to move: the rolling maintenance treats it like any other host.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import yaml

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import descendants
from labtools import Lab
from runtools import PLAYBOOK, STAGES, Run

# Debian's interpreter with python3-libvirt (scripts/system-packages.txt), the one the lab hosts use too.
HOST_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class ExtraHost:
    """One local-connection host of the fleet."""

    name: str
    zone: str
    pod: str
    cluster: str
    hooks_dir: Path
    state_dir: Path
    node_xml: Path

    @property
    def libvirt_uri(self) -> str:
        return "test://%s" % self.node_xml

    def inventory_vars(self) -> Dict[str, Any]:
        return {"ansible_connection": "local", "ansible_python_interpreter": HOST_PYTHON,
                "rm_hooks_dir": str(self.hooks_dir), "rm_state_dir": str(self.state_dir),
                "rm_libvirt_uri": self.libvirt_uri, "rm_migration_uri": self.libvirt_uri,
                "rm_zone": self.zone, "rm_pod": self.pod, "rm_cluster": self.cluster}


def node_xml(cpus: int, memory_mib: int, parked_guests: List[str]) -> str:
    """A test-driver node: CPUs and memory, and the given guests defined but shut off (runstate 5)."""
    guests = "".join(
        "  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>\n"
        "    <name>%s</name>\n"
        "    <uuid>%s</uuid>\n"
        "    <memory unit='MiB'>512</memory>\n"
        "    <vcpu>1</vcpu>\n"
        "    <test:runstate>5</test:runstate>\n"
        "    <os><type arch='x86_64'>hvm</type></os>\n"
        "  </domain>\n" % (name, uuid.uuid5(uuid.NAMESPACE_DNS, name)) for name in parked_guests)
    return ("<node>\n"
            "  <cpu><nodes>1</nodes><sockets>1</sockets><cores>%d</cores><threads>1</threads>"
            "<active>%d</active><mhz>2000</mhz><model>x86_64</model></cpu>\n"
            "  <memory>%d</memory>\n%s</node>\n" % (cpus, cpus, memory_mib * 1024, guests))


def logging_hook(events_log: Path, libvirt_uri: str) -> str:
    """A stage script writing the same line as the lab hosts' hooks (runtools.Run.hooks): stage, host, running guests."""
    return ('#!/bin/sh\necho "$RM_STAGE $RM_HOST $(virsh -q -c %s list --name | grep -c .)" >> %s\n'
            % (libvirt_uri, events_log))


class Fleet:
    """The lab's hosts and ``clusters`` x ``hosts_per_cluster`` extra hosts, in one inventory.

    Extra clusters are c3, c4, ... after the lab's c1, c2; ``clusters_per_pod`` of them share a pod
    (p3, p4, ...); every host is in zone z1 like the lab's. Extra hosts are named fx01, fx02, ...
    """

    def __init__(self, lab: Lab, base: Path, clusters: int = 9, hosts_per_cluster: int = 6,
                 clusters_per_pod: int = 3, parked_guests_per_host: int = 2) -> None:
        self.lab = lab
        self.base = base
        first_cluster = len({str(variables["rm_cluster"]) for variables in lab.hosts.values()}) + 1
        first_pod = len({str(variables["rm_pod"]) for variables in lab.hosts.values()}) + 1
        self.extra: List[ExtraHost] = []
        for index in range(clusters * hosts_per_cluster):
            cluster_index = index // hosts_per_cluster
            name = "fx%02d" % (index + 1)
            home = base / "fleet" / name
            self.extra.append(ExtraHost(
                name=name, zone="z1", pod="p%d" % (first_pod + cluster_index // clusters_per_pod),
                cluster="c%d" % (first_cluster + cluster_index), hooks_dir=home / "hooks",
                state_dir=home / "state", node_xml=home / "node.xml"))
        self.parked_guests_per_host = parked_guests_per_host

    @property
    def hosts(self) -> List[str]:
        """Every host of the fleet in inventory order: the lab's first, then the extra ones."""
        return list(self.lab.hosts) + [host.name for host in self.extra]

    def prepare(self, events_log: Path) -> None:
        """Node definitions and logging stage scripts for every extra host (fresh state dirs)."""
        for host in self.extra:
            host.hooks_dir.mkdir(parents=True, exist_ok=True)
            host.state_dir.mkdir(parents=True, exist_ok=True)
            host.state_dir.chmod(0o700)
            parked = ["%s-parked%d" % (host.name, number + 1) for number in range(self.parked_guests_per_host)]
            host.node_xml.write_text(node_xml(cpus=8, memory_mib=32768, parked_guests=parked))
            for stage in STAGES:
                script = host.hooks_dir / stage
                script.write_text(logging_hook(events_log, host.libvirt_uri))
                script.chmod(0o755)

    def write_inventory(self, path: Path) -> Path:
        """The lab's inventory with the extra hosts added to the kvm_hosts tree, one group per cluster."""
        with open(self.lab.inventory) as handle:
            tree = yaml.safe_load(handle)
        clusters = tree["all"]["children"]["kvm_hosts"]["children"]
        for host in self.extra:
            clusters.setdefault(host.cluster, {"hosts": {}})["hosts"][host.name] = host.inventory_vars()
        path.write_text(yaml.safe_dump(tree, sort_keys=False))
        return path


def host_python_has_libvirt() -> bool:
    """Whether the extra hosts' interpreter imports the libvirt binding (python3-libvirt)."""
    return subprocess.run([HOST_PYTHON, "-c", "import libvirt"], capture_output=True, check=False).returncode == 0


# Controller memory ------------------------------------------------------------------------------------

def rss_kib(pid: int) -> Optional[int]:
    """VmRSS of a process in KiB, or None once it is gone (or a kernel thread without one)."""
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def process_tree(root: int) -> List[int]:
    """``root`` and every process descended from it, as /proc shows them now."""
    return [root] + sorted(descendants(root))


@dataclass(frozen=True)
class MemorySample:
    seconds: float       # since the playbook started
    main_kib: int        # RSS of the ansible-playbook process
    tree_kib: int        # summed RSS of it and its descendants (forked workers share pages: an upper bound)
    hosts_done: int      # hosts whose PostMaintenance had run when the sample was taken


class MemorySampler(threading.Thread):
    """Samples the RSS of a process (and of its tree) every ``interval`` seconds, with the run's progress."""

    def __init__(self, pid: int, hosts_done: Callable[[], int], interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.hosts_done = hosts_done
        self.interval = interval
        self.samples: List[MemorySample] = []
        self.began = time.monotonic()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            # Progress first: a sample is then never credited with a host finished after its RSS was read.
            done = self.hosts_done()
            main = rss_kib(self.pid)
            if main is None:
                return
            tree = sum(rss_kib(pid) or 0 for pid in process_tree(self.pid))
            self.samples.append(MemorySample(time.monotonic() - self.began, main, tree, done))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def hosts_done(run: Run) -> int:
    """Hosts whose PostMaintenance stage has logged (their turn in the one-host-at-a-time play is over)."""
    return sum(1 for event in run.events() if event[:1] == ["PostMaintenance"])


@dataclass
class SampledRun:
    completed: "subprocess.CompletedProcess[str]"
    samples: List[MemorySample]
    seconds: float


def play_sampled(run: Run, inventory: Path, *args: str, env: Optional[Dict[str, str]] = None,
                 timeout: float = 1800, interval: float = 0.5) -> SampledRun:
    """The scenario's rolling maintenance playbook over ``inventory``, its controller memory sampled meanwhile."""
    command = run.lab.playbook_command(PLAYBOOK, *run.run_vars(), *args, env=env, inventory=inventory)
    stdout_path, stderr_path = run.dir / "playbook.out", run.dir / "playbook.err"
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        began = time.monotonic()
        process = subprocess.Popen(stdout=stdout, stderr=stderr, **command)
        sampler = MemorySampler(process.pid, lambda: hosts_done(run), interval)
        sampler.start()
        try:
            returncode = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:  # a hung run must not hang the test session
                process.kill()
                process.wait()
            sampler.stop()
        seconds = time.monotonic() - began
    run.completed = subprocess.CompletedProcess(command["args"], returncode, stdout_path.read_text(), stderr_path.read_text())
    run.read_report()
    return SampledRun(run.completed, sampler.samples, seconds)


@dataclass(frozen=True)
class Window:
    """The samples taken while hosts ``first``..``last`` (1-based, in run order) had their turn."""

    first: int
    last: int
    samples: Sequence[MemorySample] = field(repr=False)

    @property
    def peak_main_kib(self) -> int:
        return max(sample.main_kib for sample in self.samples)

    @property
    def peak_tree_kib(self) -> int:
        return max(sample.tree_kib for sample in self.samples)

    @property
    def median_main_kib(self) -> float:
        return statistics.median(sample.main_kib for sample in self.samples)


def thirds(samples: Sequence[MemorySample], warm_up_hosts: int, hosts: int) -> List[Window]:
    """The hosts after the warm-up split in three, each with the samples taken during their turns.

    A sample with ``hosts_done == d`` was taken while host d+1 had its turn (or, at d == hosts, after the last).
    """
    size = (hosts - warm_up_hosts) // 3
    bounds = [(warm_up_hosts + index * size, warm_up_hosts + (index + 1) * size) for index in range(3)]
    bounds[-1] = (bounds[-1][0], hosts)
    return [Window(start + 1, end, [sample for sample in samples if start <= sample.hosts_done < end])
            for start, end in bounds]


def host_turn_seconds(samples: Sequence[MemorySample]) -> Dict[int, float]:
    """Host number (2nd on, run order) -> seconds from the previous host's end to its own, as the samples saw it
    (to the sampling interval). The first host's turn is left out: before it come the scope, gather and PreFlight."""
    ends: Dict[int, float] = {}
    for sample in samples:
        ends.setdefault(sample.hosts_done, sample.seconds)
    return {number: ends[number] - ends[number - 1] for number in sorted(ends) if number >= 2 and number - 1 in ends}


def figure_lines(sampled: SampledRun, windows: Sequence[Window], hosts: int) -> List[str]:
    """The run's figures as the test and the bench print them."""
    turns = host_turn_seconds(sampled.samples)
    lines = ["run: %d hosts in %.0f s (%.1f hosts per minute), %d memory samples"
             % (hosts, sampled.seconds, hosts * 60.0 / sampled.seconds, len(sampled.samples))]
    for name, window in zip(("first", "middle", "last"), windows):
        own = [turns[number] for number in range(window.first, window.last + 1) if number in turns]
        lines.append("%-6s third, hosts %2d-%2d: main RSS peak %6.1f MiB (median %6.1f), tree RSS peak %6.1f MiB, "
                     "%2d samples, %.1f s per host (median)"
                     % (name, window.first, window.last, window.peak_main_kib / 1024, window.median_main_kib / 1024,
                        window.peak_tree_kib / 1024, len(window.samples), statistics.median(own) if own else 0.0))
    lines.append("whole run: main RSS peak %.1f MiB, tree RSS peak %.1f MiB"
                 % (max(sample.main_kib for sample in sampled.samples) / 1024,
                    max(sample.tree_kib for sample in sampled.samples) / 1024))
    return lines
