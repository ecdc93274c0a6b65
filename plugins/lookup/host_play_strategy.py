# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: host_play_strategy
short_description: The strategy of the one-host-at-a-time play, and the run's clean Ctrl-C
version_added: 0.4.0
description:
  - Returns the strategy of the play that maintains one host at a time. The one given, when it is not empty;
    otherwise P(kvmops.rolling.cluster_serial#strategy) on ansible-core before 2.19 and
    C(ansible.builtin.linear) from 2.19 on, where strategy plugins outside C(ansible.builtin) are deprecated.
    Both give the same run; the strategy adds a refusal of a C(serial) other than 1.
  - Also makes the first Ctrl-C of the run a clean stop, under either strategy. The stage or evacuation
    under way is cancelled on its host, the run is aborted (C(rm_aborted) and C(rm_abort_reason) on
    C(localhost)), no further host is started, and the plays that follow take the host out of maintenance,
    enable the cluster again and write the report. A second Ctrl-C stops ansible-playbook at once (the next
    run repairs what is left).
  - This is done here because the C(strategy) keyword of a play is templated in ansible-playbook's own
    process before the play starts, the only place a collection can reach without a setting of the
    operator's.
  - Use it in the C(strategy) keyword of a play after the first one. Before the first play has run (and in
    C(--syntax-check)) there is no run to stop, and it only returns the strategy.
options:
  _terms:
    description: The strategy asked for (the run's C(rm_strategy)); empty for the default.
    type: list
    elements: str
    required: false
author:
  - kvmops.rolling engineers (@kvmops)
"""

EXAMPLES = r"""
- name: One host at a time
  hosts: rm_scope
  serial: 1
  strategy: "{{ lookup('kvmops.rolling.host_play_strategy', rm_strategy | default('')) }}"
  tasks: []
"""

RETURN = r"""
_raw:
  description: The name of the strategy, as the C(strategy) keyword takes it.
  type: list
  elements: str
"""

from typing import Any, Dict, List, Optional

from ansible.plugins.lookup import LookupBase
from ansible.release import __version__ as core_version
from ansible.utils.display import Display
from ansible_collections.kvmops.rolling.plugins.plugin_utils._cluster_order import host_play_strategy
from ansible_collections.kvmops.rolling.plugins.plugin_utils._interrupt import install_clean_stop

display = Display()


class LookupModule(LookupBase):
    def run(self, terms: List[Any], variables: Optional[Dict[str, Any]] = None, **kwargs: Any) -> List[str]:
        chosen = str(terms[0]).strip() if terms and terms[0] is not None else ""
        # hostvars reaches the variable manager of ansible-playbook's process: the abort is set through it.
        manager = getattr((variables or {}).get("hostvars"), "_variable_manager", None)
        if manager is not None:  # absent only before the playbook's first play ran, as in --syntax-check
            install_clean_stop(manager, display.warning)
        return [host_play_strategy(chosen, core_version)]
