#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: capacity_plan
short_description: Plan where every guest goes while the hosts in scope are evacuated one after another
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin). From the facts C(kvmops.rolling.hypervisor_info) gathered on
    every host of the clusters concerned (kept in the host variable named by O(facts_var)) and the inventory
    variables, it plans the evacuation of each host of O(hosts) in turn, cluster by cluster.
  - A guest may move only to another host of its own cluster (C(rm_cluster)) that is reachable, enabled
    (C(rm_host_enabled)), not in maintenance, carries the guest's required host tags (C(rm_host_tags)),
    holds no guest of the guest's anti-affinity groups, and has room in vCPUs and memory, counted
    cumulatively over everything placed there before.
  - "Capacity of a host: CPUs times C(rm_cpu_overcommit_ratio) (default 1.0) and memory less
    C(rm_reserved_host_memory_mib) (default 1024) times C(rm_memory_overcommit_ratio) (default 1.0), unless
    C(rm_host_capacity) (a dict with C(cpus) and/or C(memory_mib)) sets them."
  - A cluster with a guest in a transitional or error state (migrating, crashed, paused by an I/O error...)
    cannot be planned.
  - Each move carries the target's C(rm_migration_uri) (default C(qemu+ssh://<ansible_host>/system)).
author:
  - kvmops.rolling engineers (@kvmops)
extends_documentation_fragment:
  - kvmops.rolling.rolling
  - kvmops.rolling.rolling.action
  - kvmops.rolling.rolling.controller
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details: The plan is made on the controller from variables and facts already gathered; nothing is changed in
      any mode, so check mode gives the same plan.
options:
  hosts:
    description: The hosts to evacuate, in the order the run visits them.
    type: list
    elements: str
    required: true
  facts_var:
    description: Name of the host variable holding each host's C(hypervisor_info) result (its C(hypervisor) value).
    type: str
    default: rm_hypervisor
  errors_var:
    description: Name of the host variable holding why a host's facts could not be gathered (empty when they were);
      a host of O(hosts) with such an error cannot be maintained.
    type: str
    default: rm_gather_error
  fail_on_infeasible:
    description: Fail the task, naming every guest that cannot move and why, when any host cannot be evacuated.
    type: bool
    default: true
  plan_skips:
    description:
      - Plan as skips the hosts of O(hosts) the run will skip, those whose C(rm_scripts) (from the gather) has no
        C(Maintenance) script and those whose C(rm_record) says PreFlight exited 70.
      - A skipped host is not evacuated; its guests stay where they are and it stays a target for the others.
    type: bool
    default: false
  fresh_hosts:
    description:
      - For a re-check before an evacuation that read only some hosts again (the host and its planned targets),
        those hosts. Only they are targets then (the others' facts may be old), and the result's RV(read_again)
        names the other hosts of the cluster to read as well when that finds no way to evacuate the host.
    type: list
    elements: str
notes:
  - It changes nothing anywhere; check mode gives the same result.
seealso:
  - module: kvmops.rolling.hypervisor_info
    description: Gathers the facts the plan is made from (O(facts_var)).
  - module: kvmops.rolling.rolling_scope
    description: Resolves the run's scope to the hosts given in O(hosts).
  - module: kvmops.rolling.host_maintenance
    description: Evacuates a host along its planned moves (RV(moves)).
"""

EXAMPLES = r"""
- name: Plan the evacuation of cluster c1
  kvmops.rolling.capacity_plan:
    hosts: "{{ groups['c1'] }}"
  delegate_to: localhost
  run_once: true
  register: plan
"""

RETURN = r"""
feasible:
  description: Whether every host in scope can be evacuated.
  returned: always
  type: bool
order:
  description: The hosts in the order they are evacuated (cluster after cluster).
  returned: always
  type: list
  elements: str
clusters:
  description: The plan of each cluster, every step with its moves and the guests that cannot move with the reason.
  returned: always
  type: list
  elements: dict
  contains:
    cluster:
      description: The cluster, as the run names it.
      type: str
      sample: c1
    feasible:
      description: Whether every host of the cluster in scope can be evacuated and no guest of the cluster is in a transitional
        or error state.
      type: bool
    blocked:
      description: The guests of the cluster in a transitional or error state, each with its host and state; any of them
        blocks the cluster.
      type: list
      elements: str
      sample:
        - 'db01 on hv2 (paused: ioerror)'
    steps:
      description: One step per host evacuated, in the order of the run.
      type: list
      elements: dict
      contains:
        host:
          description: The host evacuated in this step.
          type: str
        feasible:
          description: Whether every running guest of the host has a target.
          type: bool
        moves:
          description: The moves found for the host's guests (the C(vm), its C(uuid) and its C(target) host). An infeasible
            step lists them too, but none of them is made.
          type: list
          elements: dict
          sample:
            - vm: web-1
              uuid: 6f1d1a8e-6a5e-4b7e-9a53-0c7b8e0f6a11
              target: hv2
        unplaceable:
          description: The guests left without a target, each with its C(vm), C(uuid) and the C(reason).
          type: list
          elements: dict
moves:
  description:
    - Host name to its planned moves (vm, uuid, target, target_uri), ready for C(host_maintenance).
    - 'Each key is a host''s inventory name; each value (list of dicts):'
    - One key per host of the plan's steps (a host of O(hosts) that is not skipped), its inventory name. The value is
      the list of its guests' moves, as M(kvmops.rolling.host_maintenance) takes them in O(kvmops.rolling.host_maintenance#module:moves).
    - Each move has C(vm) (the guest's name), C(uuid) (its UUID), C(target) (the inventory name of the host it goes to)
      and C(target_uri) (the target's C(rm_migration_uri)).
    - Empty for a host that runs no guest.
  returned: always
  type: dict
  sample:
    hv1:
      - vm: web-1
        uuid: 6f1d1a8e-6a5e-4b7e-9a53-0c7b8e0f6a11
        target: hv2
        target_uri: qemu+ssh://hv2/system
problems:
  description:
    - Host name to why it cannot be evacuated.
    - 'Each key is a host''s inventory name; each value (str):'
    - One key per host of O(hosts) that cannot be evacuated, its inventory name. The value says why (its facts could
      not be gathered, a guest of its cluster is in a transitional state, a guest has no target).
  returned: always
  type: dict
  sample:
    hv1: 'could not be gathered: host unreachable'
skips:
  description:
    - Host name to why the run will skip it (with O(plan_skips)); such a host is not evacuated in the plan.
    - 'Each key is a host''s inventory name; each value (str):'
    - One key per host of O(hosts) the run will skip, its inventory name. The value is the reason the report gives.
  returned: always
  type: dict
  sample:
    hv3: There is no maintenance script on the host
read_again:
  description: With O(fresh_hosts), the other hosts of the cluster to read again and plan with before the evacuation
    (none when the hosts read are enough).
  returned: when O(fresh_hosts) is given
  type: list
  elements: str
  sample:
    - hv1
lines:
  description: The plan in words, one line per host in the order of the run.
  returned: always
  type: list
  elements: str
  sample:
    - 'c1/hv1: hv1-vm1 -> hv2, hv1-vm2 -> hv3'
    - 'c1/hv2: no running guest to move'
    - 'c1/hv3: expected to be skipped (There is no maintenance script on the host): not evacuated, stays a target'
"""
