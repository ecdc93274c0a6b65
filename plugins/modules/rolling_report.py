#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rolling_report
short_description: Build and write the report of a rolling maintenance run
version_added: 0.1.0
description:
  - Runs on the controller (an action plugin) at the end of C(playbooks/rolling_maintenance.yml), also when the
    run aborted or its inputs were refused. It reads the run (C(rm_run)), the plan (C(rm_plan)), each host's record (C(rm_record)) and the
    run's state (C(rm_aborted), C(rm_abort_reason), C(rm_forced), C(rm_cancel_failures), C(rm_disabled_clusters),
    C(rm_enable_failures)) from the play's variables, writes the report as JSON to O(path) and returns it with
    the lines the play output shows.
  - "The report's keys: C(success), C(details), C(attention) (anything left behind: a host that could not leave
    maintenance, a cluster still disabled), C(plan), C(hosts_updated) (every stage's status, exit code, duration
    and output tails, and the evacuation), C(hosts_planned) (check mode: the hosts every step would run on; a
    check-mode run never lists a host as updated), C(hosts_skipped) (the host needed nothing, or the run stopped
    before it) and C(hosts_failed) (it needed maintenance and did not get it, also under C(rm_forced)), each
    with C(stage) and C(reason); every host entry has C(host) and C(cluster)."
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
    support: partial
    details:
      - The report is written to O(path) on the controller in check mode too, since it is the outcome of a check
        run. It then lists the hosts in RV(report.hosts_planned) and says that no script ran and nothing was
        migrated or disabled. No host is touched in any mode.
options:
  path:
    description:
      - Where the JSON report is written on the controller (replaced atomically, mode 0600, since the stage
        output tails in it may hold what a script printed).
      - Empty means C(rolling-maintenance-RUN_ID.json) in the current directory. A run refused before it had a
        valid run id is named C(refused-) and the time.
    type: path
    default: ""
notes:
  - The report is written in check mode too; it then says that nothing was run, migrated or disabled.
seealso:
  - module: kvmops.rolling.rolling_scope
    description: Resolves the run's scope (C(rm_run)), which the report names.
  - module: kvmops.rolling.capacity_plan
    description: Makes the plan (C(rm_plan)) the report keeps under RV(report.plan).
  - module: kvmops.rolling.maintenance_stage
    description: Runs the stages whose summaries the report keeps for each host.
  - module: kvmops.rolling.run_recovery
    description: Decides what the run does about what earlier runs left, the report's RV(report.found).
"""

EXAMPLES = r"""
- name: Write the report
  kvmops.rolling.rolling_report:
    path: "{{ rm_report_path }}"
  register: rm_report
"""

RETURN = r"""
report:
  description: The report, as written.
  returned: always
  type: dict
  contains:
    success:
      description: Whether the run succeeded (not aborted, no host failed, nothing left behind).
      type: bool
    details:
      description:
        - The outcome in one line, how many hosts were updated (planned, in check mode), skipped and failed of how many.
          The abort reason comes first when the run aborted, and before it a warning when no host in scope has a C(Maintenance)
          script.
      type: str
    attention:
      description:
        - What the run left behind for the operator, one line each. That is a guest running on two hosts, a task that
          failed where nothing may, a host that could not leave maintenance, a cluster still disabled, a cluster that
          could not be enabled again. Empty when nothing was left.
      type: list
      elements: str
    run_id:
      description: The run's id (C(refused-) and the time for a run refused before it had a valid one).
      type: str
      sample: 20261124T221000Z-4711
    scope:
      description: The scope the run was given.
      type: dict
      contains:
        kind:
          description:
            - The scope variable given, C(rm_hosts), C(rm_clusters), C(rm_pods) or C(rm_zones).
            - Empty when the run's inputs were refused.
          type: str
          sample: rm_clusters
        names:
          description: The names given in it.
          type: list
          elements: str
          sample:
            - c1
            - c2
    forced:
      description: Whether the run went on past failing hosts (C(rm_forced)).
      type: bool
    check_mode:
      description: Whether the run was a check-mode run.
      type: bool
    started:
      description: When the run started (UTC, ISO 8601), as C(rm_run_started) says.
      type: str
      sample: '2026-11-24T22:10:00Z'
    ended:
      description: When the report was written (UTC, ISO 8601).
      type: str
      sample: '2026-11-24T23:02:41Z'
    resumed_from:
      description: The interrupted run this run took up with C(rm_resume) (empty when none).
      type: str
    found:
      description:
        - What earlier runs left on the hosts and what was done about it, in words, as RV(kvmops.rolling.run_recovery#module:lines).
      type: list
      elements: str
    plan:
      description: The plan the run followed (C(rm_plan), what M(kvmops.rolling.capacity_plan) returned).
      type: dict
      contains:
        clusters:
          description: The plan of each cluster, as RV(kvmops.rolling.capacity_plan#module:clusters).
          type: list
          elements: dict
        lines:
          description: The plan in words, one line per host, as RV(kvmops.rolling.capacity_plan#module:lines).
          type: list
          elements: str
        problems:
          description:
            - Host name to why it cannot be evacuated, as RV(kvmops.rolling.capacity_plan#module:problems).
            - 'Each key is a host''s inventory name; each value (str):'
            - One key per host that cannot be evacuated, its inventory name; the value says why.
          type: dict
        skips:
          description:
            - Host name to why the run skips it, as RV(kvmops.rolling.capacity_plan#module:skips).
            - 'Each key is a host''s inventory name; each value (str):'
            - One key per host the plan foresaw skipping, its inventory name; the value is the reason.
          type: dict
    hosts_updated:
      description:
        - The hosts that got their maintenance, in the order of the run. Empty in check mode.
        - Each entry has C(host), C(cluster), C(start) and C(end) (UTC, ISO 8601), C(stages) (stage name to what was
          kept of it, as RV(kvmops.rolling.maintenance_stage#module:summary)) and, when the host was evacuated, C(evacuation)
          (the C(evacuation) of RV(kvmops.rolling.host_maintenance#module:record)).
      type: list
      elements: dict
    hosts_planned:
      description:
        - In check mode, the hosts every step would have run on, entries as in RV(report.hosts_updated). Empty otherwise.
      type: list
      elements: dict
    hosts_skipped:
      description:
        - The hosts that needed nothing (no C(Maintenance) script, exit 70 in C(PreFlight) or C(PreMaintenance)) and
          those the run stopped before. Entries as in RV(report.hosts_updated), with C(stage) (where the host was skipped,
          C(not started) when the run never reached it) and C(reason).
      type: list
      elements: dict
    hosts_failed:
      description:
        - The hosts that needed maintenance and did not get it, also under C(rm_forced). Entries as in RV(report.hosts_updated),
          with C(stage) (where the host failed) and C(reason).
      type: list
      elements: dict
lines:
  description: The report in words; the first line names anything left behind, else the outcome.
  returned: always
  type: list
  elements: str
success:
  description: Whether the run succeeded (not aborted, no host failed, nothing left behind).
  returned: always
  type: bool
path:
  description: Where the report was written.
  returned: always
  type: str
"""
