# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host's record of a run: what it keeps of each step, and keeping it on the host.

The controller holds each host's record (its entry in the report). A step that changes the record (a stage, the
evacuation) carries the record to the host and keeps it there, with the step's result in it, the moment the
step ends (``last_run.json``, which a resumed run goes on from): keeping the record costs no connection of its
own, and a controller that dies right after the step leaves the record with the step in it.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Mapping, Optional, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    JOURNAL_MARK,
    MarkError,
    StateDirError,
    prepare_state_dir,
    read_mark,
    write_mark,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import STATUS_RUNNING

# SPEC reasons of a host skipped because it needs nothing.
NO_MAINTENANCE_SCRIPT = "There is no maintenance script on the host"
NO_MAINTENANCE_REASONS = {"PreFlight": "Pre-flight stage set to avoid maintenance",
                          "PreMaintenance": "Pre-maintenance stage set to avoid maintenance"}
PREFLIGHT_NO_MAINTENANCE = NO_MAINTENANCE_REASONS["PreFlight"]

# How a host's turn ends (closed_record):
#   updated      every stage that ran succeeded (planned, in check mode)
#   skip         nothing to do there (no Maintenance script, exit 70): skipped with its reason
#   failure      a failure before or during maintenance: the host is failed, and the run aborts unless forced
#   postfailure  PostMaintenance failed: the host is failed, and the run aborts unless forced
#   critical     a guest runs on two hosts: the host is failed, and the run aborts even when forced
#   lost_lock    the run no longer holds its lock: the host is failed, and the run aborts even when forced
OUTCOME_KINDS = ("updated", "skip", "failure", "postfailure", "critical", "lost_lock")
# The reason of a lost_lock outcome, around why the lock is lost (the report's first line quotes it).
LOST_LOCK_REASON = "this run no longer holds its lock, so it stopped: %s"

# The options of the modules whose step changes the host's record.
RECORD_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {"record": {"type": "dict"},
                                                   "forced": {"type": "bool", "default": False}}

# What the record (and the report) keeps of a stage.
STAGE_SUMMARY_KEYS = ("status", "succeeded", "rc", "signal", "duration", "elapsed", "started_at", "ended_at",
                      "script", "stdout_tail", "stderr_tail", "msg", "reconnects", "adopted")
# What the record keeps of the evacuation.
EVACUATION_KEYS = ("status", "moves", "moved", "still_running", "on_both", "msg", "duration", "elapsed", "adopted")


def stage_summary(result: Mapping[str, Any]) -> Dict[str, Any]:
    """What the record keeps of a stage's result."""
    return {key: result.get(key) for key in STAGE_SUMMARY_KEYS}


def record_with_stage(record: Mapping[str, Any], stage: str, result: Mapping[str, Any]) -> Dict[str, Any]:
    """The record with ``stage``'s result in it (a copy)."""
    return dict(record, stages=dict(record.get("stages") or {}, **{stage: stage_summary(result)}))


def record_with_evacuation(record: Mapping[str, Any], result: Mapping[str, Any]) -> Dict[str, Any]:
    """The record with the evacuation's result in it (a copy)."""
    return dict(record, evacuation={key: result[key] for key in EVACUATION_KEYS if key in result})


