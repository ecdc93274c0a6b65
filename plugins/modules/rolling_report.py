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
