"""Faults during a whole rolling maintenance run, end to end on the lab: a link that drops, a stage script that
will not die, libvirtd dying on either side of a live migration, a libvirtd that hangs (a host that reboots:
test_reboots.py).

Every fault is injected at a point the test observes (a file a hook writes, a migration a libvirt hook holds,
a reconnect seen on the wire), never after a guessed delay. After each test the ``scenario`` fixture checks
that every guest that ran before still runs exactly once, no cluster is left disabled and no host is left in
maintenance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import HINT_CONNECTION_LOST, HINT_HOOK
from ansible_collections.kvmops.rolling.plugins.plugin_utils._progress import REPORT_HEADER
from labtools import Lab, placement_metadata, process_alive, sleep_marker, wait_until
from runtools import C1, Run, wait_for_file

pytestmark = pytest.mark.lab


@contextmanager
def meanwhile(action: Callable[[], None]) -> Iterator[None]:
    """Run ACTION (a fault injector) in a thread while the body runs the playbook; its errors fail the test."""
    errors: List[BaseException] = []

    def guarded() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    thread = threading.Thread(target=guarded, daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if errors:
        raise errors[0]


def run_id() -> str:
    """A run id of our own, so the test can find the run's job files on a host."""
    return "faults-%s" % uuid.uuid4().hex[:8]


def entry_of(report: Dict[str, Any], host: str) -> Dict[str, Any]:
    """HOST's entry in the report, whichever list it is in."""
    [entry] = [item for key in ("hosts_updated", "hosts_skipped", "hosts_failed")
               for item in report[key] if item["host"] == host]
    return entry


def first_report_line(run: Run) -> str:
    """The first line of the report block that ends the play output."""
    lines = run.output.splitlines()
    header = max(index for index, line in enumerate(lines) if line.startswith(REPORT_HEADER))
    return lines[header + 1]


# --- 2. A link down during PreMaintenance -------------------------------------------------------------------------

def controller_reconnecting(lab: Lab, host: str) -> bool:
    """The controller is opening a new SSH connection to HOST: it gave up the one the outage broke."""
    address = lab.hosts[host]["ansible_host"]
    found = subprocess.run(["ss", "-Htn", "state", "syn-sent", "dst", "%s:22" % address],
                           capture_output=True, text=True, check=True).stdout
    return bool(found.strip())


@pytest.mark.parametrize("outcome", ["succeeds", "fails"])
def test_a_link_down_during_premaintenance_lets_the_stage_decide(scenario: Run, lab: Lab, outcome: str) -> None:
    # The link goes down while PreMaintenance runs and stays down until the controller has given up its
    # connection (far longer than rm_ping_interval, 1 s here) and the detached script has ended and recorded
    # its result on the host. The controller reconnects and that real result counts: no "unreachable",
    # no false success, no false failure.
    started, go, done = (scenario.dir / name for name in ("premaintenance-started", "go", "done"))
    ending = "echo 'firmware update failed' >&2; touch %s; exit 4" % done if outcome == "fails" \
        else "touch %s; exit 0" % done
    scenario.hooks(["hv2"], {("hv2", "PreMaintenance"): "touch %s; %s; echo 'worked through the outage'; %s"
                             % (started, wait_for_file(go), ending)})
    before = lab.running_guests()
    run = run_id()
    results = lab.host_dir("hv2") / "state" / "jobs"

    def cut_the_link_while_the_stage_runs() -> None:
        wait_until(started.exists, "hv2's PreMaintenance stage to start")
        lab.kvmlab("link", "hv2", "down")
        try:
            wait_until(lambda: controller_reconnecting(lab, "hv2"), "the controller to try a new connection to hv2")
            go.touch()
            wait_until(lambda: list(results.glob("%s.PreMaintenance-stage.*/result.json" % run)),
                       "hv2 to record the stage's result while cut off")
            assert done.exists()
        finally:
            lab.kvmlab("link", "hv2", "up")

    with meanwhile(cut_the_link_while_the_stage_runs):
        report = scenario.play("-e", "rm_hosts=hv2", "-e", "rm_run_id=%s" % run)
    entry = entry_of(report, "hv2")
    premaintenance = entry["stages"]["PreMaintenance"]
    assert premaintenance["stdout_tail"] == "worked through the outage\n", premaintenance
    if outcome == "succeeds":
        assert scenario.completed.returncode == 0 and report["success"], scenario.output
        assert scenario.statuses() == {"hv2": ("updated", "")}
        assert (premaintenance["status"], premaintenance["rc"]) == ("ok", 0)
        assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance"]
        assert entry["evacuation"]["status"] == "ok"
    else:
        assert scenario.completed.returncode != 0 and not report["success"], scenario.output
        assert scenario.statuses() == {"hv2": ("failed", "PreMaintenance")}
        assert (premaintenance["status"], premaintenance["rc"]) == ("failed", 4), premaintenance
        assert premaintenance["stderr_tail"] == "firmware update failed\n"
        assert entry["reason"] == "failed with exit code 4", entry["reason"]
        assert report["details"].startswith("aborted: hv2: PreMaintenance: failed with exit code 4")
        assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance"]
        assert lab.running_guests() == before  # it never entered maintenance: nothing moved


