#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rolling_scope
short_description: Check a rolling maintenance run's inputs and resolve its scope to hosts
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin) and touches no host. It reads the run's variables and fails,
    naming every problem, when they are wrong, so that a bad run stops before anything is changed.
  - "Checked: exactly one of C(rm_hosts), C(rm_clusters), C(rm_pods), C(rm_zones) (a list or a comma-separated
    string) and every name in it matches an inventory host (by name, C(rm_cluster), C(rm_pod) or C(rm_zone));
    C(rm_stage_timeout), C(rm_wait_maintenance_timeout) and C(rm_ping_interval) are integers of seconds from 1
    to 999999999 and neither timeout is below the interval; C(rm_lock_timeout) is one too;
    C(rm_max_parallel_migrations) is an integer from 1 to 64; C(rm_payload) is UTF-8 text of at most 120 KiB
    that splits into words without a shell's help; C(rm_run_id) is a safe identifier; every host in scope has
    a C(rm_cluster) and a known C(rm_executor)."
  - "Extra vars given as C(-e \"NAME=VALUE ...\") are split at blanks by ansible-playbook, which keeps the
    words that are not NAME=VALUE aside (C(-e \"rm_hosts=hv1 hv2\") sets C(rm_hosts) to C(hv1) only); any such
    word refuses the run, so nothing the operator typed is silently dropped."
  - The hosts in scope come back grouped by cluster, clusters in the order of their first host in the
    inventory and hosts in inventory order, with every host of the clusters concerned (the migration targets).
  - A cluster is its zone, pod and cluster names together (C(rm_zone), C(rm_pod), C(rm_cluster)); two clusters
    called C(c1) in two zones are two clusters. The run names a cluster by its name alone when no other zone or
    pod of the inventory has a cluster of that name, and as C(zone/pod/name) otherwise; C(rm_clusters) takes
    either form (C(c1) picks every cluster called c1, C(z2/p1/c1) only that one).
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
    details: It only reads the play's variables and the inventory on the controller and changes nothing, so check
      mode gives the same result.
options: {}
seealso:
  - module: kvmops.rolling.capacity_plan
    description: Plans the evacuation of the hosts in scope (RV(hosts)).
  - module: kvmops.rolling.run_recovery
    description: Decides, for the clusters in scope (RV(members)), what to do about what earlier runs left.
  - module: kvmops.rolling.rolling_report
    description: Writes the run's report, with its scope.
"""

EXAMPLES = r"""
- name: Resolve the scope of the run
  kvmops.rolling.rolling_scope:
  vars:
    rm_clusters: c1,c2
    rm_run_id: "{{ lookup('pipe', 'date +%Y%m%d%H%M%S') }}"
  register: scope
"""

RETURN = r"""
take_over:
  description: The run to take over although a host of its clusters could not be read (the C(rm_take_over) variable),
    or V("").
  returned: success
  type: str
secret_env_names:
  description: The names of the variables of C(rm_secret_env), sorted; their values never leave the task.
  returned: success
  type: list
  elements: str
  sample:
    - MIRROR_TOKEN
hosts:
  description: The hosts to maintain, in the order the run visits them.
  returned: success
  type: list
  elements: str
  sample:
    - hv1
    - hv2
    - hv3
    - hv4
clusters:
  description: The clusters concerned, in the order they are maintained.
  returned: success
  type: list
  elements: str
members:
  description:
    - Each cluster (as the run names it) to all its inventory hosts, in inventory order.
    - 'Each key is a cluster''s name as the run names it; each value (list of strs):'
    - One key per cluster concerned, as the run names it (C(c1), or C(zone/pod/name) when another zone or pod has a cluster
      of that name). The value is every inventory host of the cluster, the migration targets included, in inventory order.
  returned: success
  type: dict
  sample:
    c1:
      - hv1
      - hv2
      - hv3
cluster_hosts:
  description: Every host of the clusters concerned, cluster after cluster.
  returned: success
  type: list
  elements: str
cluster_of:
  description:
    - Host name to its cluster as the run names it, for every host of the clusters concerned.
    - 'Each key is a host''s inventory name; each value (str):'
    - One key per host of the clusters concerned, its inventory name. The value is its cluster, as RV(members) names
      it.
  returned: success
  type: dict
  sample:
    hv1: c1
    hv2: c1
    hv3: c1
identity:
  description:
    - Each cluster (as the run names it) to its zone, pod and cluster names.
    - 'Each key is a cluster''s name as the run names it; each value (dict):'
    - One key per cluster concerned, as RV(members) names it.
  returned: success
  type: dict
  sample:
    z2/p1/c1:
      zone: z2
      pod: p1
      cluster: c1
kind:
  description: Which scope variable was given.
  returned: success
  type: str
names:
  description: The names given in it.
  returned: success
  type: list
  elements: str
run_id:
  description: The run's identifier.
  returned: success
  type: str
settings:
  description: The checked timing settings as integers.
  returned: success
  type: dict
  contains:
    rm_stage_timeout:
      description: Seconds a stage may take.
      type: int
      sample: 1800
    rm_wait_maintenance_timeout:
      description: Seconds a host has to become empty when it is evacuated.
      type: int
      sample: 1800
    rm_ping_interval:
      description: Seconds between status polls of a running stage or evacuation.
      type: int
      sample: 10
    rm_lock_timeout:
      description:
        - The run's C(rm_lock_timeout), in seconds. It is the base of RV(settings.rm_lock_threshold), and how long another
          run's lock that records no threshold may go unrenewed before this run takes it over.
      type: int
      sample: 900
    rm_max_parallel_migrations:
      description: How many guests migrate at the same time (1 to 64).
      type: int
      sample: 2
    rm_lock_renewal_interval:
      description:
        - How often (seconds) the run renews its lock on the hosts it is not working on, between its steps. A third of
          C(rm_lock_timeout), never below C(rm_ping_interval).
      type: int
      sample: 300
    rm_lock_threshold:
      description:
        - Seconds without a renewal after which another run may take this one for gone, recorded in its lock. C(rm_lock_timeout)
          (never below three polls) plus the longer of C(rm_stage_timeout) and C(rm_wait_maintenance_timeout).
      type: int
      sample: 2700
"""
