"""A host that reboots during a stage, end to end: gracefully (the script runs `systemctl reboot`, which sends
SIGTERM to every process before it kills what is left) or by a hard reset, in each stage that runs while a host
takes its turn.

SPEC: the stage ends `rebooted` (never "cancelled", whatever order the processes die in), a success for
Maintenance (patch-and-reboot is its job) and a failure for the others. The ``scenario`` fixture checks every
guest still runs exactly once afterwards.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from labtools import Lab, sleep_marker, wait_until
from runtools import OTHER_VENVS, STAGES, Run

pytestmark = pytest.mark.lab

HOST = "hv2"
# On a lab host, what `systemctl reboot` is on a real one: it asks for a graceful reboot and returns at once.
LAB_REBOOT = "/run/kvmlab/reboot"


def reboot_hook(how: str, started: Path, marker: str) -> str:
    """A stage that patches, then reboots: by itself (graceful) or by the test's hard reset once it has started."""
    reboot = LAB_REBOOT if how == "graceful" else "touch %s" % started
    return "echo patching\n%s\nsleep %s" % (reboot, marker)


@pytest.fixture
def autostart_guests(lab: Lab) -> Iterator[List[str]]:
    """HOST's guests start again when it boots (as with libvirt-guests on a real host): a reboot before the
    evacuation kills them, and the operator's host brings them back, each still running once."""
    names = [name for name, hosts in lab.running_guests().items() if hosts == [HOST]]
    for name in names:
        lab.exec(HOST, "virsh", "-c", "qemu:///system", "autostart", name)
    yield names
    for name, hosts in lab.running_guests().items():
        if name in names:
            lab.exec(hosts[0], "virsh", "-c", "qemu:///system", "autostart", "--disable", name, check=False)


def play_with_a_reboot(scenario: Run, lab: Lab, stage: str, how: str, venv: Optional[Path] = None) -> str:
    """Run the maintenance of HOST with a reboot in STAGE; return the host's boot id from before."""
    started, marker = scenario.dir / "stage-started", sleep_marker()
    post_boot = scenario.dir / "post-boot-id"
    special = {(HOST, stage): reboot_hook(how, started, marker)}
    if stage != "PostMaintenance":
        special[HOST, "PostMaintenance"] = "cat /proc/sys/kernel/random/boot_id > %s" % post_boot
    scenario.hooks([HOST], special)
    boot_before = lab.boot_id(HOST)
    resetter = threading.Thread(target=lambda: (wait_until(started.exists, "%s's %s stage" % (HOST, stage)),
                                                lab.kvmlab("reboot", HOST)), daemon=True)
    if how == "hard":
        resetter.start()
    scenario.play("-e", "rm_hosts=%s" % HOST, "-e", "rm_stage_timeout=300",
                  venv_bin=venv / "bin" if venv else None)
    if how == "hard":
        resetter.join()
    assert lab.processes_matching(HOST, marker) == ""  # the script died with the host's old boot
    return boot_before


@pytest.mark.parametrize("how", ["graceful", "hard"])
def test_a_reboot_during_maintenance_is_its_success(scenario: Run, lab: Lab, how: str) -> None:
    boot_before = play_with_a_reboot(scenario, lab, "Maintenance", how)
    report = scenario.report
    assert scenario.completed.returncode == 0, scenario.output[-3000:]
    assert report["success"] and scenario.statuses() == {HOST: ("updated", "")}, report["details"]
    [entry] = report["hosts_updated"]
    maintenance = entry["stages"]["Maintenance"]
    assert (maintenance["status"], maintenance["succeeded"]) == ("rebooted", True), maintenance
    assert maintenance["stdout_tail"] == "patching\n"  # the output written before the reboot is kept
    boot_after = lab.boot_id(HOST)
    assert boot_after != boot_before
    assert (scenario.dir / "post-boot-id").read_text().strip() == boot_after  # PostMaintenance ran after it
    assert scenario.stages_run(HOST) == list(STAGES)
    assert ["Maintenance", HOST, "0"] in scenario.events()  # the host was empty: no guest died with it