def test_a_host_that_could_not_leave_maintenance_and_did_at_the_finish_has_no_attention_line(
        scenario: Run, lab: Lab) -> None:
    # hv2's link goes down during its Maintenance stage and stays down: the controller gives the stage up,
    # and leaving maintenance fails too. The link is back before the finish, whose retry takes hv2 out of
    # maintenance: the report's first line must not say it is still in maintenance.
    lab.ensure_guest("hv2")
    started, go, finish = (scenario.dir / name for name in ("maintenance-started", "go", "finish"))
    scenario.hooks(["hv2"], {("hv2", "Maintenance"): "touch %s; %s; exit 0" % (started, wait_for_file(go))})
    mark = lab.state_dir("hv2") / "maintenance.json"
    seen: Dict[str, bool] = {}

    def cut_the_link_until_the_cluster_is_enabled() -> None:
        wait_until(started.exists, "hv2's Maintenance stage to start")
        lab.kvmlab("link", "hv2", "down")
        try:
            # A poll of the stage in flight as the link went down ends within a ping interval (1 s); the script
            # ends after it, so no call of the run sees its end on hv2 (the Maintenance stage's last call would
            # take hv2 out of maintenance with it) and hv2 stays in maintenance for the finish to retry.
            time.sleep(3)
            go.touch()
            # the run's own enable of c1, after hv2's turn and before the finish: it waits for the test
            wait_until(lambda: ["enable", "c1"] in scenario.events(), "the run to enable c1 after hv2's turn",
                       limit=300)
            seen["in maintenance"] = mark.exists()
        finally:
            lab.kvmlab("link", "hv2", "up")
            finish.touch()

    enable = "sh -c 'echo enable $RM_CLUSTER >> %s; %s'" % (scenario.log, wait_for_file(finish))
    with meanwhile(cut_the_link_until_the_cluster_is_enabled):
        report = scenario.play("-e", "rm_hosts=hv2", "-e", "rm_stage_timeout=5",
                               "-e", json.dumps({"rm_cluster_enable_command": enable}))
    assert seen == {"in maintenance": True}, "hv2 left maintenance during its turn: the finish had nothing to retry"
    assert scenario.completed.returncode == 2, scenario.output[-3000:]
    assert scenario.statuses() == {"hv2": ("failed", "Maintenance")}, report["hosts_failed"]
    assert report["attention"] == [], report["attention"]
    assert not first_report_line(scenario).startswith("ATTENTION"), first_report_line(scenario)
    assert not mark.exists()


# --- 3. A stage script that ignores SIGTERM and hangs ----------------------------------------------------------------

