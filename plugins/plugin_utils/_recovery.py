# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a run finds on the hosts before it starts, and what it does about it. Pure.

Runs leave their state with the hosts: a lock on every host of the clusters they work on, marks
(host in maintenance, cluster disabled), jobs still running detached, and each host's record. A new
run reads all of it first. A lock whose holder is alive makes it refuse to start. Anything left by a
run that is gone (its controller process died, or it has not renewed its lock for ``lock_timeout``
seconds) is repaired, or, with ``resume``, that run is taken up again where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set

from ansible_collections.kvmops.rolling.plugins.module_utils._marks import describe_holder
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import JOB_WAIT_SLACK_SECONDS


@dataclass
class Recovery:
    """The decision, for the role to carry out."""

    run_id: str
    refusal: str = ""
    resumed_from: str = ""
    lines: List[str] = field(default_factory=list)
    # host -> run id whose lock this run replaces there ("" when the host had no lock or it is ours already)
    takeover: Dict[str, str] = field(default_factory=dict)
    # host -> when that lock was last renewed, as judged: the takeover is refused on the host if it was renewed since
    takeover_renewed_at: Dict[str, float] = field(default_factory=dict)
    # hosts that answered, in inventory order: the run takes its lock on each
    lock_hosts: List[str] = field(default_factory=list)
    # [{host, job_id, run_id, label, wait}]: jobs of gone runs to wait for before anything else
    wait_jobs: List[Dict[str, Any]] = field(default_factory=list)
    # host -> run id: hosts to take out of maintenance
    leave_maintenance: Dict[str, str] = field(default_factory=dict)
    # cluster -> run id: clusters to enable again (the mark on each host, and the enable command once)
    enable_clusters: Dict[str, str] = field(default_factory=dict)
    # resume: host -> its record in the resumed run, final (kept as it is) or in progress (the host goes on from it)
    resumed_records: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # resume: the clusters the resumed run left disabled (it carries on with them, and enables them at the end)
    disabled_clusters: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict[str, Any]:
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def record_is_final(record: Mapping[str, Any]) -> bool:
    """A host's record that a resumed run keeps: updated, or skipped because it needed no maintenance."""
    return record.get("status") == "updated" or (record.get("status") == "skipped" and record.get("kind") == "skip")


def holder_threshold(lock: Mapping[str, Any], lock_timeout: int) -> int:
    """Seconds without a renewal after which the lock's holder counts as gone: the holder's own, as its lock records
    it (a run with a short rm_lock_timeout must not take over one that renews seldom); ``lock_timeout``, the judging
    run's, only for a lock that records none."""
    threshold = lock.get("threshold")
    if isinstance(threshold, int) and not isinstance(threshold, bool) and threshold > 0:
        return threshold
    return lock_timeout


def holder_gone(lock: Mapping[str, Any], age: float, lock_timeout: int, controller: Mapping[str, Any],
                alive: Callable[[int, Optional[int]], bool]) -> str:
    """Why the lock's holder is gone, or "" when it may still be at work."""
    owner = lock.get("controller") or {}
    if owner.get("host") and owner.get("host") == controller.get("host"):
        if owner.get("boot_id") and owner.get("boot_id") != controller.get("boot_id"):
            return "its controller %s has rebooted since" % owner["host"]
        pid = owner.get("pid")
        if isinstance(pid, int):
            if not alive(pid, owner.get("pid_start_ticks")):
                return "its ansible-playbook process (pid %d on %s) is gone" % (pid, owner["host"])
            # Alive here (same pid, same start time): at work, however long since its last renewal (a host of
            # its may be rebooting, or renewal lagging on a loaded controller).
            return ""
    threshold = holder_threshold(lock, lock_timeout)
    if age > threshold:
        return "it has not been heard from for %.0f s (its threshold is %d s)" % (age, threshold)
    return ""


