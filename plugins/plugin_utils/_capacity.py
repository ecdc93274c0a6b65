# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""From inventory variables and gathered hypervisor facts to one placement plan per cluster.

Pure: the caller hands in each host's variables and facts, so this is tested without Ansible.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.kvmops.rolling.plugins.module_utils._record import (  # the skips the plan foresees
    NO_MAINTENANCE_SCRIPT,
    PREFLIGHT_NO_MAINTENANCE,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._cluster_order import (
    cluster_identity,
    cluster_names,
    group_by_cluster,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_settings import host_settings
from ansible_collections.kvmops.rolling.plugins.plugin_utils._placement import host_capacity, plan_cluster


def expected_skip(scripts: Optional[Mapping[str, Any]], record: Optional[Mapping[str, Any]]) -> str:
    """Why a host will be skipped, as far as the gather (its stage scripts) and PreFlight (its record)
    tell; "" when it is to be maintained. A skipped host is not evacuated and stays a target."""
    preflight = ((record or {}).get("stages") or {}).get("PreFlight") or {}
    if preflight.get("status") == "no_maintenance":
        return PREFLIGHT_NO_MAINTENANCE
    if (scripts or {}).get("Maintenance") == "skipped":
        return NO_MAINTENANCE_SCRIPT
    return ""


def transitional_guests(host: str, facts: Optional[Mapping[str, Any]]) -> List[str]:
    """Guests of the host in a transitional or error state, each with its state, for the operator."""
    return ["%s on %s (%s%s)" % (domain["name"], host, domain.get("state"),
                                 ": %s" % domain["state_reason"] if domain.get("state_reason") else "")
            for domain in (facts or {}).get("domains") or () if domain.get("transitional")]


def plan_scope(scope: Sequence[str], inventory: Sequence[str], host_vars: Callable[[str], Mapping[str, Any]],
               facts: Callable[[str], Optional[Mapping[str, Any]]],
               gather_errors: Optional[Mapping[str, str]] = None,
               skips: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """Plan the evacuation of every host of ``scope`` (in that order), cluster by cluster.

    ``inventory`` is every inventory host in inventory order: the other hosts of a cluster are its
    migration targets. ``host_vars(host)`` gives a host's variables (rm_zone, rm_pod, rm_cluster, rm_host_tags,
    rm_migration_uri, rm_cpu_overcommit_ratio, rm_memory_overcommit_ratio, rm_reserved_host_memory_mib,
    rm_host_capacity, rm_host_enabled); ``facts(host)`` what hypervisor_info found there (None:
    not gathered, the host was unreachable).

    ``gather_errors`` (host -> why its facts could not be gathered) makes those hosts of the scope problems.
    ``skips`` (host -> why it will be skipped, expected_skip) are hosts of the scope that are not evacuated:
    their guests stay, and they stay targets for the others.

    Returns ``clusters`` (each plan as a dict, plus ``blocked``: the transitional guests that block it),
    ``moves`` (host -> its planned moves, each with the target's migration URI), ``problems``
    (host -> why it cannot be evacuated), ``skips``, ``lines`` (the plan in words, host by host in the
    order of the run) and ``feasible``.
    """
    skips = {host: reason for host, reason in (skips or {}).items() if reason and host in scope}
    cluster_of = cluster_names({host: cluster_identity(host_vars(host)) for host in list(inventory) + list(scope)})
    clusters: List[Dict[str, Any]] = []
    moves: Dict[str, List[Dict[str, str]]] = {}
    problems: Dict[str, str] = {}
    ordered = group_by_cluster(scope, cluster_of.__getitem__)
    for cluster in dict.fromkeys(cluster_of[host] for host in ordered):
        members = [host for host in inventory if cluster_of[host] == cluster]
        evacuate = [host for host in ordered if cluster_of[host] == cluster and host not in skips]
        blocked = [guest for host in members for guest in transitional_guests(host, facts(host))]
        plan = plan_cluster([_capacity(host, cluster, host_vars(host), facts(host)) for host in members], evacuate)
        for step in plan.steps:
            if (gather_errors or {}).get(step.host):
                problems[step.host] = "could not be gathered: %s" % (gather_errors or {})[step.host]
            elif blocked:
                problems[step.host] = "cluster %s has guests in a transitional or error state: %s" % (
                    cluster or "(none)", "; ".join(blocked))
            elif not step.feasible:
                problems[step.host] = step.reason
            moves[step.host] = [{"vm": move.vm, "uuid": move.uuid, "target": move.target,
                                 "target_uri": host_settings(move.target, host_vars(move.target)).migration_uri}
                                for move in step.moves]
        clusters.append(dict(plan.to_dict(), blocked=blocked, feasible=plan.feasible and not blocked))
    return {"clusters": clusters, "moves": moves, "problems": problems, "skips": skips, "order": ordered,
            "feasible": not problems, "lines": plan_lines(ordered, cluster_of, moves, problems, skips)}


def recheck_first_reads(host: str, planned_moves: Sequence[Mapping[str, str]], host_read: bool) -> List[str]:
    """What the capacity re-check before ``host``'s evacuation reads first: the targets its plan moves guests to,
    and the host itself unless its PreMaintenance stage read it as it ended (``host_read``: no connection more)."""
    targets = [move["target"] for move in planned_moves]
    return list(dict.fromkeys(([] if host_read else [host]) + targets))


def plan_recheck(host: str, fresh: Sequence[str], inventory: Sequence[str],
                 host_vars: Callable[[str], Mapping[str, Any]], facts: Callable[[str], Optional[Mapping[str, Any]]],
                 gather_errors: Optional[Mapping[str, str]] = None) -> Dict[str, Any]:
    """The capacity re-check before ``host``'s evacuation, on the hosts just read again (``fresh``; the host
    itself always is: recheck_first_reads): the plan of the host with only those as targets, and
    ``read_again``, the hosts to read before planning it once more (members_to_read_again)."""
    fresh = [host] + [name for name in fresh if name != host]
    plan = plan_scope([host], inventory, host_vars, lambda name: facts(name) if name in fresh else None,
                      gather_errors)
    return dict(plan, read_again=members_to_read_again(host, plan, fresh, inventory, host_vars))


def members_to_read_again(host: str, plan: Mapping[str, Any], fresh: Sequence[str], inventory: Sequence[str],
                          host_vars: Callable[[str], Mapping[str, Any]]) -> List[str]:
    """The re-check before ``host``'s evacuation first reads only the host and its planned targets (``fresh``)
    and plans the host with those alone as targets (the others' facts may be old: guests moved since). When
    that ``plan`` finds no way to evacuate the host, the other hosts of its cluster are read too, in inventory
    order, and the host is planned again with them; otherwise nothing more is read."""
    if host not in (plan.get("problems") or {}):
        return []
    cluster = cluster_identity(host_vars(host))
    return [member for member in inventory
            if member not in fresh and cluster_identity(host_vars(member)) == cluster]


def plan_lines(ordered: Sequence[str], cluster_of: Mapping[str, str], moves: Mapping[str, Sequence[Mapping[str, str]]],
               problems: Mapping[str, str], skips: Mapping[str, str]) -> List[str]:
    """The plan as an operator reads it: one line per host, in the order of the run."""
    lines = []
    for host in ordered:
        where = "%s/%s" % (cluster_of[host], host)
        if host in skips:
            lines.append("%s: expected to be skipped (%s): not evacuated, stays a target" % (where, skips[host]))
        elif host in problems:
            lines.append("%s: cannot be maintained: %s" % (where, problems[host]))
        else:
            words = ", ".join("%s -> %s" % (move["vm"], move["target"]) for move in moves.get(host) or ())
            lines.append("%s: %s" % (where, words or "no running guest to move"))
    return lines


def _capacity(host: str, cluster: str, variables: Mapping[str, Any], facts: Optional[Mapping[str, Any]]) -> Any:
    settings = host_settings(host, variables)
    return host_capacity(
        host, cluster, facts, tags=settings.tags, cpu_overcommit=settings.cpu_overcommit,
        memory_overcommit=settings.memory_overcommit, reserved_memory_mib=settings.reserved_memory_mib,
        override=settings.capacity or None, available=settings.enabled,
        unavailable_reason="" if settings.enabled else "disabled (rm_host_enabled)")