def test_a_script_that_ignores_sigterm_is_killed_at_the_timeout_with_everything_it_started(
        scenario: Run, lab: Lab) -> None:
    marker = sleep_marker()
    started = scenario.dir / "processes-started"
    hanging = "\n".join([
        "trap '' TERM",
        "sh -c \"trap '' TERM; sleep %s\" &" % marker,  # a child that ignores TERM too
        "setsid sleep %s &" % marker,  # a child in a session of its own
        "setsid sh -c 'sleep %s &'" % marker,  # a daemon: its parent exits, it is re-parented
        # Record what runs once all three sleep, so the test knows the kill had something to kill.
        "while [ \"$(pgrep -fc '^sleep %s')\" -lt 3 ]; do sleep 0.05; done" % marker,
        "pgrep -af '^sleep %s' > %s" % (marker, started),
        "echo 'hanging on purpose'",
        "sleep %s" % marker,
    ])
    scenario.hooks(["hv2"], {("hv2", "Maintenance"): hanging})
    report = scenario.play("-e", "rm_hosts=hv2", "-e", "rm_stage_timeout=5")
    assert scenario.completed.returncode != 0 and not report["success"], scenario.output
    assert scenario.statuses() == {"hv2": ("failed", "Maintenance")}, report["details"]
    entry = entry_of(report, "hv2")
    maintenance = entry["stages"]["Maintenance"]
    assert (maintenance["status"], maintenance["signal"], maintenance["rc"]) == ("timeout", "SIGKILL", None), maintenance
    assert maintenance["stdout_tail"] == "hanging on purpose\n"
    assert entry["reason"].startswith("timed out after 5 s"), entry["reason"]
    assert report["details"].startswith("aborted: hv2: Maintenance: timed out after 5 s")
    assert "FAILED - aborted: hv2: Maintenance: timed out after 5 s" in first_report_line(scenario)
    assert len(started.read_text().splitlines()) == 3  # the three children were running
    assert lab.processes_matching("hv2", marker) == ""  # the script, its children, its daemon: all gone
    assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance", "Maintenance"]
    assert entry["evacuation"]["status"] == "ok"  # it was in maintenance; the fixture checks it left


# --- 4. libvirtd dies on the source or the target of a live migration ---------------------------------------------

class MigrationGate:
    """Holds the next incoming live migration on the given hosts at its start, until the test releases it.

    A libvirt ``qemu`` hook (``/etc/libvirt/hooks/qemu``, which libvirtd runs synchronously with
    ``GUEST migrate begin -`` on the target before it prepares the incoming guest) waits for the test.
    Only one migration is held (the first hook to take the armed file); the target's libvirtd answers
    everything else meanwhile, so the run's capacity re-check is not disturbed. libvirtd reads its hooks
    when it starts, so installing and removing the gate restarts the hosts' libvirtd (guests keep running).
    """

    def __init__(self, lab: Lab, directory: Path, hosts: List[str]) -> None:
        self.lab = lab
        self.dir = directory
        self.hosts = hosts
        self.dir.mkdir()
        self.script = "\n".join([
            "#!/bin/sh",
            "# Test gate: hold one incoming migration until the test releases it.",
            '[ "$2" = migrate ] || exit 0',
            "mv %s/armed %s/holding 2>/dev/null || exit 0" % (self.dir, self.dir),
            "cat >/dev/null  # the guest's XML; anything printed would replace it",
            'echo "$1 $(cat /etc/hostname)" > %s/held.tmp && mv %s/held.tmp %s/held' % ((self.dir,) * 3),
            wait_for_file(self.dir / "release"),
            'exit "$(cat %s/release 2>/dev/null || echo 1)"' % self.dir,
            "",
        ])

    def _hook(self, host: str) -> Path:
        return self.lab.host_dir(host) / "etc-libvirt" / "hooks" / "qemu"

    def install(self) -> None:
        for host in self.hosts:
            self._hook(host).parent.mkdir(exist_ok=True)
            self._hook(host).write_text(self.script)
            self._hook(host).chmod(0o755)
            self.lab.restart_libvirtd(host)
        (self.dir / "armed").touch()

    def wait_held(self) -> Tuple[str, str]:
        """The guest whose migration is held and its target host, once it is held."""
        held = self.dir / "held"
        wait_until(held.exists, "a live migration to reach the gate on %s" % ", ".join(self.hosts))
        guest, target = held.read_text().split()
        return guest, target

    def release(self, exit_code: int) -> None:
        """Let the held migration go on (0) or make the target refuse it (non-zero)."""
        release = self.dir / "release"
        if not release.exists():
            release.write_text("%d\n" % exit_code)

    def remove(self) -> None:
        self.release(1)
        for host in self.hosts:
            self._hook(host).unlink(missing_ok=True)
            self.lab.restart_libvirtd(host)


@contextmanager
def migration_gate(lab: Lab, directory: Path, hosts: List[str]) -> Iterator[MigrationGate]:
    gate = MigrationGate(lab, directory, hosts)
    try:
        gate.install()
        yield gate
    finally:
        gate.remove()


def guests_on(running: Dict[str, List[str]], host: str) -> List[str]:
    return sorted(name for name, hosts in running.items() if hosts == [host])