def assess(clusters: Mapping[str, Sequence[str]], states: Mapping[str, Optional[Mapping[str, Any]]], new_run_id: str,
           resume: bool, lock_timeout: int, controller: Mapping[str, Any],
           alive: Callable[[int, Optional[int]], bool], take_over: str = "") -> Recovery:
    """Decide, from each host's state (None: unreachable), what this run does before it starts.

    ``clusters``: the clusters the run works on, each with all its hosts in inventory order. ``take_over``: the
    run the operator named (rm_take_over) to take over although a host of its clusters could not be read.
    """
    recovery = Recovery(run_id=new_run_id)
    hosts = [host for members in clusters.values() for host in members]
    reachable = {host: states[host] for host in hosts if states.get(host)}
    recovery.lock_hosts = list(reachable)
    gone = _gone_holders(clusters, reachable, lock_timeout, controller, alive, take_over, recovery)
    if recovery.refusal:
        return recovery
    # Marks and jobs of runs that hold no lock any more count as left behind too (a run killed while finishing).
    left = {run for state in reachable.values() for run in _runs_in(state)} - {new_run_id}
    orphans = sorted(left - set(gone))
    for run in orphans:
        gone[run] = "it holds no lock any more"
    if resume:
        _choose_resumed(recovery, clusters, gone, reachable)
        if recovery.refusal:
            return recovery
    if not recovery.resumed_from:
        recovery.refusal = reused_run_id_refusal(new_run_id, reachable)
        if recovery.refusal:
            return recovery
    for host, state in reachable.items():
        lock = state.get("lock") or {}
        if lock.get("run_id") in gone and lock.get("run_id") != recovery.run_id:
            recovery.takeover[host] = lock["run_id"]
            recovery.takeover_renewed_at[host] = float(lock.get("renewed_at") or 0.0)
    _plan_repairs(recovery, clusters, reachable, gone)
    return recovery


def unread_hosts_refusal(cluster: str, unread: Sequence[str], holders: Sequence[str], take_over: str) -> str:
    """A locked cluster with hosts that could not be read: the lock on one of them may be the one its holder renews
    (the host it works on, rebooting), so the cluster is not taken over unless the operator names the run to take
    over. "" when it may be."""
    if not unread or not holders or take_over in holders:
        return ""
    return ("cluster %s is locked by run %s, and %s could not be read: the lock there may be the one its holder keeps "
            "fresh (a host it works on, rebooting), so the cluster is not taken over; nothing was done. When that run "
            "is known to be gone, run again with -e rm_take_over=%s" % (
                cluster, ", ".join(holders), ", ".join(unread), holders[0]))


def _gone_holders(clusters: Mapping[str, Sequence[str]], reachable: Mapping[str, Mapping[str, Any]],
                  lock_timeout: int, controller: Mapping[str, Any], alive: Callable[[int, Optional[int]], bool],
                  take_over: str, recovery: Recovery) -> Dict[str, str]:
    """Lock holders found gone (run id -> why); sets the refusal when one holder may still be at work."""
    gone: Dict[str, str] = {}
    for cluster, members in clusters.items():
        freshest: Dict[str, Any] = {}  # run id -> (age, lock) of its most recently renewed lock in the cluster
        for host in members:
            lock = (reachable.get(host) or {}).get("lock")
            if lock and lock.get("run_id"):
                age = float(lock.get("age") or 0.0)
                if lock["run_id"] not in freshest or age < freshest[lock["run_id"]][0]:
                    freshest[lock["run_id"]] = (age, lock)
        whys = {run: holder_gone(lock, age, lock_timeout, controller, alive)
                for run, (age, lock) in sorted(freshest.items())}
        for run, why in whys.items():
            if not why:
                age, lock = freshest[run]
                recovery.refusal = (
                    "cluster %s is being maintained by %s; refused to start, nothing was done. A run that is not "
                    "heard from for its threshold (%d s) is taken over."
                    % (cluster, describe_holder(lock, age), holder_threshold(lock, lock_timeout)))
                return gone
        recovery.refusal = unread_hosts_refusal(cluster, [host for host in members if host not in reachable],
                                                sorted(run for run in whys if run != recovery.run_id), take_over)
        if recovery.refusal:
            return gone
        for run, why in whys.items():
            if run not in gone:
                gone[run] = why
                recovery.lines.append("run %s, started %s, was interrupted: %s"
                                      % (run, freshest[run][1].get("started") or "?", why))
    return gone


def reused_run_id_refusal(run_id: str, reachable: Mapping[str, Mapping[str, Any]]) -> str:
    """A new run whose id an earlier run used: its jobs' results would be taken as this run's (a stage that
    succeeded then would not run now), so it is refused unless it resumes that run."""
    used_on = [host for host, state in reachable.items()
               if run_id in (state.get("job_run_ids") or ()) or (state.get("last_run") or {}).get("run_id") == run_id]
    if not used_on:
        return ""
    return ("rm_run_id: run %s already ran on %s; a new run needs an id of its own (leave rm_run_id out), or take "
            "that run up with rm_resume; nothing was done" % (run_id, ", ".join(used_on)))