@pytest.mark.skipif(not OTHER_VENVS, reason="no second ansible-core venv (.venv-*) was bootstrapped")
@pytest.mark.parametrize("venv", OTHER_VENVS, ids=[path.name for path in OTHER_VENVS])
@pytest.mark.parametrize(("stage", "how"), [("Maintenance", "graceful"), ("Maintenance", "hard"),
                                            ("PostMaintenance", "graceful")])
def test_a_reboot_on_another_ansible_core(scenario: Run, lab: Lab, venv: Path, stage: str, how: str) -> None:
    play_with_a_reboot(scenario, lab, stage, how, venv)
    if stage == "Maintenance":
        assert scenario.completed.returncode == 0, scenario.output[-3000:]
        assert scenario.statuses() == {HOST: ("updated", "")}, scenario.report["details"]
        assert scenario.report["hosts_updated"][0]["stages"]["Maintenance"]["status"] == "rebooted"
    else:
        assert scenario.completed.returncode == 2, scenario.output[-3000:]
        assert scenario.statuses() == {HOST: ("failed", stage)}, scenario.report["details"]
        assert scenario.report["hosts_failed"][0]["stages"][stage]["status"] == "rebooted"


@pytest.mark.parametrize("how", ["graceful", "hard"])
@pytest.mark.parametrize("stage", ["PreMaintenance", "PostMaintenance"])
def test_a_reboot_during_another_stage_fails_the_host(scenario: Run, lab: Lab, autostart_guests: List[str],
                                                      stage: str, how: str) -> None:
    boot_before = play_with_a_reboot(scenario, lab, stage, how)
    report = scenario.report
    assert scenario.completed.returncode == 2, scenario.output[-3000:]
    assert not report["success"] and scenario.statuses() == {HOST: ("failed", stage)}, report["details"]
    [entry] = report["hosts_failed"]
    result = entry["stages"][stage]
    assert (result["status"], result["succeeded"]) == ("rebooted", False), result
    assert "rebooted while the %s stage ran" % stage in entry["reason"], entry
    assert lab.boot_id(HOST) != boot_before
    ran = scenario.stages_run(HOST)
    assert ran == list(STAGES[:STAGES.index(stage) + 1]), ran  # nothing ran after the failed stage
    if stage == "PreMaintenance":  # not evacuated yet: its guests died with it and came back on it
        wait_until(lambda: all(lab.running_guests().get(name) == [HOST] for name in autostart_guests),
                   "%s's guests to start again" % HOST, limit=60)


@pytest.mark.parametrize("venv", [None, *OTHER_VENVS], ids=["default", *(path.name for path in OTHER_VENVS)])
def test_a_reboot_the_script_scheduled_as_it_exited_is_waited_for(scenario: Run, lab: Lab, venv: Optional[Path]) -> None:
    """`shutdown -r +1; exit 0` (or `systemd-run --on-active=5 systemctl reboot; exit 0`): the host goes down after
    the script has ended, and the run waits for it to come back before it leaves maintenance."""
    post_boot = scenario.dir / "post-boot-id"
    scenario.hooks([HOST], {(HOST, "Maintenance"): "echo patching\n%s 3\nexit 0" % LAB_REBOOT,
                            (HOST, "PostMaintenance"): "cat /proc/sys/kernel/random/boot_id > %s" % post_boot})
    boot_before = lab.boot_id(HOST)
    report = scenario.play("-e", "rm_hosts=%s" % HOST, "-e", "rm_stage_timeout=300",
                           venv_bin=venv / "bin" if venv else None)
    assert scenario.completed.returncode == 0, scenario.output[-3000:]
    assert report["success"] and scenario.statuses() == {HOST: ("updated", "")}, report["details"]
    maintenance = report["hosts_updated"][0]["stages"]["Maintenance"]
    assert (maintenance["status"], maintenance["rc"], maintenance["succeeded"]) == ("rebooted", 0, True), maintenance
    assert "exited 0 and left a reboot pending (reboot scheduled in /run/systemd/shutdown/scheduled" \
        in maintenance["msg"], maintenance
    boot_after = lab.boot_id(HOST)
    assert boot_after != boot_before and post_boot.read_text().strip() == boot_after
