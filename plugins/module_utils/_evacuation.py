# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Maintenance mode of a KVM host: the evacuation of its guests by live migration.

The evacuation talks to libvirt through objects handed to it (a connection factory), so its rules
are tested with fakes: migrate each planned guest, several at a time; stop at the first failure,
the deadline, a cancel request or an error of its own; abort what is in flight at once; make sure
every guest still runs exactly once (resuming one that our migration left paused, once its target is
known not to run it; never touching one that runs on both hosts); report what moved where.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt_inventory import (
    PAUSED_BY_MIGRATION,
    VIR_DOMAIN_PAUSED,
    VIR_ERR_NO_DOMAIN,
    paused_reasons,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import DEFAULT_STATE_DIR
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import (
    ABORT_GRACE_SECONDS,
    TARGET_CHECK_SECONDS,
    TICK_SECONDS,
)

# virDomainMigrateFlags (libvirt's stable ABI), so this file needs no libvirt import.
MIGRATE_LIVE = 1
MIGRATE_PEER2PEER = 2
MIGRATE_PERSIST_DEST = 8
MIGRATE_UNDEFINE_SOURCE = 16
# The pauses a failed migration of ours leaves behind: the only ones the evacuation undoes.
PAUSED_REASONS_FROM_MIGRATION = paused_reasons(PAUSED_BY_MIGRATION)

# The options of the host_maintenance module, shared with its action plugin so both validate alike.
MAINTENANCE_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "moves": {"type": "list", "elements": "dict", "default": [], "options": {
        "vm": {"type": "str", "required": True},
        "uuid": {"type": "str", "required": True},
        "target": {"type": "str", "required": True},
        "target_uri": {"type": "str", "required": True},
    }},
    "uri": {"type": "str", "default": "qemu:///system"},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
    "wait_timeout": {"type": "int", "default": 1800},
    "ping_interval": {"type": "int", "default": 10},
    "max_parallel_migrations": {"type": "int", "default": 2},
    "run_id": {"type": "str"},
    "host_name": {"type": "str"},
    "holds_lock": {"type": "bool", "default": False},
}


class EvacuationError(RollingError, ValueError):
    """The request cannot be carried out as given (bad plan)."""


@dataclass(frozen=True)
class PlannedMove:
    vm: str
    uuid: str
    target: str
    target_uri: str


def parse_moves(raw: Sequence[Mapping[str, Any]], host: str) -> List[PlannedMove]:
    """The planned moves, checked: each names a VM (and its UUID), a target host and the target's migration URI."""
    moves = []
    seen = set()
    for index, item in enumerate(raw):
        missing = [key for key in ("vm", "uuid", "target", "target_uri") if not item.get(key)]
        if missing:
            raise EvacuationError("move #%d (%s) lacks %s" % (index + 1, item.get("vm", "?"), ", ".join(missing)))
        if item["target"] == host:
            raise EvacuationError("move of %s targets %s, the host being evacuated" % (item["vm"], host))
        if item["uuid"] in seen:
            raise EvacuationError("VM %s (%s) is planned twice" % (item["vm"], item["uuid"]))
        seen.add(item["uuid"])
        moves.append(PlannedMove(str(item["vm"]), str(item["uuid"]), str(item["target"]), str(item["target_uri"])))
    return moves


@dataclass
class MoveOutcome:
    vm: str
    uuid: str
    target: str
    # moved, failed, aborted, not_started, gone (no longer running here: nothing to move), on_both (it runs
    # here and on its target: left untouched for the operator)
    status: str
    seconds: float = 0.0
    error: str = ""