def _runs_in(state: Mapping[str, Any]) -> Set[str]:
    """Runs that left a mark or a running job on the host."""
    runs = {job.get("run_id", "") for job in state.get("running_jobs") or ()}
    for mark in ("maintenance", "cluster_mark"):
        if state.get(mark):
            runs.add(state[mark].get("run_id", ""))
    return {run for run in runs if run}


def _cluster_of(clusters: Mapping[str, Sequence[str]]) -> Dict[str, str]:
    """Host -> its cluster as this run names it. A cluster mark counts for the cluster of the host it lies on,
    whatever name it was written under (a cluster is named zone/pod/name once a namesake appears elsewhere)."""
    return {host: cluster for cluster, members in clusters.items() for host in members}


def _choose_resumed(recovery: Recovery, clusters: Mapping[str, Sequence[str]], gone: Mapping[str, str],
                    reachable: Mapping[str, Mapping[str, Any]]) -> None:
    locked = sorted({(state.get("lock") or {}).get("run_id") for state in reachable.values()} & set(gone))
    if len(locked) > 1:
        recovery.refusal = ("rm_resume: several interrupted runs hold these clusters (%s); resume them one at a time, "
                            "with a scope that holds only one; nothing was done" % ", ".join(locked))
        return
    if not locked:
        recovery.lines.append("rm_resume: no interrupted run holds these clusters; run %s starts afresh" % recovery.run_id)
        return
    run = locked[0]
    recovery.run_id = recovery.resumed_from = run
    cluster_of = _cluster_of(clusters)
    for host, state in reachable.items():
        journal = state.get("last_run") or {}
        record = journal.get("record") if journal.get("run_id") == run else None
        if isinstance(record, dict) and (record_is_final(record) or record.get("status") == "in_progress"):
            recovery.resumed_records[host] = record
        cluster_mark = state.get("cluster_mark") or {}
        if cluster_mark.get("run_id") == run and cluster_of[host] not in recovery.disabled_clusters:
            recovery.disabled_clusters.append(cluster_of[host])
    records = sorted(recovery.resumed_records.items())
    words = ["%s %s already" % (host, record["status"]) for host, record in records if record_is_final(record)]
    words += ["%s goes on after %s" % (host, ", ".join(record.get("stages") or {}) or "its start")
              for host, record in records if not record_is_final(record)]
    recovery.lines.append("resuming run %s: %s" % (run, "; ".join(words) or "no host had been worked on"))


def _plan_repairs(recovery: Recovery, clusters: Mapping[str, Sequence[str]],
                  reachable: Mapping[str, Mapping[str, Any]], gone: Mapping[str, str]) -> None:
    cluster_of = _cluster_of(clusters)
    for host in (host for members in clusters.values() for host in members if host in reachable):
        state = reachable[host]
        for job in state.get("running_jobs") or ():
            # The resumed run follows its own stages; an evacuation must end before the capacity re-check.
            if job.get("run_id") != recovery.run_id or job.get("label") == "evacuation":
                wait = int(job.get("timeout") or 0) - int(job.get("elapsed") or 0) + JOB_WAIT_SLACK_SECONDS
                recovery.wait_jobs.append(dict(job, host=host, wait=max(wait, JOB_WAIT_SLACK_SECONDS)))
                recovery.lines.append("%s: the %s of run %s still runs (%.0f s so far): waiting for it to end"
                                      % (host, job.get("label"), job.get("run_id"), job.get("elapsed") or 0))
        mark = state.get("maintenance") or {}
        if mark.get("run_id") in gone and mark.get("run_id") != recovery.run_id:
            recovery.leave_maintenance[host] = mark["run_id"]
            recovery.lines.append("%s: left in maintenance by run %s: it leaves maintenance" % (host, mark["run_id"]))
        cluster_mark = state.get("cluster_mark") or {}
        run = cluster_mark.get("run_id")
        if run in gone and run != recovery.run_id:
            cluster = cluster_of[host]
            if cluster not in recovery.enable_clusters:
                recovery.enable_clusters[cluster] = run
                recovery.lines.append("cluster %s: left disabled by run %s: it is enabled again" % (cluster, run))
