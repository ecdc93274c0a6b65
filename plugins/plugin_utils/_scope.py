# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run's inputs, checked before anything touches a host, and the hosts they put in scope, in order.

Pure: the caller hands in the run variables and each inventory host's variables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    PayloadError,
    checked_secret_env,
    positive_int,
    split_payload,
    validate_timing,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._cluster_order import (
    cluster_identity,
    cluster_names,
    group_by_cluster,
)
from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_settings import HostSettingsError, host_settings

# Scope variable -> the host variable it matches (None: the inventory host name itself).
SCOPES: Dict[str, Any] = {"rm_hosts": None, "rm_clusters": "rm_cluster", "rm_pods": "rm_pod", "rm_zones": "rm_zone"}
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# Where ansible-playbook puts the words of an ``-e "k=v ..."`` that are not k=v: ``-e "rm_hosts=hv1 hv2"``
# sets rm_hosts=hv1 and leaves "hv2" here, so a run would silently leave out what the operator typed.
STRAY_EXTRA_VARS = "_raw_params"


class ScopeError(RollingError, ValueError):
    """Bad input: the run must not start."""


@dataclass
class Scope:
    run_id: str
    kind: str                     # rm_hosts, rm_clusters, rm_pods or rm_zones
    names: List[str]              # what the operator asked for
    hosts: List[str]              # hosts to maintain, cluster after cluster, inventory order
    cluster_of: Dict[str, str]    # every host of the clusters concerned -> its cluster (cluster_names)
    members: Dict[str, List[str]] = field(default_factory=dict)  # cluster -> all its hosts, inventory order
    identity: Dict[str, Dict[str, str]] = field(default_factory=dict)  # cluster -> its zone, pod and name
    settings: Dict[str, int] = field(default_factory=dict)
    take_over: str = ""           # rm_take_over: the run to take over although a host of its clusters is unread
    secret_env_names: List[str] = field(default_factory=list)  # rm_secret_env's names (its values never leave it)

    def as_dict(self) -> Dict[str, Any]:
        return {"run_id": self.run_id, "kind": self.kind, "names": self.names, "hosts": self.hosts,
                "clusters": list(self.members), "members": self.members, "cluster_of": self.cluster_of,
                "identity": self.identity,
                "cluster_hosts": [host for members in self.members.values() for host in members],
                "settings": self.settings, "take_over": self.take_over, "secret_env_names": self.secret_env_names}


