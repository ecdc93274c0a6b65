# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The order rolling maintenance visits hosts in: cluster after cluster, one host at a time, inventory order.

Pure rules shared by the scope resolution (which orders the hosts before the per-host play) and
the cluster_serial strategy (which refuses a play that would break that order).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# A cluster is its zone, pod and cluster names together: two clusters called c1 in two zones are two clusters.
ClusterIdentity = Tuple[str, str, str]


def cluster_identity(host_vars: Mapping[str, Any]) -> ClusterIdentity:
    """The host's (zone, pod, cluster) from its rm_zone, rm_pod and rm_cluster ('' for what is unset)."""
    zone, pod, cluster = (str(host_vars.get(name) or "") for name in ("rm_zone", "rm_pod", "rm_cluster"))
    return zone, pod, cluster


def cluster_names(identities: Mapping[str, ClusterIdentity]) -> Dict[str, str]:
    """Each host's cluster as the run names it (locks, marks, plan, report): its name alone when no other
    zone or pod of ``identities`` has a cluster of that name, else zone/pod/name. '' for a host without one."""
    places: Dict[str, set] = {}
    for zone, pod, cluster in identities.values():
        places.setdefault(cluster, set()).add((zone, pod))
    return {host: cluster if not cluster or len(places[cluster]) == 1 else "%s/%s/%s" % (zone, pod, cluster)
            for host, (zone, pod, cluster) in identities.items()}


def group_by_cluster(hosts: Iterable[str], cluster_of: Callable[[str], str]) -> List[str]:
    """Hosts grouped by cluster: clusters in order of their first host, hosts in their given order."""
    clusters: Dict[str, List[str]] = {}
    for host in hosts:
        clusters.setdefault(cluster_of(host), []).append(host)
    return [host for members in clusters.values() for host in members]


def serial_refusal(serial: Sequence[object]) -> Optional[str]:
    """Why a play's ``serial`` cannot go with one-host-at-a-time maintenance, or None when it can."""
    if not serial or all(str(value).strip() == "1" for value in serial):
        return None
    return ("the cluster_serial strategy maintains one host at a time, but the play sets serial: %s; "
            "remove serial or set it to 1" % ", ".join(str(value) for value in serial))


class ClusterSequence:
    """Remembers the clusters seen so far, to refuse going back to a cluster once another has begun."""

    def __init__(self) -> None:
        self.finished: List[str] = []
        self.current: Optional[str] = None

    def enter(self, host: str, cluster: str) -> Optional[str]:
        """Record that ``host`` of ``cluster`` comes next; return why that breaks the order, or None."""
        if cluster == self.current:
            return None
        if cluster in self.finished:
            return ("host %s of cluster %s comes after cluster %s was begun: clusters must be maintained one "
                    "after another; order the play's hosts by cluster (the playbook's scope play does this)"
                    % (host, cluster, self.current))
        if self.current is not None:
            self.finished.append(self.current)
        self.current = cluster
        return None


CLUSTER_SERIAL = "kvmops.rolling.cluster_serial"
LINEAR = "ansible.builtin.linear"
# From this ansible-core on, a strategy plugin outside ansible.builtin prints a deprecation warning.
COLLECTION_STRATEGIES_DEPRECATED = (2, 19)


def host_play_strategy(chosen: str, core_version: str) -> str:
    """The strategy of the one-host-at-a-time play: the operator's choice, else cluster_serial where
    ansible-core still supports strategies from collections, and linear from 2.19 on."""
    if chosen:
        return chosen
    numbers = tuple(int(part) for part in core_version.split(".")[:2] if part.isdigit())
    return LINEAR if numbers >= COLLECTION_STRATEGIES_DEPRECATED else CLUSTER_SERIAL
