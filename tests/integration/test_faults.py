"""Faults during a run: nothing lost, nothing left behind, the report says what happened."""

from __future__ import annotations


import pytest

from labtools import Lab
from runtools import C1, Run

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("forced", [False, True], ids=["fail-fast", "forced"])
def test_a_host_unreachable_at_the_start(scenario: Run, lab: Lab, forced: bool) -> None:
    scenario.hooks(C1)
    before = lab.running_guests()
    lab.kvmlab("link", "hv2", "down")
    try:
        report = scenario.play("-e", "rm_clusters=c1", *(["-e", "rm_forced=true"] if forced else []))
    finally:
        lab.kvmlab("link", "hv2", "up")
    statuses = scenario.statuses()
    if forced:
        assert scenario.completed.returncode == 2, scenario.output  # the others are done; hv2 is not
        assert statuses == {"hv1": ("updated", ""), "hv2": ("failed", "capacity"), "hv3": ("updated", "")}
        reason = report["hosts_failed"][0]["reason"]
        assert reason.startswith("could not be gathered:") and "hv2" not in scenario.stages_run("hv2")
    else:
        assert scenario.completed.returncode != 0
        assert report["details"].startswith("aborted: refused to start, nothing was done: hv2: could not be gathered")
        assert scenario.events() == [] and lab.running_guests() == before
