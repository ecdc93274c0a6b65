"""Whatever fails, in any play, the run ends through its finish: locks released, clusters enabled, no host left
in maintenance, the report written with the error first.

The role catches every failure it expects; these tests make a task fail where nothing may (a bug, a broken
controller), by running a copy of the collection with one failing task put into one of its task files. The
``scenario`` fixture then checks the lab: every guest runs exactly once, no lock, cluster mark or maintenance
mark is left on any host.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from labtools import REPO
from runtools import C1, Run

pytestmark = pytest.mark.lab

COLLECTION_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")


def collection_with_failing_tasks(base: Path, faults: List[Tuple[str, str, bool]]) -> Path:
    """A copy of the collection in which, for each (TASKS_FILE, WHEN, AT_END) of FAULTS, that task file of the role
    starts (or ends, AT_END) with a task that fails when WHEN holds; returns its collections path."""
    root = base / "collections"
    copy = root / "ansible_collections" / "kvmops" / "rolling"
    copy.mkdir(parents=True)
    for part in COLLECTION_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, copy / part)
        else:
            shutil.copy2(source, copy / part)
    for tasks_file, when, at_end in faults:
        path = copy / "roles" / "rolling_maintenance" / "tasks" / tasks_file
        body = path.read_text()
        assert body.startswith("---\n"), path
        failing = ("- name: A task that fails where nothing may\n  ansible.builtin.fail:\n    msg: injected fault\n"
                   "  when: %s\n" % when)
        path.write_text(body.rstrip("\n") + "\n\n" + failing if at_end else "---\n" + failing + body[4:])
    return root


# ([(task file, when it fails, at its end)], where): each point leaves something the finish must undo.
POINTS: Dict[str, Tuple[List[Tuple[str, str, bool]], str]] = {
    # Every lock just taken, nothing else done yet.
    "claim": ([("claim.yml", "true", True)], "localhost"),
    # PreFlight ran in parallel on every host of the scope: after it, one of them fails.
    "preflight": ([("preflight.yml", "inventory_hostname == 'hv2'", True)], "hv2"),
    # hv2 evacuated and its cluster disabled; its Maintenance stage fails before it runs (so it never leaves
    # maintenance with it), and leaving maintenance in the rescue fails too.
    "leave": ([("helpers/stage.yml", "inventory_hostname == 'hv2' and rm_stage == 'Maintenance'", False),
               ("helpers/leave.yml", "inventory_hostname == 'hv2'", False)], "hv2"),
}


@pytest.mark.parametrize("point", list(POINTS))
def test_an_unexpected_error_still_ends_through_the_finish(scenario: Run, point: str) -> None:
    faults, where = POINTS[point]
    collections = collection_with_failing_tasks(scenario.dir, faults)
    scenario.hooks(C1)
    playbook = collections / "ansible_collections" / "kvmops" / "rolling" / "playbooks" / "rolling_maintenance.yml"
    scenario.completed = scenario.lab.playbook(playbook, *scenario.run_vars(), "-e", "rm_clusters=c1",
                                               env={"ANSIBLE_COLLECTIONS_PATH": str(collections)})
    report = scenario.read_report()
    assert scenario.completed.returncode == 2, scenario.output[-3000:]
    error = 'unexpected error on %s at "A task that fails where nothing may": injected fault' % where
    assert report["attention"] == [error], report["attention"]
    assert report["details"].startswith("aborted: " + error), report["details"]
    assert scenario.output.count("ATTENTION: " + error) >= 1
    statuses = scenario.statuses()
    if where in C1:  # the host under way fails with it; the ones after it are never started
        assert statuses[where] == ("failed", "unexpected error"), statuses
    started: List[str] = C1[:C1.index(where) + 1] if where in C1 else []
    assert {host: status for host, status in statuses.items() if host not in started} == {
        host: ("skipped", "not started") for host in C1 if host not in started}, statuses
    events = [" ".join(event[:2]) for event in scenario.events()]
    if point == "leave":  # hv1 was done, hv2 evacuated: the finish took hv2 out and enabled the cluster
        assert statuses["hv1"] == ("updated", "")
        assert events[-1] == "enable c1" and "PreMaintenance hv3" not in events, events
    else:
        assert not [event for event in events if not event.startswith("PreFlight")], events
    # The scenario fixture checks that no lock, cluster mark or maintenance mark is left, and every guest.