def stage_outcome(stage: str, result: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """How a stage's result ends the host's turn, as (kind, reason); None when the turn goes on. A host that
    needed maintenance and did not get it is failed, also under rm_forced (which only lets the run go on)."""
    if result.get("lock_lost"):
        return "lost_lock", str(result["lock_lost"])
    if result.get("status") == "no_maintenance" and stage in NO_MAINTENANCE_REASONS:
        return "skip", NO_MAINTENANCE_REASONS[stage]
    if not result.get("succeeded"):
        return "postfailure" if stage == "PostMaintenance" else "failure", str(result.get("msg") or "failed")
    if stage == "PostMaintenance":
        return "updated", ""
    return None


def outcome_aborts_run(kind: str, forced: bool) -> bool:
    """A failure aborts the run unless forced; a guest on two hosts or a lost lock, always."""
    return kind in ("critical", "lost_lock") or (kind not in ("skip", "updated") and not forced)


def closed_record(record: Mapping[str, Any], kind: str, stage: str, reason: str, forced: bool,
                  check_mode: bool) -> Dict[str, Any]:
    """The host's record once its turn ended with ``kind`` (OUTCOME_KINDS) at ``stage`` (a copy)."""
    if kind not in OUTCOME_KINDS:
        raise ValueError("unknown outcome %r (one of %s)" % (kind, ", ".join(OUTCOME_KINDS)))
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if kind == "updated":
        return dict(record, status="planned" if check_mode else "updated", end=end)
    if kind == "lost_lock":
        reason = LOST_LOCK_REASON % reason
    return dict(record, status="skipped" if kind == "skip" else "failed", kind=kind, stage=stage, reason=reason,
                end=end, aborts_run=outcome_aborts_run(kind, forced))


def record_after_stage(record: Mapping[str, Any], stage: str, result: Mapping[str, Any], forced: bool,
                       check_mode: bool) -> Dict[str, Any]:
    """The record after ``stage`` ran: its result in it, and closed when that ends the host's turn."""
    after = record_with_stage(record, stage, result)
    outcome = stage_outcome(stage, result) if after.get("status") == "in_progress" else None
    return closed_record(after, outcome[0], stage, outcome[1], forced, check_mode) if outcome else after


def evacuation_outcome(result: Mapping[str, Any]) -> Optional[Tuple[str, str]]:
    """How the evacuation's result ends the host's turn, as (kind, reason); None when the turn goes on. A guest
    left running on two hosts stops the run, forced or not: the operator must decide."""
    if result.get("lock_lost"):
        return "lost_lock", str(result["lock_lost"])
    if result.get("status") in ("ok", "would_run"):
        return None
    return "critical" if result.get("on_both") else "failure", str(result.get("msg") or "the host could not be reached")


def record_after_evacuation(record: Mapping[str, Any], result: Mapping[str, Any], forced: bool,
                            check_mode: bool) -> Dict[str, Any]:
    """The record after the evacuation: its result in it, and closed when that ends the host's turn."""
    after = record_with_evacuation(record, result)
    outcome = evacuation_outcome(result) if after.get("status") == "in_progress" else None
    return closed_record(after, outcome[0], "maintenance mode", outcome[1], forced, check_mode) if outcome else after


def recorded_run_id(state_dir: str) -> Optional[str]:
    """The run whose record the host keeps (None when it keeps none, or one that cannot be read: a corrupt
    record is replaced, it only ever helps a resume)."""
    try:
        previous = read_mark(state_dir, JOURNAL_MARK)
    except MarkError:
        previous = None
    return (previous or {}).get("run_id")


class RecordError(RollingError):
    """The host's record cannot be kept (the state dir is unfit, the disk full, ...)."""


def keep_record(state_dir: str, run_id: str, record: Mapping[str, Any]) -> None:
    """Keep ``record`` as the host's record of run ``run_id``."""
    try:
        prepare_state_dir(state_dir)
        write_mark(state_dir, JOURNAL_MARK, {"run_id": run_id, "record": dict(record), "written_at": time.time()})
    except StateDirError as exc:
        raise RecordError(str(exc))
    except OSError as exc:
        raise RecordError("cannot keep the host's record in %s: %s" % (state_dir, exc.strerror))


def record_kept_at_step_end(state_dir: str, run_id: str, status: str, record: Optional[Mapping[str, Any]],
                            check_mode: bool) -> Dict[str, Any]:
    """Keep the record a step carried, once the step has ended: the result's ``record_kept`` and, when it could
    not be kept, ``record_error`` (the run goes on: the record only ever helps a resume). Nothing while the step
    runs, in check mode, or when the step carried no record."""
    if record is None or check_mode or status == STATUS_RUNNING:
        return {}
    try:
        keep_record(state_dir, run_id, record)
    except RecordError as exc:
        return {"record_kept": False, "record_error": str(exc)}
    return {"record_kept": True}
