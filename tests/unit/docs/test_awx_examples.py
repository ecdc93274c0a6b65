"""examples/awx: the job template's survey is written from meta/argument_specs.yml and kept the same by this test,
and the workflow maintains each cluster in a node of its own, side by side. To write survey.json again after a
change of the argument specs: .venv/bin/python tests/unit/docs/test_awx_examples.py"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

from test_inputs_doc import SPECS, TOP, plain

AWX = TOP / "examples" / "awx"
SURVEY = AWX / "survey.json"
# Inputs a survey does not ask for, and why (examples/awx/README.md says the same).
NOT_ASKED = {
    "rm_secret_env": "a credential, not a survey answer: a custom credential type injects it as an extra var",
    "rm_run_id": "made by the run; a resumed run takes the interrupted run's own (rm_resume)",
    "rm_report_path": "a path inside the job's container, thrown away with it: AWX keeps the report from set_stats",
    "rm_strategy": "the play's strategy, a setting of the playbook, not of a run",
}
SURVEY_TYPES = {"str": "text", "int": "integer", "list": "text"}


def question(name: str, option: Dict[str, Any]) -> Dict[str, Any]:
    description = option.get("description", "")
    text = plain(" ".join(description) if isinstance(description, list) else str(description)).replace("\\|", "|")
    entry: Dict[str, Any] = {"question_name": name, "question_description": text[:1000], "variable": name,
                             "required": False}
    default = option.get("default")
    if option.get("type") == "bool":
        entry.update(type="multiplechoice", choices=["false", "true"], default=str(bool(default)).lower())
    else:
        entry["type"] = SURVEY_TYPES[option.get("type", "str")]
        if option.get("type") == "int":
            entry.update(min=1, max=999999999, default=default)
        elif option.get("type") == "list":
            entry["default"] = ",".join(default or [])
        else:
            entry["default"] = default or ""
    return entry


def rendered() -> Dict[str, Any]:
    options: Dict[str, Dict[str, Any]] = yaml.safe_load(SPECS.read_text())["argument_specs"]["scope"]["options"]
    spec: List[Dict[str, Any]] = [question(name, option) for name, option in options.items() if name not in NOT_ASKED]
    return {"name": "Rolling maintenance", "description": "Answer exactly one of rm_hosts, rm_clusters, rm_pods, "
            "rm_zones (names, comma-separated); leave the others empty.", "spec": spec}


def test_the_survey_asks_every_input_but_those_a_survey_must_not_carry() -> None:
    assert json.loads(SURVEY.read_text()) == rendered(), \
        "examples/awx/survey.json is out of date: run %s" % Path(__file__).relative_to(TOP)
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["scope"]["options"]
    assert set(NOT_ASKED) <= set(options)


def test_the_job_template_runs_the_collections_playbook_with_the_survey() -> None:
    settings = yaml.safe_load((AWX / "controller.yml").read_text())
    [template] = settings["controller_templates"]
    assert template["playbook"] == "playbooks/rolling_maintenance.yml" and template["survey_enabled"] is True
    assert template["survey_spec"] == "{{ lookup('file', 'survey.json') | from_json }}"
    assert template["execution_environment"] == "kvmops-rolling"


def test_the_workflow_maintains_each_cluster_in_a_node_of_its_own_side_by_side() -> None:
    settings = yaml.safe_load((AWX / "controller.yml").read_text())
    [workflow] = settings["controller_workflows"]
    nodes = workflow["workflow_nodes"]
    template = settings["controller_templates"][0]["name"]
    assert all(node["unified_job_template"]["name"] == template for node in nodes)
    clusters = [node["extra_data"]["rm_clusters"] for node in nodes]
    assert len(clusters) >= 2 and len(set(clusters)) == len(clusters)
    # Side by side: no node waits for another (the cluster lock keeps two runs off one cluster).
    assert all(not node.get("related") for node in nodes)


if __name__ == "__main__":
    SURVEY.write_text(json.dumps(rendered(), indent=2) + "\n")
    sys.stdout.write("wrote %s\n" % SURVEY)