def play_with_a_death_mid_migration(scenario: Run, lab: Lab, seen: Dict[str, str], kill: Callable[[], None],
                                    *args: str) -> Dict[str, Any]:
    """Run c1 one migration at a time; once hv1's first migration is held at its target, note the guest and the
    target in SEEN, call KILL, then let the migration go (its source no longer drives it, or its target's hook
    outlived the killed libvirtd). Return the report. The gate's removal restarts the targets' libvirtd."""
    with migration_gate(lab, scenario.dir / "gate", ["hv2", "hv3"]) as gate:
        def kill_mid_migration() -> None:
            seen["guest"], seen["target"] = gate.wait_held()
            kill()
            gate.release(1)

        with meanwhile(kill_mid_migration):
            return scenario.play("-e", "rm_clusters=c1", "-e", "rm_max_parallel_migrations=1", *args)


@pytest.mark.parametrize("forced", [False, True], ids=["fail-fast", "forced"])
def test_the_source_libvirtd_dying_during_the_evacuation(scenario: Run, lab: Lab, forced: bool) -> None:
    # hv1 is evacuated one guest at a time; its first migration is held at the target, then hv1's libvirtd
    # is killed. The evacuation fails, hv1 leaves maintenance; fail-fast aborts, forced fails hv1 and goes on.
    lab.ensure_guest("hv1")
    scenario.hooks(C1)
    before = lab.running_guests()
    evacuated = guests_on(before, "hv1")
    seen: Dict[str, str] = {}
    try:
        report = play_with_a_death_mid_migration(scenario, lab, seen, lambda: lab.kill_libvirtd("hv1"),
                                                 *(["-e", "rm_forced=true"] if forced else []))
    finally:
        lab.start_libvirtd("hv1")
    guest, target = seen["guest"], seen["target"]
    assert guest in evacuated
    entry = entry_of(report, "hv1")
    assert entry["stage"] == "maintenance mode" and "the migration of %s to %s failed" % (guest, target) \
        in entry["reason"], entry["reason"]
    assert "the host left maintenance again" in entry["reason"]
    assert HINT_CONNECTION_LOST in entry["reason"]  # not taken for a migration the target refused
    # hv1's guests kept running without their libvirtd; the report says it could not confirm that.
    assert "not moved, so still running here though libvirt could not confirm it: %s" % ", ".join(
        sorted(evacuated)) in entry["reason"]
    assert ["Maintenance", "hv1"] not in [event[:2] for event in scenario.events()]
    if forced:  # hv1 is failed with its reason; the run goes on without hv1 as a target, and exits 2
        assert scenario.completed.returncode == 2 and not report["success"], scenario.output
        assert not report["details"].startswith("aborted"), report["details"]
        assert scenario.statuses() == {"hv1": ("failed", "maintenance mode"), "hv2": ("updated", ""),
                                       "hv3": ("updated", "")}, report["details"]
        moved_to = {move["target"] for host in ("hv2", "hv3")
                    for move in entry_of(report, host)["evacuation"]["moves"]}
        assert "hv1" not in moved_to
    else:
        assert scenario.completed.returncode != 0 and not report["success"], scenario.output
        assert scenario.statuses() == {"hv1": ("failed", "maintenance mode"), "hv2": ("skipped", "not started"),
                                       "hv3": ("skipped", "not started")}, report["details"]
        assert report["details"].startswith("aborted: hv1: maintenance mode: the migration of %s to %s failed"
                                            % (guest, target)), report["details"]
        assert "FAILED - aborted: hv1: maintenance mode: the migration of %s" % guest in first_report_line(scenario)
        assert guests_on(lab.running_guests(), "hv1") == evacuated  # nothing moved, nothing lost
    assert ["enable", "c1"] in scenario.events()


