# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every fixed time of the collection, in seconds, in one place: how often things are looked at, how long
each gets, and the margins one side leaves the other. What the operator sets (stage timeout, ping interval,
lock timeout) is checked in _stage.py and _scope.py, and the lock's threshold derived there."""

from __future__ import annotations

# The largest timeout or interval accepted (about 31 years): anything a stage could really need fits, and a
# value beyond it (10**12, a duration in ms or a typo) is a mistake.
MAX_SECONDS = 999999999

# --- jobs on the host (_jobs.py)
# How often a waiting poll looks for the result: "at once" to a human, cheap for the host.
RESULT_CHECK_SECONDS = 0.05
# How long a cancel request waits for the runner to settle the job.
CANCEL_WAIT_SECONDS = 10.0
# How long a job whose runner was told the host is going down counts as "the host is going down": a new boot id
# within it settles the job as rebooted; past it, with the boot id unchanged, the job has failed (its runner was
# killed, not rebooted).
SHUTDOWN_GRACE_SECONDS = 180.0

# --- a stage script (_stage_runner.py)
# How long a timed-out script gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 5.0
# A shutdown signals every process at once: a script that died of a signal may have had the shutdown's SIGTERM an
# instant before its runner. The runner waits this long for its own before it calls it a failure.
SHUTDOWN_SIGNAL_GRACE_SECONDS = 3.0
# How often the runner looks again at a reboot the script scheduled and has not happened yet.
REBOOT_CHECK_SECONDS = 0.5
# How often an attached runner (agent executor) checks that its connection is still there.
CONNECTION_CHECK_SECONDS = 0.2
# How often the runner trims the output files of a script that prints without end.
OUTPUT_CHECK_SECONDS = 0.5

# --- the lock (_marks.py, run_lock, maintenance_stage)
# How often a lock is renewed while no step renews it (an attached stage, a job waited for): below the smallest
# staleness threshold, which is 3 ping intervals of at least 1 s each.
LOCK_RENEW_SECONDS = 1.0

# --- the evacuation (_evacuation.py, _maintenance_mode.py)
# How often the evacuation looks at its migrations, the deadline and cancel requests.
TICK_SECONDS = 0.2
# How long aborted migrations get to wind down before the evacuation reports without them.
ABORT_GRACE_SECONDS = 30
# How long the final check waits for a target's libvirt to say whether a guest runs there (a hung daemon never does).
TARGET_CHECK_SECONDS = 30.0
# How long leaving maintenance waits for a cancelled evacuation to end: its aborts may take the grace period,
# and each guest's final check the target check, after which the job writes its result.
EVACUATION_STOP_SECONDS = int(ABORT_GRACE_SECONDS + TARGET_CHECK_SECONDS + 10)
# Leaving maintenance takes no longer than that stop: a host out of reach for longer is given up (the run's
# finish tries again, and the next run repairs what is left), not waited for during the whole wait_timeout.
LEAVE_TIMEOUT_SECONDS = EVACUATION_STOP_SECONDS + 10

# --- the controller (_job_driver.py, _recovery.py)
# The host ends a timed-out job itself (a script gets SIGTERM, then SIGKILL KILL_GRACE_SECONDS later); the
# controller only cancels, or gives up on an unreachable host, this long after the job's own deadline.
CONTROLLER_SLACK_SECONDS = 30.0
# The longest wait between two reconnection attempts to a host that dropped.
MAX_BACKOFF_SECONDS = 8.0
# How much longer than its own timeout a job an earlier run left running may take to end, before the run gives
# up waiting for it.
JOB_WAIT_SLACK_SECONDS = 60
