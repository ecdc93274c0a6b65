# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Placement planner: where every VM of a cluster goes while its hosts are evacuated one after another.

Pure and deterministic (controller side, no I/O): ``plan_cluster`` takes the hosts of one cluster,
in inventory order, and the hosts to evacuate, in the order the run will evacuate them, and returns
for every step each VM's target or the reason it cannot move.

A VM may go only to another host of its cluster that is available (up, enabled, not in maintenance),
carries all of the VM's host tags, holds no VM sharing an anti-affinity group with it, and has room
for it in vCPUs and in memory, counting everything already there and everything placed there by
this step and by earlier feasible steps (bin-packing, not one VM at a time).

Heuristic: the VMs of the evacuated host largest first (memory, vCPUs, name), each to the eligible
host with the most free memory (worst fit: spreads the load; ties by inventory order). If that
leaves a VM without a target although every such VM would fit alone, best fit (least free memory
that fits) is tried in the same order before the step is declared infeasible.

A step that leaves any VM without a target is infeasible: the run skips that host, so none of its
moves are applied for later steps. Reasons name the constraint that removed the last candidates,
filtering in this order: availability, tags, memory, vCPUs, anti-affinity.

Speed: per required tag set (the empty set: every host) a heap of the eligible hosts keyed by free
memory, with lazy invalidation (an entry is current while its host's version is); a VM whose
most-free host has the vCPUs and no VM of its groups takes one pop. Hosts are only walked (in heap
order) when vCPUs or anti-affinity turn the most-free ones down; once more than a few lack the
vCPUs, the pool is also indexed by whole free vCPUs and searched that way (scarce-vCPU clusters).
"""

from __future__ import annotations

import bisect
import gc
import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# How many hosts a reason lists before it says "and N more".
_LIST_LIMIT = 5
# Heap entry: (-(free memory), host index, host version when pushed).
_Entry = tuple[float, int, int]

# Kinds of failure; a step is retried with best fit only when every failure is of a room kind.
_ROOM_KINDS = frozenset(("memory", "vcpus", "anti-affinity"))
# A search that meets more hosts than this with the memory but not the vCPUs searches by free vCPUs instead.
_CPU_SHORT_LIMIT = 8


@dataclass(frozen=True)
class VmDemand:
    """A VM as the planner sees it: what it needs from a target host."""

    name: str
    uuid: str
    vcpus: int
    memory_mib: int
    host_tags: frozenset[str] = frozenset()       # required: a target must carry all of them
    anti_affinity: frozenset[str] = frozenset()   # groups: no two VMs of a group on one host
    blockers: tuple[str, ...] = ()                # why it cannot be live-migrated at all; empty = migratable

    def __post_init__(self) -> None:
        # Accept any iterable for the set fields (a list from JSON), keep them hashable.
        if not isinstance(self.host_tags, frozenset):
            object.__setattr__(self, "host_tags", frozenset(_names(self.host_tags)))
        if not isinstance(self.anti_affinity, frozenset):
            object.__setattr__(self, "anti_affinity", frozenset(_names(self.anti_affinity)))
        if not isinstance(self.blockers, tuple):
            object.__setattr__(self, "blockers", tuple(self.blockers))
        if self.vcpus < 0 or self.memory_mib < 0:
            raise ValueError("VM %s: vcpus and memory_mib must not be negative (got %r, %r)"
                             % (self.name, self.vcpus, self.memory_mib))


@dataclass(frozen=True)
class HostCapacity:
    """A host of the cluster: its schedulable capacity, its tags, whether it may receive VMs, its VMs."""

    name: str
    cluster: str
    cpus: float          # schedulable vCPUs (after overcommit)
    memory_mib: float    # schedulable memory (after reserved memory and overcommit)
    tags: frozenset[str]
    available: bool      # up, enabled, not in maintenance: may receive VMs
    unavailable_reason: str = ""   # e.g. "unreachable", "in maintenance"
    vms: tuple[VmDemand, ...] = ()  # VMs running on it now (they use its room; they move when it is evacuated)

    def __post_init__(self) -> None:
        if not isinstance(self.tags, frozenset):
            object.__setattr__(self, "tags", frozenset(_names(self.tags)))
        if not isinstance(self.vms, tuple):
            object.__setattr__(self, "vms", tuple(self.vms))


@dataclass(frozen=True)
class Move:
    vm: str
    uuid: str
    source: str
    target: str


@dataclass(frozen=True)
class Unplaceable:
    vm: str
    uuid: str
    source: str
    reason: str


@dataclass
class HostPlan:
    """One step: the evacuation of ``host``."""

    host: str
    moves: list[Move] = field(default_factory=list)
    unplaceable: list[Unplaceable] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return not self.unplaceable

    @property
    def reason(self) -> str:
        """Why the host cannot be evacuated, naming each VM ("" when it can): fit for a skip reason."""
        if not self.unplaceable:
            return ""
        return "%d VM%s of %s cannot move: %s" % (
            len(self.unplaceable), "" if len(self.unplaceable) == 1 else "s", self.host,
            "; ".join("%s: %s" % (item.vm, item.reason) for item in self.unplaceable))

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "feasible": self.feasible,
            "moves": [{"vm": move.vm, "uuid": move.uuid, "target": move.target} for move in self.moves],
            "unplaceable": [{"vm": item.vm, "uuid": item.uuid, "reason": item.reason} for item in self.unplaceable],
        }


@dataclass
class ClusterPlan:
    cluster: str
    steps: list[HostPlan] = field(default_factory=list)

    @property
    def feasible(self) -> bool:
        return all(step.feasible for step in self.steps)

    def step(self, host: str) -> HostPlan:
        """The step evacuating ``host`` (KeyError when it is not evacuated)."""
        for item in self.steps:
            if item.host == host:
                return item
        raise KeyError(host)

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "feasible": self.feasible, "steps": [step.to_dict() for step in self.steps]}


def plan_cluster(hosts: Sequence[HostCapacity], evacuate: Sequence[str]) -> ClusterPlan:
    """Plan the evacuation of ``evacuate`` (in that order) within the cluster made of ``hosts``.

    ``hosts``: every host of ONE cluster, in inventory order (the order breaks every tie).
    A feasible step's moves hold for the later steps, and its host, empty, may receive VMs again
    (when it was available to begin with). An infeasible step is skipped by the run: none of its
    moves are applied, its VMs stay where they are; it still lists the moves found and, for every
    VM left without a target, the reason.
    """
    names = [host.name for host in hosts]
    index = {name: position for position, name in enumerate(names)}
    if len(index) != len(names):
        raise ValueError("host names repeat: %s" % ", ".join(sorted({name for name in names if names.count(name) > 1})))
    clusters = sorted({host.cluster for host in hosts})
    if len(clusters) > 1:
        raise ValueError("hosts of more than one cluster given to one plan: %s" % ", ".join(clusters))
    unknown = [name for name in evacuate if name not in index]
    if unknown:
        raise ValueError("cannot evacuate %s: not a host of cluster %s" % (", ".join(unknown), clusters[0] if clusters else "(none)"))
    if len(set(evacuate)) != len(evacuate):
        raise ValueError("a host is listed more than once for evacuation: %s"
                         % ", ".join(sorted({name for name in evacuate if list(evacuate).count(name) > 1})))
    # The planner makes no reference cycles; left on, the cyclic garbage collector would spend about
    # 40 % of a large plan walking the input and the plan over and over (bench/planner.py).
    collecting = gc.isenabled()
    gc.disable()
    try:
        planner = _Planner(hosts, clusters[0] if clusters else "")
        return ClusterPlan(planner.cluster, [planner.step(index[name]) for name in evacuate])
    finally:
        if collecting:
            gc.enable()


def host_capacity(name: str, cluster: str, facts: Mapping[str, Any] | None, *, tags: Iterable[str] | str = (),
                  cpu_overcommit: float = 1.0, memory_overcommit: float = 1.0, reserved_memory_mib: int = 0,
                  override: Mapping[str, Any] | None = None, available: bool = True,
                  unavailable_reason: str = "") -> HostCapacity:
    """The planner's view of a host, from what ``kvmops.rolling.hypervisor_info`` returned for it.

    ``facts`` None means the host could not be reached: unavailable, no VMs. Facts with a non-null
    ``maintenance`` make it unavailable ("in maintenance"), and so do ``running_jobs``: no guest is ever
    migrated onto a host where a stage or an evacuation of any run is still running. Capacity: node cpus * cpu_overcommit and
    (node memory - reserved) * memory_overcommit (never below 0); ``override`` may set ``cpus`` and/or
    ``memory_mib`` directly (schedulable values, no overcommit applied). Only active domains (running
    or paused) are counted; shut-off ones use nothing and do not move. ``tags`` may be a list or a
    comma-separated string.
    """
    cpu_ratio = _positive("cpu_overcommit", cpu_overcommit)
    memory_ratio = _positive("memory_overcommit", memory_overcommit)
    if isinstance(reserved_memory_mib, bool) or not isinstance(reserved_memory_mib, (int, float)) \
            or not math.isfinite(reserved_memory_mib) or reserved_memory_mib < 0:
        raise ValueError("reserved_memory_mib must be a number >= 0, got %r" % (reserved_memory_mib,))
    extra = sorted(set(override or {}) - {"cpus", "memory_mib"})
    if extra:
        raise ValueError("host %s: unknown capacity override key(s) %s (allowed: cpus, memory_mib)" % (name, ", ".join(extra)))

    reason = ""
    if not available:
        reason = unavailable_reason or "unavailable"
    elif facts is None:
        reason = unavailable_reason or "unreachable"
    elif facts.get("maintenance") is not None:
        reason = unavailable_reason or "in maintenance"
    elif facts.get("running_jobs"):
        reason = unavailable_reason or "busy: " + ", ".join(
            "the %s of run %s still runs there" % (job.get("label", "job"), job.get("run_id", "?"))
            for job in facts["running_jobs"])

    node: Mapping[str, Any] = (facts or {}).get("node") or {}
    cpus = float(node.get("cpus") or 0) * cpu_ratio
    memory = max(0.0, float(node.get("memory_mib") or 0) - reserved_memory_mib) * memory_ratio
    if override:
        if "cpus" in override:
            cpus = _non_negative("host %s: override cpus" % name, override["cpus"])
        if "memory_mib" in override:
            memory = _non_negative("host %s: override memory_mib" % name, override["memory_mib"])

    vms = tuple(vm_demand(domain) for domain in (facts or {}).get("domains") or () if _is_active(domain))
    return HostCapacity(name=name, cluster=cluster, cpus=cpus, memory_mib=memory, tags=frozenset(_names(tags)),
                        available=not reason, unavailable_reason=reason, vms=vms)


def vm_demand(domain: Mapping[str, Any]) -> VmDemand:
    """A domain of ``hypervisor_info`` as a VmDemand."""
    return VmDemand(
        name=str(domain.get("name", "")),
        uuid=str(domain.get("uuid", "")),
        vcpus=int(domain.get("vcpus") or 0),
        memory_mib=int(domain.get("memory_mib") or 0),
        host_tags=frozenset(_names(domain.get("host_tags") or ())),
        anti_affinity=frozenset(_names(domain.get("anti_affinity_groups") or ())),
        blockers=tuple(str(item) for item in domain.get("migration_blockers") or ()),
    )


def _is_active(domain: Mapping[str, Any]) -> bool:
    if "active" in domain:
        return bool(domain["active"])
    return domain.get("state") in ("running", "paused")


def _names(value: Iterable[str] | str) -> list[str]:
    """Tag or group names from a list, or from a comma-separated string; blanks dropped."""
    items = value.split(",") if isinstance(value, str) else value
    return [text for text in (str(item).strip() for item in items) if text]


def _positive(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError("%s must be a number > 0, got %r" % (what, value))
    return float(value)


def _non_negative(what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError("%s must be a number >= 0, got %r" % (what, value))
    return float(value)


def _amount(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return "%d" % value if value == int(value) else "%.1f" % value


def _vcpus(value: float) -> str:
    return "%s vCPU%s" % (_amount(value), "" if value == 1 else "s")


def _listing(items: list[str]) -> str:
    if len(items) <= _LIST_LIMIT:
        return ", ".join(items)
    return "%s and %d more" % (", ".join(items[:_LIST_LIMIT]), len(items) - _LIST_LIMIT)


def _size_key(vm: VmDemand) -> tuple[int, int, str, str]:
    return (-vm.memory_mib, -vm.vcpus, vm.name, vm.uuid)


class _Pool:
    """The hosts carrying a set of tags (all hosts for the empty set); the eligible ones in heaps.

    ``heap``: entries (-free memory, host, version) of every eligible member. ``by_cpu``: the same
    entries in one heap per whole number of free vCPUs (floor), kept only once a search of the pool
    has met many hosts with the memory but not the vCPUs (``cpu_indexed``); ``cpu_low``/``cpu_high``:
    the lowest and highest such number with a heap. An entry is current while its host's version is
    the one in it.
    """

    __slots__ = ("tags", "members", "heap", "cpu_indexed", "by_cpu", "cpu_low", "cpu_high", "cpu_entries", "limit")

    def __init__(self, tags: frozenset[str], members: list[int]) -> None:
        self.tags = tags
        self.members = members
        self.heap: list[_Entry] = []
        self.cpu_indexed = False
        self.by_cpu: dict[int, list[_Entry]] = {}
        self.cpu_low = 0
        self.cpu_high = -1
        self.cpu_entries = 0
        self.limit = 2 * len(members) + 64   # past this many entries the heaps are rebuilt (stale ones dropped)

    def push_by_cpu(self, free_cpu: float, entry: _Entry) -> None:
        level = math.floor(free_cpu)
        heap = self.by_cpu.get(level)
        if heap is None:
            heap = self.by_cpu[level] = []
            self.cpu_low = min(self.cpu_low, level)
            self.cpu_high = max(self.cpu_high, level)
        heapq.heappush(heap, entry)
        self.cpu_entries += 1


class _Miss(Exception):
    """No target for a VM: ``kind`` is the constraint that eliminated the last candidates."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class _Planner:
    """The cluster's state while steps are planned; host i is hosts[i] (inventory order)."""

    def __init__(self, hosts: Sequence[HostCapacity], cluster: str) -> None:
        self.cluster = cluster
        self.names = [host.name for host in hosts]
        self.tags = [host.tags for host in hosts]
        self.available = [host.available for host in hosts]
        self.why_unavailable = [host.unavailable_reason or "unavailable" for host in hosts]
        self.cap_cpu = [float(host.cpus) for host in hosts]
        self.cap_mem = [float(host.memory_mib) for host in hosts]
        self.resident = [list(host.vms) for host in hosts]
        self.used_cpu = [sum(vm.vcpus for vm in host.vms) for host in hosts]
        self.used_mem = [sum(vm.memory_mib for vm in host.vms) for host in hosts]
        # Anti-affinity group -> names of the VMs of the group on the host (None: no grouped VM there).
        self.groups: list[dict[str, list[str]] | None] = [None] * len(hosts)
        for position, host in enumerate(hosts):
            for vm in host.vms:
                if vm.anti_affinity:
                    self._join_groups(position, vm)
        self.eligible = list(self.available)   # may receive VMs right now
        self.eligible_count = sum(self.eligible)
        self.version = [0] * len(hosts)
        self.pools: dict[frozenset[str], _Pool] = {}
        self.pools_of: list[list[_Pool]] = [[] for _host in hosts]
        self._pool(frozenset())
        self.source = -1                       # the host being evacuated

    # --- state -----------------------------------------------------------------------------------

    def _join_groups(self, position: int, vm: VmDemand) -> None:
        groups = self.groups[position]
        if groups is None:
            groups = self.groups[position] = {}
        for group in vm.anti_affinity:
            groups.setdefault(group, []).append(vm.name)

    def _leave_groups(self, position: int, vm: VmDemand) -> None:
        groups = self.groups[position]
        if groups is None:
            return
        for group in vm.anti_affinity:
            members = groups[group]
            members.pop()   # undo is last-in first-out: the VM is the last of its group there
            if not members:
                del groups[group]

    def _pool(self, tags: frozenset[str]) -> _Pool:
        pool = self.pools.get(tags)
        if pool is None:
            members = [position for position, host_tags in enumerate(self.tags) if tags <= host_tags]
            pool = self.pools[tags] = _Pool(tags, members)
            for position in members:
                self.pools_of[position].append(pool)
            self._rebuild(pool)
        return pool

    def _rebuild(self, pool: _Pool) -> None:
        version, eligible = self.version, self.eligible
        current = [position for position in pool.members if eligible[position]]
        pool.heap = [(self.used_mem[position] - self.cap_mem[position], position, version[position]) for position in current]
        if pool.cpu_indexed:
            pool.by_cpu, pool.cpu_low, pool.cpu_high, pool.cpu_entries = {}, 0, -1, 0
            for entry in pool.heap:
                pool.push_by_cpu(self.cap_cpu[entry[1]] - self.used_cpu[entry[1]], entry)
        heapq.heapify(pool.heap)

    def _touch(self, position: int) -> None:
        """The host changed: its heap entries go stale, current ones are pushed if it may receive VMs."""
        self.version[position] += 1
        if not self.eligible[position]:
            return
        entry = (self.used_mem[position] - self.cap_mem[position], position, self.version[position])
        for pool in self.pools_of[position]:
            heapq.heappush(pool.heap, entry)
            if pool.cpu_indexed:
                pool.push_by_cpu(self.cap_cpu[position] - self.used_cpu[position], entry)
            if len(pool.heap) > pool.limit or pool.cpu_entries > pool.limit:
                self._rebuild(pool)

    def _set_eligible(self, position: int, eligible: bool) -> None:
        if self.eligible[position] != eligible:
            self.eligible[position] = eligible
            self.eligible_count += 1 if eligible else -1
        self._touch(position)

    def _place(self, position: int, vm: VmDemand) -> None:
        self.used_mem[position] += vm.memory_mib
        self.used_cpu[position] += vm.vcpus
        self.resident[position].append(vm)
        if vm.anti_affinity:
            self._join_groups(position, vm)
        self._touch(position)

    def _undo(self, placed: list[tuple[int, VmDemand]]) -> None:
        for position, vm in reversed(placed):
            self.used_mem[position] -= vm.memory_mib
            self.used_cpu[position] -= vm.vcpus
            self.resident[position].pop()
            if vm.anti_affinity:
                self._leave_groups(position, vm)
        for position in sorted({position for position, _vm in placed}):
            self._touch(position)

    def _clear(self, position: int) -> None:
        self.resident[position] = []
        self.used_mem[position] = 0
        self.used_cpu[position] = 0
        self.groups[position] = None

    def _conflicts(self, position: int, groups: frozenset[str]) -> bool:
        held = self.groups[position]
        return held is not None and any(group in held for group in groups)

    def _takes(self, position: int, vm: VmDemand) -> bool:
        """Whether the host (eligible, with the VM's tags) has the room and no VM of the VM's groups."""
        return self.cap_mem[position] - self.used_mem[position] >= vm.memory_mib \
            and self.cap_cpu[position] - self.used_cpu[position] >= vm.vcpus \
            and not (vm.anti_affinity and self._conflicts(position, vm.anti_affinity))

    # --- one step --------------------------------------------------------------------------------

    def step(self, source: int) -> HostPlan:
        """Evacuate host ``source``: plan every VM on it now; apply the moves only if all VMs have a target."""
        name = self.names[source]
        self.source = source
        self._set_eligible(source, False)
        vms = sorted(self.resident[source], key=_size_key)
        placed: list[tuple[int, VmDemand]] = []
        moves: list[Move] = []
        unplaceable: list[Unplaceable] = []
        kinds: set[str] = set()
        missed: list[VmDemand] = []
        for vm in vms:
            try:
                target = self._find(vm)
            except _Miss as miss:
                unplaceable.append(Unplaceable(vm.name, vm.uuid, name, miss.reason))
                kinds.add(miss.kind)
                missed.append(vm)
                continue
            self._place(target, vm)
            placed.append((target, vm))
            moves.append(Move(vm.name, vm.uuid, name, self.names[target]))
        if unplaceable:
            self._undo(placed)
            if kinds <= _ROOM_KINDS and self._each_fits_alone(missed):
                retried = self._best_fit(name, vms)
                if retried is not None:
                    moves, unplaceable = retried, []
        if not unplaceable:
            self._clear(source)
        self._set_eligible(source, self.available[source])
        return HostPlan(name, moves, unplaceable)

    def _find(self, vm: VmDemand) -> int:
        """The eligible host with the most free memory that takes ``vm`` (ties: inventory order); raises _Miss.

        Walks the pool's hosts by free memory, most first: the first that takes the VM is the answer.
        When more than a few of them lack the vCPUs, the answer is sought among the hosts with the
        vCPUs instead (``_find_by_cpu``).
        """
        if vm.blockers:
            raise _Miss("blocked", "not migratable: %s" % "; ".join(vm.blockers))
        pool = self.pools.get(vm.host_tags) or self._pool(vm.host_tags)
        heap, version, cap_cpu, used_cpu = pool.heap, self.version, self.cap_cpu, self.used_cpu
        need_mem, need_cpu, groups = vm.memory_mib, vm.vcpus, vm.anti_affinity
        most: _Entry | None = None      # the current entry with the most free memory
        aside: list[_Entry] = []        # popped: hosts with the memory that do not take the VM
        short_cpu = 0
        chosen = -1
        while heap:
            entry = heap[0]
            position = entry[1]
            if entry[2] != version[position]:
                heapq.heappop(heap)     # stale
                continue
            if most is None:
                most = entry
            if -entry[0] < need_mem:
                break                   # no host further down has the memory either
            if cap_cpu[position] - used_cpu[position] < need_cpu:
                short_cpu += 1
                if short_cpu > _CPU_SHORT_LIMIT:
                    for entry in aside:
                        heapq.heappush(heap, entry)
                    return self._find_by_cpu(vm, pool, most)
            elif not (groups and self._conflicts(position, groups)):
                chosen = position
                heapq.heappop(heap)     # the caller places the VM there, which pushes a new entry
                break
            aside.append(heapq.heappop(heap))
        for entry in aside:
            heapq.heappush(heap, entry)
        if chosen < 0:
            raise self._miss(vm, pool, most, [entry[1] for entry in aside], False)
        return chosen

    def _find_by_cpu(self, vm: VmDemand, pool: _Pool, most: _Entry) -> int:
        """_find among the hosts with the vCPUs: the best entry of each heap of ``by_cpu`` at or above the need."""
        if not pool.cpu_indexed:
            pool.cpu_indexed = True
            self._rebuild(pool)
        version, need_mem, groups = self.version, vm.memory_mib, vm.anti_affinity
        best: _Entry | None = None
        refused: list[int] = []         # hosts with the vCPUs and the memory, holding a VM of the VM's groups
        for level in range(max(math.ceil(vm.vcpus), pool.cpu_low), pool.cpu_high + 1):
            heap = pool.by_cpu.get(level)
            if not heap:
                continue
            aside: list[_Entry] = []
            while heap:
                entry = heap[0]
                position = entry[1]
                if entry[2] != version[position]:
                    heapq.heappop(heap)
                    pool.cpu_entries -= 1
                    continue
                if -entry[0] < need_mem or (best is not None and best < entry):
                    break
                if not (groups and self._conflicts(position, groups)):
                    best = entry
                    break
                refused.append(position)
                aside.append(heapq.heappop(heap))
            for entry in aside:
                heapq.heappush(heap, entry)
        if best is None:
            raise self._miss(vm, pool, most, refused, True)
        # Its entry in the heap by memory stays: placing the VM there makes it stale.
        return best[1]

    def _each_fits_alone(self, vms: Iterable[VmDemand]) -> bool:
        """Whether each VM would find a target on its own (the step's moves undone): else no order helps."""
        for vm in vms:
            try:
                target = self._find(vm)
            except _Miss:
                return False
            self._touch(target)         # _find may have popped its entry
        return True

    def _best_fit(self, source: str, vms: list[VmDemand]) -> list[Move] | None:
        """Second try: each VM (same order) to the host with the least free memory that takes it.

        Applies the moves and returns them, or leaves the state as it was and returns None.
        """
        # Free room only shrinks during the step: a host without room for the smallest need never takes a VM.
        least_mem = min(vm.memory_mib for vm in vms)
        least_cpu = min(vm.vcpus for vm in vms)
        hosts = sorted((self.cap_mem[position] - self.used_mem[position], position) for position in range(len(self.names))
                       if self.eligible[position] and self.cap_mem[position] - self.used_mem[position] >= least_mem
                       and self.cap_cpu[position] - self.used_cpu[position] >= least_cpu)
        placed: list[tuple[int, VmDemand]] = []
        moves: list[Move] = []
        for vm in vms:
            slot = bisect.bisect_left(hosts, (vm.memory_mib, -1))
            while slot < len(hosts) and not (vm.host_tags <= self.tags[hosts[slot][1]] and self._takes(hosts[slot][1], vm)):
                slot += 1
            if slot == len(hosts):
                self._undo(placed)
                return None
            position = hosts.pop(slot)[1]
            self._place(position, vm)
            placed.append((position, vm))
            moves.append(Move(vm.name, vm.uuid, source, self.names[position]))
            bisect.insort(hosts, (self.cap_mem[position] - self.used_mem[position], position))
        return moves

    # --- reasons ---------------------------------------------------------------------------------

    def _miss(self, vm: VmDemand, pool: _Pool, most: _Entry | None, refused: list[int], by_cpu: bool) -> _Miss:
        """Why ``vm`` has no target. The candidates are narrowed by availability, tags, room (memory,
        then vCPUs), anti-affinity; the reason names the filter that removed the last of them.

        ``most``: the eligible host with the tags with the most free memory (None: there is none).
        ``refused``: when ``by_cpu`` is false, every such host with the memory (the walk by memory saw
        them all); when true, every such host with the vCPUs and the memory (all hold a VM of its groups).
        """
        cluster = self.cluster
        if most is None:
            if not self.eligible_count:
                others = ["%s: %s" % (self.names[position], self.why_unavailable[position])
                          for position in range(len(self.names)) if not self.available[position] and position != self.source]
                if not others:
                    return _Miss("no-host", "cluster %s has no other host" % cluster)
                return _Miss("no-host", "no other host of cluster %s is available (%s)" % (cluster, _listing(others)))
            tags = sorted(vm.host_tags)
            one = len(tags) == 1
            text = "requires host tag%s %s; no other available host of cluster %s carries %s" % (
                "" if one else "s", ", ".join(tags), cluster, "it" if one else "them")
            down = ["%s (%s)" % (self.names[position], self.why_unavailable[position])
                    for position in pool.members if not self.available[position] and position != self.source]
            if down:
                text += "; unavailable host%s with %s: %s" % ("" if len(down) == 1 else "s", "it" if one else "them", _listing(down))
            return _Miss("tags", text)
        needs = "needs %s MiB and %s" % (_amount(vm.memory_mib), _vcpus(vm.vcpus))
        where = "any eligible host of cluster %s" % cluster
        if vm.host_tags:
            where += " with tag%s %s" % ("" if len(vm.host_tags) == 1 else "s", ", ".join(sorted(vm.host_tags)))
        if -most[0] < vm.memory_mib:
            return _Miss("memory", "%s; the most free on %s is %s MiB (%s)" % (needs, where, _amount(-most[0]), self.names[most[1]]))
        free_cpu = self._free_cpu
        with_cpu = sorted(refused) if by_cpu else sorted(position for position in refused if free_cpu(position) >= vm.vcpus)
        if with_cpu:
            return self._miss_groups(vm, with_cpu)
        if not by_cpu:
            position = min(refused, key=lambda candidate: (-free_cpu(candidate), candidate))
            where += " with %s MiB free" % _amount(vm.memory_mib)
        else:
            top = self._best_by_cpu(pool, vm.vcpus)
            if top is not None:     # hosts with the vCPUs: none has the memory
                return _Miss("vcpus", "%s; the most free memory on %s with %s free is %s MiB (%s)" % (
                    needs, where, _vcpus(vm.vcpus), _amount(-top[0]), self.names[top[1]]))
            position = self._most_cpu(pool)
        return _Miss("vcpus", "%s; the most vCPUs free on %s is %s (%s: %s of %s schedulable vCPUs in use)" % (
            needs, where, _amount(free_cpu(position)), self.names[position], _amount(self.used_cpu[position]),
            _amount(self.cap_cpu[position])))

    def _best_by_cpu(self, pool: _Pool, need_cpu: int) -> _Entry | None:
        """The entry with the most free memory among the pool's eligible hosts with ``need_cpu`` free."""
        best = None
        for level in range(max(math.ceil(need_cpu), pool.cpu_low), pool.cpu_high + 1):
            heap = pool.by_cpu.get(level)
            while heap and heap[0][2] != self.version[heap[0][1]]:
                heapq.heappop(heap)
                pool.cpu_entries -= 1
            if heap and (best is None or heap[0] < best):
                best = heap[0]
        return best

    def _most_cpu(self, pool: _Pool) -> int:
        """The pool's eligible host with the most free vCPUs (ties: inventory order)."""
        for level in range(pool.cpu_high, pool.cpu_low - 1, -1):
            heap = pool.by_cpu.get(level)
            while heap and heap[0][2] != self.version[heap[0][1]]:
                heapq.heappop(heap)
                pool.cpu_entries -= 1
            if heap:
                return min((entry for entry in heap if entry[2] == self.version[entry[1]]),
                           key=lambda entry: (-self._free_cpu(entry[1]), entry[1]))[1]
        raise AssertionError("_most_cpu: the pool has no eligible host")

    def _miss_groups(self, vm: VmDemand, holders: list[int]) -> _Miss:
        groups = sorted(vm.anti_affinity)
        listed = []
        for position in holders:
            held = self.groups[position] or {}
            members = sorted({member for group in groups for member in held.get(group, ())})
            if len(members) > 2:
                members[1:] = ["%d more" % (len(members) - 1)]
            listed.append("%s: %s" % (self.names[position], " and ".join(members)))
        return _Miss("anti-affinity", "anti-affinity group%s %s: every other host with room already holds a VM of %s (%s)" % (
            "" if len(groups) == 1 else "s", ", ".join(groups), "the group" if len(groups) == 1 else "one of them", _listing(listed)))

    def _free_cpu(self, position: int) -> float:
        return self.cap_cpu[position] - self.used_cpu[position]
