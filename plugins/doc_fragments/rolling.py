# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Every module of the collection: full check mode, no diff, POSIX hosts.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in diff mode) when in diff mode.
    support: none
  platform:
    platforms: posix
"""

    # The modules an action plugin of the same name drives (with ansible.builtin.action_common_attributes.flow).
    ACTION = r"""
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""

    # The modules whose action does all the work on the controller.
    CONTROLLER = r"""
attributes:
  platform:
    details: Runs on the controller only; no host is contacted.
"""

    # The modules whose action plugin runs a long job on the host through start, poll and cancel.
    JOB = r"""
options:
  _mode:
    description: Internal, set by the action plugin; do not set. Which step of the job to take.
    type: str
    default: start
    choices: [start, poll, cancel]
  _job_id:
    description: Internal, set by the action plugin; do not set. The job the step is about.
    type: str
  _wait:
    description: Internal, set by the action plugin; do not set. Seconds to wait for the job to end before answering.
    type: float
    default: 0.0
"""

    # The modules a run's host steps go through: each checks first that the run still holds its lock.
    HOLDS_LOCK = r"""
options:
  holds_lock:
    description:
      - The run O(run_id) holds the lock of the host's cluster (as the rolling maintenance playbook's runs do). The step
        renews the lock first, and is refused when the run no longer holds it (another run took it over, or it could
        not be renewed), RV(lock_lost) saying why; a job it polls is cancelled then. Never checked in check mode.
    type: bool
    default: false
"""

    # The modules whose step changes the host's record in a run: the step carries the record and keeps it.
    RECORD = r"""
options:
  record:
    description:
      - The host's record in the run O(run_id) (status, stages, evacuation, start, end, ...), as the report shows it.
      - When given, the step keeps the record, with its own result in it, on the host the moment the step ends
        (C(last_run.json) in O(state_dir), as M(kvmops.rolling.run_journal) does), so a run started with
        C(rm_resume=true) after an interruption goes on from the step after it; and the task returns it as RV(record).
        Nothing is kept in check mode, while the step runs, or when the run lost its lock.
      - When the step's result ends the host's turn (a failure, an exit 70 in PreFlight or PreMaintenance, the
        end of PostMaintenance, a lost lock), the record is closed with that outcome (status, kind, stage, reason,
        end, aborts_run), as the filter P(kvmops.rolling.closed_record#filter) closes it.
    type: dict
  forced:
    description: With O(record), the run goes on past a failing host (C(rm_forced)), so a failure closing the record
      does not abort the run (a guest on two hosts or a lost lock still do).
    type: bool
    default: false
"""

    # The modules that only read or write the small state files of a run (marks, lock, record).
    STATE_DIR = r"""
options:
  state_dir:
    description: Root-only directory of the collection's state on the host.
    type: path
    default: /var/lib/kvm-rolling-maintenance
"""