@pytest.mark.parametrize("death", ["libvirtd", "host"])
def test_the_target_dying_during_a_migration(scenario: Run, lab: Lab, death: str) -> None:
    # hv1's first migration is held at its target, which then dies: its libvirtd is killed (its guests live
    # on), or the whole host resets (`kvmlab reboot`: its guests die with it). The migration fails, hv1 leaves
    # maintenance, the run aborts naming the guest and the target.
    # "Runs exactly once" after a host died: every guest that was not on the dead host runs exactly once (the
    # guests being evacuated from hv1 included: none is lost or doubled), and the dead host's own guests run
    # nowhere (they died with it, which is no fault of the run). They are started again afterwards, as an
    # operator would after the crash, so the fixture's check covers the whole lab again.
    for host in C1:
        lab.ensure_guest(host)
    scenario.hooks(C1)
    before = lab.running_guests()
    evacuated = guests_on(before, "hv1")
    seen: Dict[str, str] = {}

    def kill_the_target() -> None:
        seen["boot_id"] = lab.boot_id(seen["target"])
        if death == "libvirtd":
            lab.kill_libvirtd(seen["target"])
        else:
            lab.kvmlab("reboot", seen["target"])

    # Removing the gate restarts the libvirtd of hv2 and hv3: the killed one comes back with it.
    report = play_with_a_death_mid_migration(scenario, lab, seen, kill_the_target)
    guest, target = seen["guest"], seen["target"]
    assert guest in evacuated
    assert (lab.boot_id(target) != seen["boot_id"]) is (death == "host")
    assert scenario.completed.returncode != 0 and not report["success"], scenario.output
    assert scenario.statuses() == {"hv1": ("failed", "maintenance mode"), "hv2": ("skipped", "not started"),
                                   "hv3": ("skipped", "not started")}, report["details"]
    assert report["details"].startswith("aborted: hv1: maintenance mode: the migration of %s to %s failed"
                                        % (guest, target)), report["details"]
    assert "the host left maintenance again" in report["details"]
    # A reset target kills the gate's hook too; its libvirtd may report the killed hook before it goes.
    hints = [HINT_CONNECTION_LOST] + ([HINT_HOOK] if death == "host" else [])
    assert any(hint in report["details"] for hint in hints), report["details"]
    assert "FAILED - aborted: hv1: maintenance mode: the migration of %s to %s" % (guest, target) \
        in first_report_line(scenario)
    assert ["enable", "c1"] in scenario.events()
    running = lab.running_guests()
    died_with_the_host = guests_on(before, target) if death == "host" else []
    assert died_with_the_host or death == "libvirtd"  # ensure_guest gave the target a guest to lose
    for name in before:
        assert len(running.get(name, [])) == (0 if name in died_with_the_host else 1), (name, running.get(name))
    assert guests_on(running, "hv1") == evacuated  # the migration failed before any guest moved
    for name in died_with_the_host:
        lab.exec(target, "virsh", "-c", "qemu:///system", "start", name)


# --- 5. Evacuations that half fail: every guest still runs exactly once -------------------------------------------

def evacuation_progress(lab: Lab, host: str, run: str) -> Dict[str, Any]:
    """The progress the evacuation of HOST by run RUN last wrote (empty before it starts)."""
    for path in (lab.state_dir(host) / "jobs").glob("%s.evacuation.*/progress.json" % run):
        try:
            return dict(json.loads(path.read_text()))
        except ValueError:  # replaced while read: the next look sees it whole
            return {}
    return {}


def test_a_target_refusing_connections_aborts_the_migration_in_flight(scenario: Run, lab: Lab) -> None:
    """Two migrations at a time, one to each target: hv3 refuses the connection, so the one to hv2 (held at hv2's
    gate) is aborted at once, even though hv2 would take it, and the host leaves maintenance with its guests."""
    for name in ("t-pair1", "t-pair2"):  # one to hv2 and one to hv3: no two of the group on one host
        lab.add_guest("hv1", name, metadata=placement_metadata(groups=["pair"]))
    scenario.hooks(["hv1"])
    refusing = scenario.dir / "refusing.yml"  # nothing listens on port 1: the connection is refused
    refusing.write_text("all:\n  hosts:\n    hv3:\n      rm_migration_uri: qemu+tcp://hv3:1/system\n")
    before = guests_on(lab.running_guests(), "hv1")
    run = run_id()
    with migration_gate(lab, scenario.dir / "gate", ["hv2"]) as gate:
        def release_once_a_migration_failed() -> None:
            wait_until(lambda: evacuation_progress(lab, "hv1", run).get("counts", {}).get("failed"),
                       "a migration of hv1 to fail")
            gate.release(0)  # let hv2 go on: a migration nobody aborted would now complete

        with meanwhile(release_once_a_migration_failed):
            report = scenario.play("-e", "rm_hosts=hv1", "-e", "rm_max_parallel_migrations=2", "-i", str(refusing),
                                   "-e", "rm_run_id=%s" % run)
        held = (gate.dir / "held").read_text().split()[0] if (gate.dir / "held").exists() else None
    assert scenario.completed.returncode == 2 and not report["success"], scenario.output[-3000:]
    entry = entry_of(report, "hv1")
    assert entry["stage"] == "maintenance mode" and "to hv3 failed" in entry["reason"], entry["reason"]
    assert "Connection refused" in entry["reason"] and "the host left maintenance again" in entry["reason"]
    moves = {move["vm"]: move for move in entry["evacuation"]["moves"]}
    assert moves["t-pair1"]["target"] != moves["t-pair2"]["target"]
    moved = [name for name, move in moves.items() if move["status"] == "moved"]
    if held:  # the migration the gate held was aborted, not completed once released
        assert moves[held]["status"] == "aborted" and held not in moved, moves[held]
    assert guests_on(lab.running_guests(), "hv1") == sorted(name for name in before if name not in moved)
    assert ["Maintenance", "hv1"] not in [event[:2] for event in scenario.events()]