def lock_renewal_interval(lock_timeout: int, ping_interval: int) -> int:
    """How often the run renews its lock on every host it holds, between its steps: a third of rm_lock_timeout, and
    never more often than it polls (never below 1 s)."""
    return max(1, ping_interval, lock_timeout // 3)


def lock_renewal_due(renewed_at: Optional[float], interval: float, now: float, check_mode: bool) -> bool:
    """Whether the run's locks on the hosts it is not working on are due for renewal before its next step: once
    ``interval`` (lock_renewal_interval) has passed since they were taken or last renewed; never in check mode
    (a check run takes no lock) nor before they were taken."""
    return not check_mode and renewed_at is not None and now - renewed_at >= interval


def lock_threshold(lock_timeout: int, ping_interval: int, longest_step: int) -> int:
    """Seconds without a renewal after which this run may be taken for gone, recorded in its lock. The host under
    way is renewed at every poll, the others between steps, so a host the run is not working on may go unrenewed for
    a whole step (up to ``longest_step``, the larger of the stage and maintenance timeouts) plus a renewal interval:
    the threshold is rm_lock_timeout (never under 3 polls) on top of that step."""
    return max(lock_timeout, 3 * ping_interval) + longest_step


def names_of(value: Any) -> List[str]:
    """A scope value as names: a list, or a comma-separated string; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        items: Sequence[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ScopeError("a scope must be a list or a comma-separated string of names, got %r" % (value,))
    names = []
    for item in items:
        if not isinstance(item, (str, int)) or isinstance(item, bool):
            raise ScopeError("scope names must be strings, got %r" % (item,))
        name = str(item).strip()
        if name:
            names.append(name)
    return names


def resolve(run_vars: Mapping[str, Any], inventory: Sequence[str],
            host_vars: Callable[[str], Mapping[str, Any]]) -> Scope:
    """Check the run's inputs and work out its hosts; raise ScopeError naming every problem found."""
    problems: List[str] = []
    stray = run_vars.get(STRAY_EXTRA_VARS)
    if stray:
        problems.append(
            "extra vars have words that are not NAME=VALUE: %r; -e splits NAME=VALUE pairs at blanks, so quote a "
            "value that has blanks (-e \"rm_payload='a b'\"), give a list comma-separated (rm_hosts=hv1,hv2) or "
            "use JSON (-e '{\"rm_hosts\": [\"hv1\", \"hv2\"]}')" % (stray,))
    given = {kind: names_of(run_vars.get(kind)) for kind in SCOPES}
    chosen = [kind for kind, names in given.items() if names]
    if not chosen:
        problems.append("no scope: set exactly one of %s" % ", ".join(SCOPES))
    elif len(chosen) > 1:
        problems.append("more than one scope (%s): set exactly one of %s" % (", ".join(chosen), ", ".join(SCOPES)))
    settings: Dict[str, int] = {}
    for timeout_name in ("rm_stage_timeout", "rm_wait_maintenance_timeout"):
        try:
            settings[timeout_name], settings["rm_ping_interval"] = validate_timing(
                run_vars.get(timeout_name), run_vars.get("rm_ping_interval"), names=(timeout_name, "rm_ping_interval"))
        except ValueError as exc:
            problems.append(str(exc))
    try:
        settings["rm_lock_timeout"] = positive_int("rm_lock_timeout", run_vars.get("rm_lock_timeout", 900), "seconds")
    except ValueError as exc:
        problems.append(str(exc))
    try:
        settings["rm_max_parallel_migrations"] = positive_int(
            "rm_max_parallel_migrations", run_vars.get("rm_max_parallel_migrations"), maximum=64)
    except ValueError as exc:
        problems.append(str(exc))
    payload = run_vars.get("rm_payload")
    if payload is None:
        payload = ""
    elif isinstance(payload, (int, float)) and not isinstance(payload, bool):
        payload = str(payload)  # -e rm_payload={{ 6 * 7 }}: ansible-core 2.19+ keeps the template's native type
    if not isinstance(payload, str):
        problems.append("rm_payload must be a string, got %r" % (payload,))
    else:
        try:
            split_payload(payload)
        except PayloadError as exc:
            problems.append("rm_payload: %s" % exc)
    timing = ("rm_lock_timeout", "rm_ping_interval", "rm_stage_timeout", "rm_wait_maintenance_timeout")
    if all(name in settings for name in timing):
        settings["rm_lock_renewal_interval"] = lock_renewal_interval(settings["rm_lock_timeout"],
                                                                     settings["rm_ping_interval"])
        settings["rm_lock_threshold"] = lock_threshold(
            settings["rm_lock_timeout"], settings["rm_ping_interval"],
            max(settings["rm_stage_timeout"], settings["rm_wait_maintenance_timeout"]))
    run_id = str(run_vars.get("rm_run_id") or "")
    if not RUN_ID_PATTERN.fullmatch(run_id):
        problems.append("rm_run_id %r: use 1 to 64 letters, digits, '-' or '_'" % run_id)
    secret_env_names: List[str] = []
    try:
        secret_env_names = sorted(checked_secret_env(run_vars.get("rm_secret_env")))
    except ValueError as exc:
        problems.append(str(exc))
    take_over = str(run_vars.get("rm_take_over") or "")
    if take_over and not RUN_ID_PATTERN.fullmatch(take_over):
        problems.append("rm_take_over %r: name the run to take over by its id (1 to 64 letters, digits, '-' or '_')"
                        % take_over)
    # Both timeouts are checked against the interval: a bad interval is one problem, said once.
    problems = list(dict.fromkeys(problems))
    if len(chosen) != 1:
        raise ScopeError("; ".join(problems))

    kind = chosen[0]
    variable = SCOPES[kind]
    asked = given[kind]
    identities = {host: cluster_identity(host_vars(host)) for host in inventory}
    cluster_of = cluster_names(identities)
    if variable is None:
        matching = [host for host in inventory if host in asked]
        unknown = [name for name in asked if name not in cluster_of]
    else:
        # rm_clusters also takes a cluster as the run names it (zone/pod/name), to pick one of two namesakes
        names_of_host = {host: {str(host_vars(host).get(variable) or "")}
                         | ({cluster_of[host]} if variable == "rm_cluster" else set()) for host in inventory}
        matching = [host for host in inventory if names_of_host[host] & set(asked)]
        found = set().union(*(names_of_host[host] for host in matching))
        unknown = [name for name in asked if name not in found]
    if unknown:
        # Named with the other problems: a stray -e word usually explains the unknown name.
        problems.append("%s: no inventory host %s %s" % (
            kind, "is named" if variable is None else "has %s =" % variable, ", ".join(repr(name) for name in unknown)))
    if problems:
        raise ScopeError("; ".join(problems))
    for host in matching:
        if not cluster_of[host]:
            problems.append("host %s has no rm_cluster: every host must belong to a cluster" % host)
    if problems:
        raise ScopeError("; ".join(problems))
    hosts = group_by_cluster(matching, cluster_of.__getitem__)
    members: Dict[str, List[str]] = {}
    for cluster in dict.fromkeys(cluster_of[host] for host in hosts):
        members[cluster] = [host for host in inventory if cluster_of[host] == cluster]
    for host in [host for cluster_members in members.values() for host in cluster_members]:
        try:  # every host of the clusters concerned: the targets' capacity counts as much as the scope's
            host_settings(host, host_vars(host))
        except HostSettingsError as exc:
            problems.append(str(exc))
    if problems:
        raise ScopeError("; ".join(problems))
    return Scope(run_id=run_id, kind=kind, names=asked, hosts=hosts,
                 cluster_of={host: cluster_of[host] for members_ in members.values() for host in members_},
                 members=members, settings=settings, take_over=take_over, secret_env_names=secret_env_names,
                 identity={cluster: dict(zip(("zone", "pod", "cluster"), identities[hosts_[0]]))
                           for cluster, hosts_ in members.items()})