class Evacuation:
    """Live-migrates the planned guests off this host, at most ``parallel`` at a time, within ``timeout``.

    ``connect(uri)`` opens a libvirt connection (the local one when uri is None); every migration
    uses a connection of its own. ``describe_error(exc, doing)`` turns a libvirt error into words.
    """

    def __init__(self, connect: Callable[[Optional[str]], Any], moves: Sequence[PlannedMove], parallel: int,
                 timeout: float, describe_error: Callable[[Exception, str], str],
                 report: Callable[[Dict[str, Any]], None] = lambda _progress: None,
                 cancelled: Callable[[], bool] = lambda: False, clock: Callable[[], float] = time.monotonic,
                 target_check_seconds: float = TARGET_CHECK_SECONDS) -> None:
        if parallel < 1:
            raise EvacuationError("max_parallel_migrations must be at least 1, got %d" % parallel)
        self.connect = connect
        self.moves = list(moves)
        self.parallel = parallel
        self.timeout = timeout
        self.describe_error = describe_error
        self.report = report
        self.cancelled = cancelled
        self.clock = clock
        self.target_check_seconds = target_check_seconds
        self.outcomes: Dict[str, MoveOutcome] = {
            move.uuid: MoveOutcome(move.vm, move.uuid, move.target, "not_started") for move in self.moves}
        self.stop_reason = ""
        self.timed_out = False
        # Set when this host's libvirt no longer answers after the migrations (its libvirtd died).
        self.local_error = ""

    def run(self) -> Dict[str, Any]:
        began = self.clock()
        deadline = began + self.timeout
        pending = list(self.moves)
        running: Dict["Future[float]", PlannedMove] = {}
        local = self.connect(None)
        pool = ThreadPoolExecutor(max_workers=self.parallel)
        stopped_at: Optional[float] = None
        while pending or running:
            try:
                while pending and len(running) < self.parallel and not self.stop_reason:
                    move = pending.pop(0)
                    self.outcomes[move.uuid].status = "migrating"
                    running[pool.submit(self._migrate, move)] = move
                self._progress(began)
                if not running:
                    break
                done, _still = wait(list(running), timeout=TICK_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    self._record(running.pop(future), future)
                if not self.stop_reason:
                    if self.cancelled():
                        self.stop_reason = "the evacuation was cancelled"
                    elif self.clock() >= deadline:
                        self.timed_out = True
                        self.stop_reason = "the host was not empty after %g s (rm_wait_maintenance_timeout)" \
                            % self.timeout
            except Exception as exc:  # a libvirt or thread error of the evacuation itself: stop, abort, reconcile
                self._fail(exc, "evacuating the host")
                time.sleep(TICK_SECONDS)  # what is in flight winds down meanwhile; never spin
            if not self.stop_reason:
                continue
            if stopped_at is None:
                stopped_at = self.clock()
            if running and self.clock() - stopped_at <= ABORT_GRACE_SECONDS:
                # At once, whatever stopped it (a failed migration too), and again every tick: a migration that
                # started an instant before the stop had no job to abort yet. Nothing moves while the host leaves.
                self._abort(local, running.values())
            elif running:
                # A migration stuck where an abort cannot reach it (e.g. opening the target's connection):
                # stop waiting; where its guest runs is checked below like any other.
                for move in running.values():
                    self.outcomes[move.uuid].status = "aborted"
                    self.outcomes[move.uuid].error = "still in progress %d s after it was aborted" % ABORT_GRACE_SECONDS
                break
        pool.shutdown(wait=False)
        checker = self._local_for_checks(local)
        self._reconcile(checker)
        leftover = self._still_running(checker)
        if checker is None and not self.stop_reason:
            self.stop_reason = "libvirt on this host stopped answering: the host is not known to be empty"
        if leftover and not self.stop_reason:
            self.stop_reason = "still running on this host with no planned target: %s" % ", ".join(leftover)
        self._progress(began)
        return self._result(began, leftover)

    def _local_for_checks(self, local: Any) -> Optional[Any]:
        """A live connection to this host's libvirt for the final checks, or None when it does not answer.

        libvirtd may have died (or restarted) during the evacuation, taking the connection with it:
        then a fresh one is tried, and failing that the checks say they could not be made.
        """
        try:
            local.listAllDomains(1)
            return local
        except Exception:
            pass
        try:
            return self.connect(None)
        except Exception as exc:
            self.local_error = self.describe_error(exc, "connecting to libvirt on this host after the evacuation")
            return None

    def _migrate(self, move: PlannedMove) -> float:
        started = self.clock()
        if self.stop_reason:  # submitted as the evacuation stopped: it never begins
            raise _NotStarted()
        conn = self.connect(None)
        try:
            domain = conn.lookupByUUIDString(move.uuid)
            if not domain.isActive():
                raise _Gone()
            flags = MIGRATE_LIVE | MIGRATE_PEER2PEER
            if domain.isPersistent():
                flags |= MIGRATE_PERSIST_DEST | MIGRATE_UNDEFINE_SOURCE
            domain.migrateToURI3(move.target_uri, {}, flags)
        finally:
            conn.close()
        return self.clock() - started

    def _record(self, move: PlannedMove, future: "Future[float]") -> None:
        outcome = self.outcomes[move.uuid]
        error = future.exception()
        if error is None:
            outcome.status, outcome.seconds = "moved", round(future.result(), 3)
        elif isinstance(error, _Gone):
            outcome.status = "gone"
        elif isinstance(error, _NotStarted):
            outcome.status = "not_started"
        else:
            outcome.status = "aborted" if self.stop_reason else "failed"
            outcome.error = self.describe_error(error, "migrating %s to %s" % (move.vm, move.target))
            if not self.stop_reason:
                self.stop_reason = "the migration of %s to %s failed" % (move.vm, move.target)

    def _abort(self, local: Any, in_flight: Any) -> None:
        for move in in_flight:
            try:
                local.lookupByUUIDString(move.uuid).abortJob()
            except Exception:  # the migration may have just ended; its future tells how
                pass

    def _reconcile(self, local: Optional[Any]) -> None:
        """After a stop, every guest not reported moved must run exactly once: here or on its target.

        A guest paused here by our migration is resumed only once its target is known not to run it; one that
        runs on both hosts is never touched (the operator decides which one lives). With no answer from
        libvirt here, only the targets can be asked.
        """
        for move in self.moves:
            outcome = self.outcomes[move.uuid]
            if outcome.status not in ("failed", "aborted"):
                continue
            try:
                domain = local.lookupByUUIDString(move.uuid) if local is not None else None
                here = domain is not None and bool(domain.isActive())
            except Exception:
                domain, here = None, False
            on_target, unknown = self._runs_on_target(move)
            if here and on_target:
                outcome.status = "on_both"
                outcome.error += " (it runs both here and on %s: left untouched on both)" % move.target
            elif here:
                state, reason = domain.state()[:2]
                if state == VIR_DOMAIN_PAUSED and reason in PAUSED_REASONS_FROM_MIGRATION:
                    if on_target is None:
                        outcome.error += unknown + "; left paused here"
                    else:
                        domain.resume()
                        outcome.error += " (it was left paused by the migration and has been resumed here)"
            elif on_target:
                outcome.status = "moved"
                outcome.error += " (yet it runs on %s: the migration completed)" % move.target
            elif on_target is None:
                outcome.error += unknown

    def _runs_on_target(self, move: PlannedMove) -> Tuple[Optional[bool], str]:
        """Whether the guest runs on its target: True, False (its libvirt says it does not), or None with
        why that is unknown (the target's libvirt cannot be reached, or does not answer in time)."""
        answer: List[Tuple[Optional[bool], str]] = []
        asking = threading.Thread(target=lambda: answer.append(self._ask_target(move)), daemon=True)
        asking.start()
        asking.join(self.target_check_seconds)
        if answer:
            return answer[0]
        return None, " (libvirt on %s did not answer within %g s: whether it runs there is unknown)" % (
            move.target, self.target_check_seconds)

    def _ask_target(self, move: PlannedMove) -> Tuple[Optional[bool], str]:
        try:
            remote = self.connect(move.target_uri)
        except Exception as exc:
            return None, " (whether it runs on %s is unknown: %s)" % (
                move.target, self.describe_error(exc, "asking %s" % move.target))
        try:
            return bool(remote.lookupByUUIDString(move.uuid).isActive()), ""
        except Exception as exc:
            if no_such_domain(exc):
                return False, ""
            return None, " (whether it runs on %s is unknown: %s)" % (
                move.target, self.describe_error(exc, "asking %s" % move.target))
        finally:
            remote.close()

    def _still_running(self, local: Optional[Any]) -> List[str]:
        """Guests running here that did not move; with no answer from libvirt, the planned guests that did not move
        (a guest's QEMU outlives its libvirtd, so that is where they run)."""
        planned_elsewhere = {uuid for uuid, outcome in self.outcomes.items() if outcome.status == "moved"}
        if local is None:
            return sorted(move.vm for move in self.moves if move.uuid not in planned_elsewhere)
        return sorted(domain.name() for domain in local.listAllDomains(1)  # 1: VIR_CONNECT_LIST_DOMAINS_ACTIVE
                      if domain.UUIDString() not in planned_elsewhere)

    def _fail(self, exc: Exception, doing: str) -> None:
        if not self.stop_reason:
            self.stop_reason = "the evacuation failed: %s" % self.describe_error(exc, doing)

    def _progress(self, began: float) -> None:
        """Report progress; a report that cannot be written (the state disk full) stops the evacuation."""
        counts: Dict[str, int] = {}
        for outcome in self.outcomes.values():
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        try:
            self.report({"total": len(self.moves), "counts": counts, "elapsed": round(self.clock() - began, 3),
                         "migrating": sorted("%s -> %s" % (o.vm, o.target) for o in self.outcomes.values()
                                             if o.status == "migrating")})
        except Exception as exc:
            self._fail(exc, "writing the evacuation's progress")

    def _result(self, began: float, leftover: List[str]) -> Dict[str, Any]:
        outcomes = [asdict(self.outcomes[move.uuid]) for move in self.moves]
        moved = [o for o in outcomes if o["status"] == "moved"]
        problems = [o for o in outcomes if o["status"] in ("failed", "aborted", "on_both")]
        on_both = ["%s (here and on %s)" % (o["vm"], o["target"]) for o in outcomes if o["status"] == "on_both"]
        status = "timeout" if self.timed_out else "failed" if self.stop_reason else "ok"
        msg = "%d of %d guests moved in %.1f s" % (len(moved), len(self.moves), self.clock() - began)
        if self.stop_reason:
            details = "; ".join("%s: %s" % (o["vm"], o["error"]) for o in problems if o["error"])
            msg = "%s; %s%s" % (self.stop_reason, msg, (" (%s)" % details) if details else "")
        if on_both:
            msg = "guest(s) running on two hosts, left untouched: %s; %s" % (", ".join(on_both), msg)
        if self.local_error and leftover:
            msg += "; not moved, so still running here though libvirt could not confirm it: %s" % ", ".join(leftover)
        if self.local_error:
            msg += " (%s)" % self.local_error
        return {"status": status, "msg": msg, "moves": outcomes, "moved": len(moved), "still_running": leftover,
                "on_both": on_both, "duration": round(self.clock() - began, 3)}


def no_such_domain(exc: Exception) -> bool:
    """Whether a libvirt error says the domain does not exist there (VIR_ERR_NO_DOMAIN)."""
    code = getattr(exc, "get_error_code", None)
    if callable(code):
        return bool(code() == VIR_ERR_NO_DOMAIN)
    return str(exc).startswith("Domain not found")


class _Gone(Exception):
    """The guest no longer runs here: nothing to migrate."""


class _NotStarted(Exception):
    """The evacuation stopped before this migration began."""
