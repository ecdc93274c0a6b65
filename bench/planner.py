"""How long the placement planner takes for a large cluster: 2,000 hosts with 40 VMs each, every host evacuated in turn.

The cluster is generated from a fixed seed: hosts of three sizes (256, 384 or 512 GiB; 128, 192 or
256 vCPUs after overcommit), each filled to 60-80 % of its memory by 40 VMs of common shapes (0.5 to
32 GiB, 1 to 16 vCPUs) scaled to that fill. About 10 % of the VMs require one host tag (one their
host carries: ssd on half the hosts, gpu on a tenth, avx512 on a fifth), about 10 % are in
anti-affinity groups of 2 to 5 VMs on distinct hosts, and 0.2 % cannot be live-migrated (host
devices), so a few steps are infeasible and their moves are rolled back, as in a real fleet. The
first lines of the output give the actual figures.

Timed: ``plan_cluster(hosts, all host names)`` alone (the input is built once, outside the timing;
``to_dict`` is not timed). Baseline, measured in the same rounds, alternating with the planner: a
plain Python pass over the same input that reads each VM's memory and vCPUs once and works out each
host's free memory and vCPUs once (the least work any planner must do). Reported: the medians and
their ratio, which is what to compare between machines.

Usage: .venv/bin/python bench/planner.py [--rounds N] [--hosts N] [--vms-per-host N] [--seed N] [--cpu-factor F]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, FrozenSet, List, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))

from ansible_collections.kvmops.rolling.plugins.plugin_utils._placement import (  # noqa: E402  pylint: disable=wrong-import-position
    HostCapacity,
    VmDemand,
    plan_cluster,
)

GIB = 1024
VM_SHAPES = [  # (memory MiB, vCPUs, weight)
    (512, 1, 6), (1 * GIB, 1, 10), (2 * GIB, 1, 14), (2 * GIB, 2, 10), (4 * GIB, 2, 16), (8 * GIB, 4, 14),
    (8 * GIB, 8, 5), (12 * GIB, 4, 4), (16 * GIB, 8, 4), (24 * GIB, 8, 2), (32 * GIB, 16, 1),
]
HOST_SHAPES = [(256 * GIB, 128), (384 * GIB, 192), (512 * GIB, 256)]


def build_cluster(hosts: int, per_host: int, seed: int, cpu_factor: float = 1.0) -> List[HostCapacity]:
    rng = random.Random(seed)
    shapes = [(memory, vcpus) for memory, vcpus, weight in VM_SHAPES for _copy in range(weight)]
    host_tags: List[FrozenSet[str]] = []
    drafts: List[List[Dict[str, Any]]] = []
    capacities: List[Tuple[int, int]] = []
    for number in range(hosts):
        tags: Set[str] = set()
        if rng.random() < 0.5:
            tags.add("ssd")
        if rng.random() < 0.1:
            tags.add("gpu")
        if rng.random() < 0.2:
            tags.add("avx512")
        memory, cpus = rng.choice(HOST_SHAPES)
        target = memory * rng.uniform(0.6, 0.8)
        picked = [rng.choice(shapes) for _vm in range(per_host)]
        scale = target / sum(vm_memory for vm_memory, _vcpus in picked)
        vms = []
        for slot, (vm_memory, vm_vcpus) in enumerate(picked):
            required: FrozenSet[str] = frozenset()
            if tags and rng.random() < 0.15:
                required = frozenset(rng.sample(sorted(tags), 1))
            vms.append({"name": "vm-%05d-%02d" % (number, slot), "memory": max(256, int(vm_memory * scale) // 256 * 256),
                        "vcpus": max(1, min(cpus // 4, round(vm_vcpus * min(scale, 1.5)))), "tags": required,
                        "groups": frozenset(), "blockers": ("hostdev: PCI 0000:3b:00.0",) if rng.random() < 0.002 else ()})
        host_tags.append(frozenset(tags))
        drafts.append(vms)
        capacities.append((memory, cpus))
    # Anti-affinity: about 10 % of the VMs, in groups of 2 to 5 on distinct hosts.
    grouped = [(number, vm) for number, vms in enumerate(drafts) for vm in vms if rng.random() < 0.1]
    rng.shuffle(grouped)
    group = 0
    size = rng.randint(2, 5)
    taken: Set[int] = set()
    for number, vm in grouped:
        if len(taken) == size or number in taken:     # full, or a second VM of this host: next group
            group += 1
            size = rng.randint(2, 5)
            taken = set()
        taken.add(number)
        vm["groups"] = frozenset(["aa-%04d" % group])
    return [HostCapacity(name="hv%04d" % number, cluster="c1", cpus=capacities[number][1] * cpu_factor,
                         memory_mib=float(capacities[number][0]), tags=host_tags[number], available=True,
                         vms=tuple(VmDemand(name=vm["name"], uuid="uuid-%s" % vm["name"], vcpus=vm["vcpus"],
                                            memory_mib=vm["memory"], host_tags=vm["tags"], anti_affinity=vm["groups"],
                                            blockers=vm["blockers"]) for vm in vms))
            for number, vms in enumerate(drafts)]


def baseline(hosts: Sequence[HostCapacity]) -> float:
    """Each VM touched once, each host once: its free memory and vCPUs. Returns the least free memory."""
    least = float("inf")
    for host in hosts:
        memory = 0
        vcpus = 0
        for vm in host.vms:
            memory += vm.memory_mib
            vcpus += vm.vcpus
        free = host.memory_mib - memory
        if free < least and host.cpus - vcpus >= 0:
            least = free
    return least


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--vms-per-host", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--cpu-factor", type=float, default=1.0,
                        help="multiply the hosts' schedulable vCPUs (0.5: vCPUs overcommitted, no step is feasible)")
    args = parser.parse_args()
    hosts = build_cluster(args.hosts, args.vms_per_host, args.seed, args.cpu_factor)
    order = [host.name for host in hosts]
    vms = sum(len(host.vms) for host in hosts)
    used = sum(vm.memory_mib for host in hosts for vm in host.vms) / sum(host.memory_mib for host in hosts)
    used_cpu = sum(vm.vcpus for host in hosts for vm in host.vms) / sum(host.cpus for host in hosts)
    planner_times: List[float] = []
    baseline_times: List[float] = []
    plan = None
    for _round in range(args.rounds):
        began = time.perf_counter()
        plan = plan_cluster(hosts, order)
        planner_times.append(time.perf_counter() - began)
        began = time.perf_counter()
        baseline(hosts)
        baseline_times.append(time.perf_counter() - began)
    assert plan is not None
    moves = sum(len(step.moves) for step in plan.steps)
    infeasible = [step for step in plan.steps if not step.feasible]
    planner_median = statistics.median(planner_times)
    baseline_median = statistics.median(baseline_times)
    sizes = [vm.memory_mib for host in hosts for vm in host.vms]
    vcpus = [vm.vcpus for host in hosts for vm in host.vms]
    print("cluster: %d hosts, %d VMs (%d-%d MiB, %d-%d vCPUs; %d with tags, %d in anti-affinity groups, %d not migratable)"
          % (len(hosts), vms, min(sizes), max(sizes), min(vcpus), max(vcpus), sum(bool(vm.host_tags) for host in hosts for vm in host.vms),
             sum(bool(vm.anti_affinity) for host in hosts for vm in host.vms), sum(bool(vm.blockers) for host in hosts for vm in host.vms)))
    print("capacity used: memory %.0f %%, vCPUs %.0f %%; every host evacuated in turn" % (100 * used, 100 * used_cpu))
    unplaceable = sum(len(step.unplaceable) for step in infeasible)
    print("plan: %d steps, %d infeasible, %d moves planned, %d VMs without a target"
          % (len(plan.steps), len(infeasible), moves, unplaceable))
    print("rounds: %d" % args.rounds)
    print("planner (plan_cluster):      median %.3f s, min %.3f s, max %.3f s"
          % (planner_median, min(planner_times), max(planner_times)))
    print("baseline (one pass):         median %.4f s" % baseline_median)
    print("ratio planner / baseline:    %.1f" % (planner_median / baseline_median))


if __name__ == "__main__":
    main()
