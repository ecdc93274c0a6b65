#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_recovery
short_description: Decide what a rolling maintenance run does about what earlier runs left on the hosts
version_added: 0.2.0
description:
  - Runs on the controller (an action plugin), after C(kvmops.rolling.hypervisor_info) has gathered every host of the
    clusters concerned (kept in the host variable named by O(facts_var)), that is the lock of each cluster, the marks
    (host in maintenance, cluster disabled), the jobs still running and each host's record in its last run.
  - A lock whose holder may still be at work makes it refuse (RV(refusal) names the run, its start and its
    controller). A holder is gone when its ansible-playbook process is gone (same controller), its controller has
    rebooted, or it has not renewed its lock for the threshold the lock records (O(lock_timeout) for a lock that
    records none); a holder whose process is alive on this controller never is. A lock's age is taken from its
    freshest copy in the cluster, and never counts time from before the host's last boot.
  - A locked cluster with a host that could not be read (no facts in O(facts_var)) is not taken over, since that
    host's lock may be the fresh one, unless O(take_over) names its holder.
  - What gone runs left is repaired (hosts leave maintenance, clusters are enabled again, jobs still running are waited
    for), unless O(resume) is true and exactly one interrupted run holds the clusters. Then RV(run_id) is that run, and
    RV(resumed_records) say where each host stands in it.
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
    details:
      - It only judges, on the controller, the facts already gathered and changes nothing in any mode; the repairs
        it decides on are made by other tasks. Check mode gives the same decision.
options:
  clusters:
    description: The clusters the run works on, each with all its hosts in inventory order.
    type: dict
    required: true
  run_id:
    description: The id of the new run.
    type: str
    required: true
  resume:
    description: Take up the interrupted run that holds the clusters, instead of repairing what it left and starting afresh.
    type: bool
    default: false
  lock_timeout:
    description: Seconds after which a lock that has not been renewed is taken over, for a lock that records no threshold.
    type: int
    required: true
  take_over:
    description: The run whose clusters may be taken over although a host of them could not be read.
    type: str
    default: ""
  facts_var:
    description: The host variable that holds what C(kvmops.rolling.hypervisor_info) returned.
    type: str
    default: rm_hypervisor
seealso:
  - module: kvmops.rolling.hypervisor_info
    description: Gathers the locks, marks, jobs and records this module judges (O(facts_var)).
  - module: kvmops.rolling.run_lock
    description: Takes the locks on RV(lock_hosts), taking over those of RV(takeover).
  - module: kvmops.rolling.host_maintenance
    description: Takes the hosts of RV(leave_maintenance) out of maintenance.
  - module: kvmops.rolling.cluster_state
    description: Clears the marks of the clusters of RV(enable_clusters).
"""

EXAMPLES = r"""
- name: Decide about what earlier runs left
  kvmops.rolling.run_recovery:
    clusters: {c1: [hv1, hv2, hv3]}
    run_id: "{{ rm_run_id }}"
    resume: true
    lock_timeout: 900
  register: recovery
"""

RETURN = r"""
refusal:
  description: Why the run must not start ("" when it may).
  returned: always
  type: str
run_id:
  description: The run id to go on with, the resumed run's when resuming.
  returned: always
  type: str
resumed_from:
  description: The interrupted run taken up ("" when none).
  returned: always
  type: str
lines:
  description: What was found and what will be done about it, in words.
  returned: always
  type: list
  elements: str
takeover_renewed_at:
  description:
    - Host to when the lock to replace there was last renewed (seconds since the epoch), as judged.
    - 'Each key is a host''s inventory name; each value (float):'
    - One key per host of RV(takeover), its inventory name. The value is the lock's renewal time as judged, for M(kvmops.rolling.run_lock)'s
      O(kvmops.rolling.run_lock#module:takeover_renewed_at); the takeover is refused on the host if the lock was renewed
      since.
  returned: always
  type: dict
  sample:
    hv1: 1795555000.0
takeover:
  description:
    - Host to the gone run whose lock is replaced there.
    - 'Each key is a host''s inventory name; each value (str):'
    - One key per host whose lock a gone run holds, its inventory name. The value is that run's id.
  returned: always
  type: dict
  sample:
    hv1: 20261124T221000Z-4711
lock_hosts:
  description: The hosts of the clusters that answered, in inventory order; the run takes its lock on each.
  returned: always
  type: list
  elements: str
wait_jobs:
  description: The jobs of gone runs still running (host, job_id, run_id, label, wait in seconds).
  returned: always
  type: list
  elements: dict
  contains:
    host:
      description: The host the job runs on.
      type: str
      sample: hv2
    job_id:
      description: The job's id on the host.
      type: str
      sample: 20261124T221000Z-4711.Maintenance-stage.f31e7de9
    run_id:
      description: The run that started it.
      type: str
    label:
      description: What the job is, C(evacuation) or the stage (C(Maintenance stage), ...).
      type: str
      sample: Maintenance stage
    elapsed:
      description: Seconds the job had run when the host was read.
      type: float
    timeout:
      description: Seconds the job may run in all (its stage or evacuation timeout); null when the job does not say.
      type: int
    wait:
      description: Seconds to wait for it at most, what is left of its timeout and some slack.
      type: int
leave_maintenance:
  description:
    - Host to the gone run that left it in maintenance.
    - 'Each key is a host''s inventory name; each value (str):'
    - One key per host a gone run left in maintenance, its inventory name. The value is that run's id.
  returned: always
  type: dict
  sample:
    hv2: 20261124T221000Z-4711
enable_clusters:
  description:
    - Cluster to the gone run that left it disabled.
    - 'Each key is a cluster''s name as the run names it; each value (str):'
    - One key per cluster a gone run left disabled, as the run names it. The value is that run's id.
  returned: always
  type: dict
  sample:
    c1: 20261124T221000Z-4711
resumed_records:
  description:
    - When resuming, host to its record in the resumed run. A final one (updated, or needed no maintenance) is kept as
      it is; one in progress is where the host goes on from. Hosts the run failed or never reached start afresh.
    - 'Each key is a host''s inventory name; each value (dict):'
    - One key per host whose record the resumed run goes on from, its inventory name. The value is the record the host
      kept (C(last_run.json)), as RV(kvmops.rolling.hypervisor_info#module:hypervisor.last_run.record).
  returned: always
  type: dict
disabled_clusters:
  description: When resuming, the clusters the resumed run had disabled.
  returned: always
  type: list
  elements: str
repairs:
  description: Whether anything must be waited for or repaired on the hosts.
  returned: always
  type: bool
controller:
  description: This controller and its ansible-playbook process, as recorded in the locks this run takes.
  returned: always
  type: dict
  contains:
    host:
      description: The controller's host name.
      type: str
      sample: awx-1
    boot_id:
      description: The controller's boot id, to tell that it rebooted since.
      type: str
    pid:
      description: The process id of the run's ansible-playbook process.
      type: int
      sample: 4242
    pid_start_ticks:
      description:
        - When that process started (clock ticks since boot), to tell it apart from a later process with the same id.
        - Null when unknown.
      type: int
      sample: 991
"""
