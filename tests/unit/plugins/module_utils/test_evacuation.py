"""Evacuation rules with a fake libvirt: parallelism, stop at the first failure, abort, resume, report."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._evacuation import (
    Evacuation,
    EvacuationError,
    PlannedMove,
    parse_moves,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt_inventory import (
    VIR_DOMAIN_PAUSED,
    VIR_DOMAIN_RUNNING,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import read_mark, remove_mark, write_mark


class FakeError(Exception):
    pass


class FakeCloud:
    """Hosts with their running guests; migrations take ``seconds`` and may be made to fail or hang."""

    def __init__(self, placement: Dict[str, List[str]], seconds: float = 0.05) -> None:
        self.where = {vm: host for host, vms in placement.items() for vm in vms}
        self.paused: Dict[str, int] = {}
        self.seconds = seconds
        self.fail: Dict[str, str] = {}
        self.hang = set()
        self.aborted = set()
        self.active_migrations = 0
        self.most_parallel = 0
        self.lock = threading.Lock()
        # libvirtd of a host: down (no answer), and how often it started (a restart breaks older connections).
        self.down: set = set()
        self.daemon_starts: Dict[str, int] = {}
        # Guests whose migration kills the source's libvirtd: before it ends (failing it) or right after it.
        self.source_dies_during: set = set()
        self.source_dies_after: set = set()
        # Hosts whose libvirtd hangs: connecting to them blocks until the event is set.
        self.hung: set = set()
        self.unhang = threading.Event()
        # Guests that also run on another host (a migration that half-failed): guest -> that host.
        self.also_on: Dict[str, str] = {}

    def connect(self, uri: Optional[str]) -> "FakeConn":
        host = "src" if uri is None else uri.split("//")[1].split("/")[0]
        if host in self.hung:
            self.unhang.wait()
        if host in self.down:
            raise FakeError("Failed to connect socket to '/run/libvirt/libvirt-sock': Connection refused")
        return FakeConn(self, host)

    def kill_daemon(self, host: str) -> None:
        self.down.add(host)

    def start_daemon(self, host: str) -> None:
        self.down.discard(host)
        self.daemon_starts[host] = self.daemon_starts.get(host, 0) + 1


class FakeConn:
    def __init__(self, cloud: FakeCloud, host: str) -> None:
        self.cloud = cloud
        self.host = host
        self.daemon_start = cloud.daemon_starts.get(host, 0)

    def check_alive(self) -> None:
        if self.host in self.cloud.down or self.cloud.daemon_starts.get(self.host, 0) != self.daemon_start:
            raise FakeError("internal error: client socket is closed")

    def lookupByUUIDString(self, uuid: str) -> "FakeDomain":  # noqa: N802 - libvirt's name
        self.check_alive()
        if self.cloud.where.get(uuid) != self.host and self.cloud.also_on.get(uuid) != self.host:
            raise FakeError("Domain not found: no domain with matching uuid '%s'" % uuid)
        return FakeDomain(self.cloud, uuid)

    def listAllDomains(self, _flags: int) -> List["FakeDomain"]:  # noqa: N802
        self.check_alive()
        return [FakeDomain(self.cloud, vm) for vm, host in sorted(self.cloud.where.items()) if host == self.host]

    def close(self) -> None:
        pass


class FakeDomain:
    def __init__(self, cloud: FakeCloud, uuid: str) -> None:
        self.cloud = cloud
        self.uuid = uuid

    def name(self) -> str:
        return self.uuid

    def UUIDString(self) -> str:  # noqa: N802
        return self.uuid

    def isActive(self) -> bool:  # noqa: N802
        return True

    def isPersistent(self) -> bool:  # noqa: N802
        return True

    def state(self) -> List[int]:
        return [VIR_DOMAIN_PAUSED, self.cloud.paused[self.uuid]] if self.uuid in self.cloud.paused \
            else [VIR_DOMAIN_RUNNING, 1]

    def resume(self) -> None:
        self.cloud.paused.pop(self.uuid)

    def abortJob(self) -> None:  # noqa: N802
        self.cloud.aborted.add(self.uuid)

    def migrateToURI3(self, uri: str, _params: Dict[str, Any], flags: int) -> None:  # noqa: N802
        assert flags == 1 | 2 | 8 | 16
        cloud = self.cloud
        with cloud.lock:
            cloud.active_migrations += 1
            cloud.most_parallel = max(cloud.most_parallel, cloud.active_migrations)
        try:
            began = time.monotonic()
            while self.uuid in cloud.hang and self.uuid not in cloud.aborted:
                time.sleep(0.01)
            if self.uuid in cloud.aborted:
                cloud.paused[self.uuid] = 2  # paused by the migration, as a real abort may leave it
                raise FakeError("operation aborted: migration out job: canceled by client")
            time.sleep(max(0.0, cloud.seconds - (time.monotonic() - began)))
            if self.uuid in cloud.source_dies_during:
                cloud.kill_daemon("src")
                raise FakeError("internal error: client socket is closed")
            if self.uuid in cloud.fail:
                raise FakeError(cloud.fail[self.uuid])
            cloud.where[self.uuid] = uri.split("//")[1].split("/")[0]
            if self.uuid in cloud.source_dies_after:
                cloud.kill_daemon("src")
        finally:
            with cloud.lock:
                cloud.active_migrations -= 1


def plan(*pairs: str) -> List[PlannedMove]:
    return [PlannedMove(vm, vm, target, "qemu+tcp://%s/system" % target) for vm, target in
            (pair.split(">") for pair in pairs)]


def evacuate(cloud: FakeCloud, moves: List[PlannedMove], parallel: int = 2, timeout: float = 10,
             cancelled: Any = lambda: False, report: Any = None, target_check_seconds: float = 30) -> Dict[str, Any]:
    reports: List[Dict[str, Any]] = []
    result = Evacuation(cloud.connect, moves, parallel, timeout, lambda exc, doing: "%s: %s" % (doing, exc),
                        report=report or reports.append, cancelled=cancelled,
                        target_check_seconds=target_check_seconds).run()
    result["reports"] = reports
    return result


def test_every_guest_moves_to_its_target_at_most_n_at_a_time() -> None:
    cloud = FakeCloud({"src": ["a", "b", "c", "d", "e"]})
    result = evacuate(cloud, plan("a>h2", "b>h3", "c>h2", "d>h3", "e>h2"), parallel=2)
    assert result["status"] == "ok" and result["moved"] == 5 and result["still_running"] == []
    assert cloud.where == {"a": "h2", "b": "h3", "c": "h2", "d": "h3", "e": "h2"}
    assert cloud.most_parallel == 2
    assert result["reports"][-1]["counts"] == {"moved": 5}


def test_a_failed_migration_stops_the_rest_and_names_vm_and_target() -> None:
    cloud = FakeCloud({"src": ["a", "b", "c"]})
    cloud.fail["b"] = "unable to connect to server at 'h3:16509': Connection refused"
    result = evacuate(cloud, plan("a>h2", "b>h3", "c>h2"), parallel=1)
    statuses = {move["vm"]: move["status"] for move in result["moves"]}
    assert statuses == {"a": "moved", "b": "failed", "c": "not_started"}
    assert result["status"] == "failed"
    assert "the migration of b to h3 failed" in result["msg"] and "Connection refused" in result["msg"]
    assert cloud.where == {"a": "h2", "b": "src", "c": "src"}
    assert result["still_running"] == ["b", "c"]


def test_the_deadline_aborts_what_is_in_flight_and_resumes_a_paused_guest() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.hang.add("b")
    result = evacuate(cloud, plan("a>h2", "b>h3"), timeout=0.5)
    assert result["status"] == "timeout" and "the host was not empty after 0.5 s" in result["msg"]
    statuses = {move["vm"]: move["status"] for move in result["moves"]}
    assert statuses == {"a": "moved", "b": "aborted"}
    assert cloud.aborted == {"b"} and cloud.paused == {}  # resumed where it was
    assert "resumed" in [m for m in result["moves"] if m["vm"] == "b"][0]["error"]


def test_a_failed_migration_aborts_the_others_in_flight_at_once() -> None:
    """Nothing goes on moving while the host leaves maintenance: a's migration is aborted as soon as b's fails."""
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.hang.add("a")  # would never end by itself
    cloud.fail["b"] = "unable to connect to server at 'h3:16509': Connection refused"
    result = evacuate(cloud, plan("a>h2", "b>h3"), parallel=2)
    assert cloud.aborted == {"a"}
    moves = {move["vm"]: move for move in result["moves"]}
    assert {vm: move["status"] for vm, move in moves.items()} == {"a": "aborted", "b": "failed"}
    assert "still in progress" not in moves["a"]["error"]  # ended by the abort, not given up after the grace
    assert cloud.where == {"a": "src", "b": "src"} and cloud.paused == {}  # a resumed: h2 does not run it


def test_a_paused_guest_is_resumed_only_once_its_target_is_known_not_to_run_it() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.hang.update({"a", "b"})
    cloud.hung.add("h2")  # a's target does not answer the final check
    try:
        result = evacuate(cloud, plan("a>h2", "b>h3"), timeout=0.2, target_check_seconds=0.1)
    finally:
        cloud.unhang.set()
    assert cloud.paused == {"a": 2}, cloud.paused  # a stays paused: where it runs is unknown; b was resumed
    error = [move for move in result["moves"] if move["vm"] == "a"][0]["error"]
    assert "libvirt on h2 did not answer within 0.1 s" in error and error.endswith("; left paused here")


def test_a_target_that_cannot_be_asked_is_no_proof_the_guest_is_not_there() -> None:
    cloud = FakeCloud({"src": ["a"]})
    cloud.hang.add("a")
    cloud.kill_daemon("h2")  # connection refused: the target's libvirt cannot say where the guest runs
    result = evacuate(cloud, plan("a>h2"), timeout=0.2)
    assert cloud.paused == {"a": 2}
    assert "whether it runs on h2 is unknown: asking h2: Failed to connect socket" in result["moves"][0]["error"]


def test_a_guest_running_on_both_hosts_is_left_untouched_and_named_first() -> None:
    cloud = FakeCloud({"src": ["a"]})
    cloud.hang.add("a")
    cloud.also_on["a"] = "h2"  # the target runs it too, while the source has it paused
    result = evacuate(cloud, plan("a>h2"), timeout=0.2)
    assert result["moves"][0]["status"] == "on_both" and cloud.paused == {"a": 2}  # not resumed
    assert result["on_both"] == ["a (here and on h2)"]
    assert result["msg"].startswith("guest(s) running on two hosts, left untouched: a (here and on h2); ")


@pytest.mark.parametrize("reason", [1, 5], ids=["by-the-operator", "io-error"])
def test_a_pause_the_migration_did_not_cause_is_never_undone(reason: int) -> None:
    cloud = FakeCloud({"src": ["a"]})
    cloud.fail["a"] = "migration failed"
    cloud.paused["a"] = reason
    result = evacuate(cloud, plan("a>h2"))
    assert result["status"] == "failed" and cloud.paused == {"a": reason}
    assert "resumed" not in result["moves"][0]["error"]


def test_an_error_of_the_evacuation_itself_aborts_and_reconciles() -> None:
    """The state disk full while writing progress: what is in flight is aborted and every guest checked."""
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.hang.add("b")
    written: List[Dict[str, Any]] = []

    def report(progress: Dict[str, Any]) -> None:
        if progress["counts"].get("moved"):
            raise OSError(28, "No space left on device")
        written.append(progress)

    result = evacuate(cloud, plan("a>h2", "b>h3"), report=report)
    assert result["status"] == "failed" and "the evacuation failed" in result["msg"]
    assert "No space left on device" in result["msg"]
    assert cloud.aborted == {"b"} and cloud.where == {"a": "h2", "b": "src"} and cloud.paused == {}


def test_a_cancel_request_stops_the_evacuation() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.hang.update({"a", "b"})
    flag = {"cancel": False}
    threading.Timer(0.3, lambda: flag.update(cancel=True)).start()
    result = evacuate(cloud, plan("a>h2", "b>h3"), cancelled=lambda: flag["cancel"])
    assert result["status"] == "failed" and "cancelled" in result["msg"]
    assert cloud.where == {"a": "src", "b": "src"}


def test_a_guest_that_reached_its_target_despite_an_error_counts_as_moved() -> None:
    cloud = FakeCloud({"src": ["a"]})
    cloud.fail["a"] = "error after the switch-over"
    original = FakeDomain.migrateToURI3

    def migrate_then_fail(self: FakeDomain, uri: str, params: Dict[str, Any], flags: int) -> None:
        cloud.where[self.uuid] = "h2"
        raise FakeError("connection to the destination lost during finish")

    FakeDomain.migrateToURI3 = migrate_then_fail  # type: ignore[method-assign]
    try:
        result = evacuate(cloud, plan("a>h2"))
    finally:
        FakeDomain.migrateToURI3 = original  # type: ignore[method-assign]
    assert result["moves"][0]["status"] == "moved" and "runs on h2" in result["moves"][0]["error"]


def test_the_source_libvirtd_dying_mid_evacuation_is_reported_with_the_guests_that_did_not_move() -> None:
    cloud = FakeCloud({"src": ["a", "b", "c"]})
    cloud.source_dies_during.add("b")
    result = evacuate(cloud, plan("a>h2", "b>h3", "c>h2"), parallel=1)
    assert {move["vm"]: move["status"] for move in result["moves"]} == {"a": "moved", "b": "failed", "c": "not_started"}
    assert result["status"] == "failed" and result["moved"] == 1
    assert result["msg"].startswith("the migration of b to h3 failed; 1 of 3 guests moved")
    assert "client socket is closed" in result["msg"]  # why it failed
    # The guests' QEMUs outlive libvirtd: they still run here, which the report says it could not confirm.
    assert "not moved, so still running here though libvirt could not confirm it: b, c" in result["msg"]
    assert "connecting to libvirt on this host after the evacuation" in result["msg"]
    assert result["still_running"] == ["b", "c"]


def test_a_libvirtd_restarted_mid_evacuation_is_reconnected_to_for_the_checks() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.source_dies_during.add("a")
    original = cloud.kill_daemon
    cloud.kill_daemon = lambda host: (original(host), cloud.start_daemon(host))  # type: ignore[method-assign]
    result = evacuate(cloud, plan("a>h2", "b>h3"), parallel=1)
    assert result["status"] == "failed" and result["still_running"] == ["a", "b"]  # confirmed on a fresh connection
    assert "could not confirm" not in result["msg"] and "the migration of a to h2 failed" in result["msg"]


def test_a_hung_target_does_not_hang_the_final_check() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.source_dies_during.add("a")  # so a is not found here and its target must be asked
    cloud.hung.add("h2")
    finished: List[Dict[str, Any]] = []
    worker = threading.Thread(target=lambda: finished.append(Evacuation(
        cloud.connect, plan("a>h2", "b>h3"), 1, 10, lambda exc, doing: "%s: %s" % (doing, exc),
        target_check_seconds=0.2).run()), daemon=True)
    worker.start()
    worker.join(60)  # a liveness bound, not a speed figure: without the bound on the check it never returns
    cloud.unhang.set()
    assert finished, "the evacuation hung on a target that does not answer"
    [result] = finished
    failed = [move for move in result["moves"] if move["vm"] == "a"][0]
    assert failed["status"] == "failed"
    assert "libvirt on h2 did not answer within 0.2 s: whether it runs there is unknown" in failed["error"]


def test_a_host_whose_libvirtd_died_after_the_last_migration_is_not_taken_for_empty() -> None:
    cloud = FakeCloud({"src": ["a", "b"]})
    cloud.source_dies_after.add("b")
    result = evacuate(cloud, plan("a>h2", "b>h3"), parallel=1)
    assert result["moved"] == 2 and result["still_running"] == []
    assert result["status"] == "failed" and "libvirt on this host stopped answering" in result["msg"], result["msg"]


def test_an_unplanned_running_guest_keeps_the_host_out_of_maintenance() -> None:
    cloud = FakeCloud({"src": ["a", "stowaway"]})
    result = evacuate(cloud, plan("a>h2"))
    assert result["status"] == "failed" and "no planned target: stowaway" in result["msg"]


@pytest.mark.parametrize(("raw", "complaint"), [
    ([{"vm": "a", "uuid": "u", "target": "h2"}], "lacks target_uri"),
    ([{"vm": "a", "uuid": "u", "target": "src", "target_uri": "x"}], "targets src, the host being evacuated"),
    ([{"vm": "a", "uuid": "u", "target": "h2", "target_uri": "x"}] * 2, "planned twice"),
])
def test_bad_plans_are_refused(raw: List[Dict[str, str]], complaint: str) -> None:
    with pytest.raises(EvacuationError, match=complaint):
        parse_moves(raw, "src")


def test_marks_are_written_read_and_removed(tmp_path: Any) -> None:
    assert read_mark(str(tmp_path), "m.json") is None and remove_mark(str(tmp_path), "m.json") is False
    write_mark(str(tmp_path), "m.json", {"run_id": "r1"})
    assert read_mark(str(tmp_path), "m.json") == {"run_id": "r1"}
    assert remove_mark(str(tmp_path), "m.json") is True and read_mark(str(tmp_path), "m.json") is None