def test_a_guest_the_operator_paused_moves_paused_and_is_never_resumed(scenario: Run, lab: Lab) -> None:
    lab.add_guest("hv2", "t-paused")
    lab.exec("hv2", "virsh", "-c", "qemu:///system", "suspend", "t-paused")
    scenario.hooks(["hv2"])
    try:
        report = scenario.play("-e", "rm_hosts=hv2")
        check_moved_paused(scenario, lab, report)
    finally:  # a paused guest is not "running": the fixture would not take it away, and later runs would move it
        lab.remove_guest("t-paused")


def check_moved_paused(scenario: Run, lab: Lab, report: Dict[str, Any]) -> None:
    assert scenario.completed.returncode == 0 and report["success"], scenario.output[-3000:]
    [move] = [move for move in report["hosts_updated"][0]["evacuation"]["moves"] if move["vm"] == "t-paused"]
    assert move["status"] == "moved", move
    state = lab.exec(move["target"], "virsh", "-c", "qemu:///system", "domstate", "--reason", "t-paused").stdout
    assert state.strip() == "paused (user)", state  # as the operator left it
    assert lab.exec("hv2", "virsh", "-c", "qemu:///system", "domstate", "t-paused", check=False).returncode != 0


def fill_up(path: Path) -> None:
    """Write PATH until its file system is full (a lab host's state dir is a small file system of its own)."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC


def test_a_full_state_disk_stops_the_evacuation_and_loses_no_guest(scenario: Run, lab: Lab) -> None:
    """hv1's state dir fills up while its first migration is held: the evacuation cannot write its progress, so it
    stops, aborts nothing left in flight, checks every guest and takes the host out of maintenance."""
    lab.ensure_guest("hv1")
    lab.add_guest("hv1", "t-full")  # at least two guests: one moves, the rest stay
    scenario.hooks(["hv1"])
    filler = lab.state_dir("hv1") / "filler"
    before = guests_on(lab.running_guests(), "hv1")
    ended: Dict[str, bool] = {}
    run = run_id()
    with migration_gate(lab, scenario.dir / "gate", ["hv2", "hv3"]) as gate:
        def fill_while_a_migration_is_held() -> None:
            gate.wait_held()
            fill_up(filler)
            gate.release(0)
            # Room again once the evacuation is over, so the rest of the run (journal, lock) can write.
            wait_until(lambda: evacuation_ended(lab, "hv1", run), "hv1's evacuation to end")
            ended["yes"] = True
            filler.unlink()

        try:
            with meanwhile(fill_while_a_migration_is_held):
                report = scenario.play("-e", "rm_hosts=hv1", "-e", "rm_max_parallel_migrations=1",
                                       "-e", "rm_run_id=%s" % run)
        finally:
            filler.unlink(missing_ok=True)
    assert ended and scenario.completed.returncode == 2 and not report["success"], scenario.output[-3000:]
    entry = entry_of(report, "hv1")
    assert entry["stage"] == "maintenance mode", entry
    after = lab.running_guests()
    moved = [name for name in before if after.get(name) != ["hv1"]]
    assert len(moved) <= 1, moved  # only the migration under way when the disk filled up could finish
    assert all(len(after.get(name, [])) == 1 for name in before), after
    assert ["Maintenance", "hv1"] not in [event[:2] for event in scenario.events()]


def evacuation_ended(lab: Lab, host: str, run: str) -> bool:
    """Whether HOST's evacuation by run RUN has ended: its runner is gone (with or without a result)."""
    for path in (lab.state_dir(host) / "jobs").glob("%s.evacuation.*/job.json" % run):
        job = json.loads(path.read_text())
        return not process_alive(int(job.get("runner_pid", 0)))
    return False


