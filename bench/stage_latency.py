"""How soon the controller sees a stage end: a 1-second script with ping_interval 5, on a lab host.

Baseline, measured in the same run on the same host: ansible.builtin.command running `sleep 1`,
the plainest way Ansible runs a 1-second command there. Rounds alternate between the two so that
the machine's noise falls on both alike. Reported: the stage's own `elapsed` (task start to end seen
by the controller), and whole-playbook wall times of both, with their ratio.

Usage (the lab must be up: extensions/lab/kvmlab up): .venv/bin/python bench/stage_latency.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/bootstrapped.py, which labtools uses
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".collections"))  # made by scripts/bootstrap, as pytest.ini uses it

from labtools import Lab  # noqa: E402  pylint: disable=wrong-import-position


def one_round(lab: Lab, workdir: Path, host: str, task: Dict[str, Any]) -> Dict[str, float]:
    """Wall seconds of a playbook holding just ``task``, and the task's own elapsed when it reports one."""
    out = workdir / "result.json"
    playbook = workdir / "bench.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": host, "gather_facts": False, "tasks": [
        dict(task, name="timed", register="timed"),
        {"name": "save", "delegate_to": "localhost",
         "ansible.builtin.copy": {"content": "{{ timed | to_json }}", "dest": str(out)}},
    ]}]))
    began = time.monotonic()
    completed = lab.playbook(playbook)
    wall = time.monotonic() - began
    if completed.returncode != 0:
        raise SystemExit(completed.stdout + completed.stderr)
    return {"wall": wall, "elapsed": json.loads(out.read_text()).get("elapsed", float("nan"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--host", default="hv1")
    args = parser.parse_args()
    lab = Lab()
    lab.clear_hooks(args.host)
    lab.write_hook(args.host, "PreFlight", "sleep 1")
    stage_task = {"kvmops.rolling.maintenance_stage": {"stage": "PreFlight", "ping_interval": 5, "stage_timeout": 60}}
    baseline_task = {"ansible.builtin.command": "sleep 1"}
    stage: List[Dict[str, float]] = []
    baseline: List[Dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for _round in range(args.rounds):
            stage.append(one_round(lab, Path(tmp), args.host, stage_task))
            baseline.append(one_round(lab, Path(tmp), args.host, baseline_task))
    lab.clear_hooks(args.host)
    stage_wall = statistics.median(item["wall"] for item in stage)
    baseline_wall = statistics.median(item["wall"] for item in baseline)
    elapsed = [item["elapsed"] for item in stage]
    print("rounds: %d" % args.rounds)
    print("stage seen done after (elapsed, controller): median %.2f s, max %.2f s"
          % (statistics.median(elapsed), max(elapsed)))
    print("playbook wall, stage engine:    median %.2f s" % stage_wall)
    print("playbook wall, command sleep 1: median %.2f s" % baseline_wall)
    print("ratio stage engine / command:   %.2f" % (stage_wall / baseline_wall))


if __name__ == "__main__":
    main()
