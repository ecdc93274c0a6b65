# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: cluster_serial
short_description: One host at a time, cluster after cluster, in inventory order
version_added: 0.1.0
description:
  - The linear strategy, run for one host at a time. Hosts are grouped by cluster (a cluster is its
    C(rm_zone), C(rm_pod) and C(rm_cluster) together), clusters in the order of their first host in the
    inventory, and hosts of a cluster in inventory order.
  - A play with C(serial) other than 1 is refused with a message saying why, and so is a sequence of
    serial batches that comes back to a cluster after another cluster was begun.
  - It only orders hosts and runs the built-in linear strategy for each; every guarantee of the rolling
    maintenance playbook also holds under C(ansible.builtin.linear) with C(serial) 1, because the playbook
    orders the hosts itself.
  - The clean Ctrl-C of a run is not the strategy's. The P(kvmops.rolling.host_play_strategy#lookup) lookup,
    which chooses the strategy of the host play, installs it under either strategy.
  - ansible-core 2.19 deprecated strategy plugins outside C(ansible.builtin); from that version on the
    playbook runs C(ansible.builtin.linear) unless C(rm_strategy) names this one.
author:
  - kvmops.rolling engineers (@kvmops)
"""

from typing import Any, Dict, Optional

from ansible.plugins.strategy.linear import StrategyModule as LinearStrategy
from ansible.utils.display import Display
from ansible_collections.kvmops.rolling.plugins.plugin_utils._cluster_order import (
    ClusterIdentity,
    ClusterSequence,
    cluster_identity,
    cluster_names,
    group_by_cluster,
    serial_refusal,
)

display = Display()


class StrategyModule(LinearStrategy):
    # Ansible makes a new strategy object for every serial batch: the cluster order of a play is
    # followed across its batches here, by play id.
    _sequences: Dict[str, ClusterSequence] = {}

    def __init__(self, tqm: Any) -> None:
        super().__init__(tqm)
        self._only_host: Optional[str] = None

    def _set_hosts_cache(self, play: Any, refresh: bool = True) -> None:
        super()._set_hosts_cache(play, refresh)
        if self._only_host is not None:
            self._hosts_cache = [self._only_host]

    def run(self, iterator: Any, play_context: Any) -> int:  # type: ignore[override]
        play = iterator._play
        refusal = serial_refusal(play.serial)
        if refusal:
            display.error(refusal)
            return self._tqm.RUN_ERROR
        self._only_host = None
        self._set_hosts_cache(play)
        clusters = cluster_names({name: self._cluster_of(play, name) for name in self._hosts_cache})
        result = self._tqm.RUN_OK
        sequence = self._sequences.setdefault(play._uuid, ClusterSequence())
        for name in group_by_cluster(self._hosts_cache, clusters.__getitem__):
            refusal = sequence.enter(name, clusters[name])
            if refusal:
                display.error(refusal)
                return result | self._tqm.RUN_ERROR
            if self._tqm._terminated:
                break
            self._only_host = name
            result |= super().run(iterator, play_context)
        self._only_host = None
        return result

    def _cluster_of(self, play: Any, name: str) -> ClusterIdentity:
        host = self._inventory.get_host(name)
        return cluster_identity(self._variable_manager.get_vars(play=play, host=host, include_hostvars=False))
