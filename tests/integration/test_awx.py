"""Where operators meet the collection: installed from its tarball, and run by ansible-runner (the engine AWX and
Automation Controller use), whose job artifacts carry the report for a run that succeeded, one that was refused
and one that aborted."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from bootstrapped import TOOLS, needs_tool
from labtools import REPO, Lab, installed_collection
from runtools import C1, STAGES, Run

pytestmark = pytest.mark.lab

needs_tools = needs_tool("ansible-runner")


def survey_answers(**answers: Any) -> Dict[str, Any]:
    """Every question of examples/awx/survey.json answered with its default, as AWX sends them, and ANSWERS."""
    spec = json.loads((REPO / "examples" / "awx" / "survey.json").read_text())["spec"]
    return dict({question["variable"]: question["default"] for question in spec}, **answers)


@needs_tools
def test_the_installed_tarball_maintains_a_cluster_by_the_playbooks_collection_name(scenario: Run,
                                                                                    tmp_path: Path) -> None:
    installed = installed_collection(tmp_path)
    assert not (installed / "ansible_collections" / "kvmops" / "rolling" / "tests").exists()  # build_ignore
    scenario.hooks(C1)
    # Only the installed copy is on the collections path: the playbook and every plugin come from it.
    command = scenario.lab.playbook_command(Path("kvmops.rolling.rolling_maintenance"), *scenario.run_vars(),
                                            "-e", "rm_clusters=c1", env={"ANSIBLE_COLLECTIONS_PATH": str(installed)})
    scenario.completed = subprocess.run(capture_output=True, timeout=600, check=False, **command)
    report = scenario.read_report()
    assert scenario.completed.returncode == 0, scenario.completed.stdout[-4000:]
    assert [entry["host"] for entry in report["hosts_updated"]] == C1
    assert all(scenario.stages_run(host) == list(STAGES) for host in C1)


def runner_job(lab: Lab, work: Path, extravars: Dict[str, Any]) -> Dict[str, Any]:
    """Run the playbook with ansible-runner in private data dir WORK; the playbook_on_stats event's artifact data
    and the runner's rc and status."""
    (work / "env").mkdir(parents=True)
    (work / "env" / "extravars").write_text(json.dumps(extravars))
    (work / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": "%s:%s" % (TOOLS, os.environ.get("PATH", ""))}))
    completed = subprocess.run(
        [str(TOOLS / "ansible-runner"), "run", str(work), "--project-dir", str(REPO), "-p",
         "playbooks/rolling_maintenance.yml", "--inventory", str(lab.inventory), "--ident", "job"],
        capture_output=True, text=True, timeout=600, check=False, cwd=str(REPO),
        env=dict(os.environ, PATH="%s:%s" % (TOOLS, os.environ.get("PATH", ""))))
    artifacts = work / "artifacts" / "job"
    events = [json.loads(path.read_text()) for path in sorted((artifacts / "job_events").glob("*.json"))]
    stats: List[Dict[str, Any]] = [event for event in events if event.get("event") == "playbook_on_stats"]
    assert stats, completed.stdout[-4000:] + completed.stderr[-2000:]
    return {"artifact": stats[-1]["event_data"].get("artifact_data") or {}, "rc": int((artifacts / "rc").read_text()),
            "status": (artifacts / "status").read_text().strip(), "stdout": completed.stdout}


@needs_tools
@pytest.mark.parametrize("case", ["updated", "refused", "aborted"])
def test_ansible_runner_job_artifacts_carry_the_report(scenario: Run, tmp_path: Path, case: str) -> None:
    special: Dict[Any, Optional[str]] = {("hv2", "PreMaintenance"): "echo 'not today' >&2; exit 4"} \
        if case == "aborted" else {}
    scenario.hooks(C1, special)
    # The report file is not asked for (AWX keeps the artifact); here it goes to the test's dir, not the checkout.
    answers = survey_answers(rm_clusters="nope" if case == "refused" else "c1", rm_ping_interval=1,
                             rm_report_path=str(tmp_path / "report.json"))
    job = runner_job(scenario.lab, tmp_path / "runner", answers)
    report = job["artifact"].get("rolling_maintenance")
    assert report, job["stdout"][-3000:]
    if case == "updated":
        assert (job["rc"], job["status"]) == (0, "successful") and report["success"]
        assert [entry["host"] for entry in report["hosts_updated"]] == C1
    elif case == "refused":
        assert job["status"] == "failed" and job["rc"] != 0 and not report["success"]
        assert report["details"].startswith("aborted: invalid input, nothing was touched: rm_clusters: no inventory "
                                            "host has rm_cluster = 'nope'"), report["details"]
        assert scenario.events() == []
    else:
        assert job["status"] == "failed" and job["rc"] != 0 and not report["success"]
        assert report["details"].startswith("aborted: hv2: PreMaintenance"), report["details"]
        assert [entry["host"] for entry in report["hosts_failed"]] == ["hv2"]
