# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Leaving maintenance mode on a host: what host_maintenance (state absent) does, and the Maintenance stage when
it ends (so a host's turn costs no connection of its own for it).

A host leaves maintenance only once nothing moves off it any more: an evacuation still running is cancelled and
waited for first (its migrations aborted, its guests reconciled).
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import (
    JobError,
    JobStore,
    cancel,
    current_boot_id,
    poll,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    MAINTENANCE_MARK,
    MarkError,
    read_mark,
    remove_mark,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import EVACUATION_STOP_SECONDS

# The option of the Maintenance stage that leaves maintenance when the stage ends.
LEAVE_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {"leave_maintenance": {"type": "bool", "default": False}}


def in_maintenance(state_dir: str) -> bool:
    return read_mark(state_dir, MAINTENANCE_MARK) is not None


def stop_evacuations(store: JobStore, check_mode: bool) -> List[str]:
    """Cancel every evacuation still running on this host and wait for it to end. Returns the jobs stopped;
    raises JobError when one does not end."""
    stopped = []
    for job in store.running_jobs(current_boot_id()) if os.path.isdir(store.jobs_dir) else []:
        if job.get("kind") != "evacuation" or check_mode:
            continue
        cancel(store, job["job_id"])
        status, _fields = poll(store, job["job_id"], EVACUATION_STOP_SECONDS)
        if status == "running":
            raise JobError("the evacuation %s of run %s still runs %d s after it was cancelled: the host stays in "
                           "maintenance; look at that job on the host" % (job["job_id"], job.get("run_id"),
                                                                          EVACUATION_STOP_SECONDS))
        stopped.append(job["job_id"])
    return stopped


def leave_maintenance(state_dir: str, check_mode: bool) -> Dict[str, Any]:
    """Take the host out of maintenance (never refused: it is also how a run that lost its lock stops cleanly).
    Raises JobError (an evacuation that does not stop) or MarkError (a mark that cannot be read)."""
    stopped = stop_evacuations(JobStore(state_dir), check_mode)
    mark = read_mark(state_dir, MAINTENANCE_MARK)
    stopped_words = "; the evacuation still running was stopped first (%s)" % ", ".join(stopped) if stopped else ""
    if mark is None:
        return {"status": "ok", "in_maintenance": False, "changed": bool(stopped), "stopped_evacuations": stopped,
                "msg": "the host was not in maintenance" + stopped_words}
    if not check_mode:
        remove_mark(state_dir, MAINTENANCE_MARK)
    return {"status": "ok", "in_maintenance": check_mode, "changed": True, "mark": mark,
            "stopped_evacuations": stopped,
            "msg": "the host left maintenance (it was in maintenance for run %s)%s" % (mark.get("run_id"), stopped_words)}


def left_maintenance_at_stage_end(state_dir: str, check_mode: bool) -> Dict[str, Any]:
    """leave_maintenance for a stage that ended: what it did, or, when it could not, ``status`` failed with why
    (the host counts as still in maintenance, so the run tries again with host_maintenance)."""
    try:
        return leave_maintenance(state_dir, check_mode)
    except (JobError, MarkError) as exc:
        return {"status": "failed", "in_maintenance": True, "msg": str(exc)}
    except OSError as exc:
        return {"status": "failed", "in_maintenance": True,
                "msg": "cannot leave maintenance: %s: %s" % (exc.strerror, exc.filename or state_dir)}