def test_no_guest_is_migrated_onto_a_host_where_a_job_still_runs(scenario: Run, lab: Lab) -> None:
    """While hv2 waits in PreMaintenance, a stage of another run starts on hv3 (another controller's, say): the
    re-check sees hv3 busy, and every guest of hv2 goes to hv1."""
    lab.ensure_guest("hv2")
    paused_at, proceed, other_started = (scenario.dir / name for name in ("pre-started", "proceed", "other-started"))
    scenario.hooks(C1, {("hv2", "PreMaintenance"): "touch %s\n%s" % (paused_at, wait_for_file(proceed))})
    other_hooks = lab.hooks_dir("hv3") / "other-run"
    other_hooks.mkdir()
    release = scenario.dir / "release-other"
    lab.write_hook("hv3", "other-run/PreFlight", "touch %s\n%s" % (other_started, wait_for_file(release)))
    other: Dict[str, Any] = {}

    def start_another_run_on_hv3() -> None:
        wait_until(paused_at.exists, "hv2's PreMaintenance")
        worker = threading.Thread(target=lambda: other.update(lab.run_stage(
            scenario.dir, "hv3", stage="PreFlight", hooks_dir="/etc/kvm-rolling-maintenance/hooks/other-run",
            run_id="another-run", ping_interval=1, stage_timeout=300)))
        worker.start()
        wait_until(other_started.exists, "the other run's stage on hv3")
        proceed.touch()
        other["thread"] = worker

    try:
        with meanwhile(start_another_run_on_hv3):
            report = scenario.play("-e", "rm_hosts=hv2")
    finally:
        release.touch()
        if "thread" in other:
            other["thread"].join()
    assert scenario.completed.returncode == 0 and report["success"], scenario.output[-3000:]
    moves = report["hosts_updated"][0]["evacuation"]["moves"]
    assert moves and {move["target"] for move in moves} == {"hv1"}, moves
    assert other["status"] == "ok", other  # the other run's stage was left alone


# --- 5. A libvirtd that hangs: alive, its socket open, never answering ---------------------------------------------

def test_a_libvirtd_that_hangs_as_premaintenance_ends_fails_the_host_and_moves_no_guest(scenario: Run, lab: Lab) -> None:
    # hv2's libvirtd is stopped (SIGSTOP) while its PreMaintenance script runs. The stage's last call reads the
    # host for the capacity re-check: that read gives up after rm_libvirt_timeout, and the host fails at the
    # re-check (fail-fast) without entering maintenance. Nothing moved, and the cluster is enabled again.
    lab.ensure_guest("hv2")
    before = lab.running_guests()
    started, go = scenario.dir / "premaintenance-started", scenario.dir / "premaintenance-go"
    scenario.hooks(["hv2"], {("hv2", "PreMaintenance"): "touch %s; %s; exit 0" % (started, wait_for_file(go))})
    stopped: Dict[str, int] = {}

    def hang_libvirtd_before_premaintenance_ends() -> None:
        wait_until(started.exists, "hv2's PreMaintenance stage to start")
        stopped["pid"] = lab.kill_libvirtd("hv2", signal.SIGSTOP)
        go.touch()

    try:
        with meanwhile(hang_libvirtd_before_premaintenance_ends):
            report = scenario.play("-e", "rm_hosts=hv2", "-e", "rm_libvirt_timeout=5")
    finally:
        if stopped:
            os.kill(stopped["pid"], signal.SIGCONT)
    assert scenario.completed.returncode == 2, scenario.output[-3000:]
    assert scenario.statuses() == {"hv2": ("failed", "capacity")}, report["hosts_failed"]
    assert "did not answer within 5 s" in entry_of(report, "hv2")["reason"], entry_of(report, "hv2")
    assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance"]
    assert report["attention"] == [] and not (lab.state_dir("hv2") / "maintenance.json").exists()
    assert [" ".join(event) for event in scenario.events() if event[0] in ("disable", "enable")] == \
        ["disable c1", "enable c1"]
    assert lab.running_guests() == before
