"""Controller memory and time per host of a rolling maintenance run over a fleet of 60 hosts.

The fleet of tests/integration/test_scale.py: the lab's 6 hosts and 54 extra hosts reached by local
connection (libvirt's test driver, their own hooks and state dirs; tests/integration/fleettools.py),
all in zone z1, one rolling maintenance run with rm_ping_interval 1. Printed: the RSS of the
ansible-playbook process (and of its process tree) per third of the hosts after the lab's 6, the
run's duration and hosts per minute, seconds per host, and with --task-seconds the tasks that take
the hosts play's time.

Usage (the lab must be up: extensions/lab/kvmlab up):
  .venv/bin/python bench/fleet_memory.py [--clusters 9] [--hosts-per-cluster 6] [--task-seconds]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/bootstrapped.py, which labtools uses
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))
sys.path.insert(0, str(BENCH.parent / ".collections"))  # made by scripts/bootstrap, as pytest.ini uses it

from fleettools import Fleet, figure_lines, host_turn_seconds, play_sampled, thirds  # noqa: E402
from labtools import Lab  # noqa: E402
from runtools import Run  # noqa: E402


def task_lines(path: Path, hosts_play: str, hosts: int) -> List[str]:
    """The hosts play's most expensive tasks, in seconds per host."""
    rows = json.loads(path.read_text())
    play_rows = [row for row in rows if hosts_play in row[0]]
    total = sum(row[2] for row in play_rows)
    lines = ["hosts play: %.1f s, %.2f s per host; its most expensive tasks (seconds per host):" % (
        total, total / hosts)]
    lines += ["  %5.2f  %s (ran %d times)" % (row[2] / hosts, row[1], row[3]) for row in play_rows[:12]]
    others = {row[0]: 0.0 for row in rows if hosts_play not in row[0]}
    for row in rows:
        if row[0] in others:
            others[row[0]] += row[2]
    lines += ["other play: %.1f s  %s" % (seconds, play) for play, seconds in others.items()]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--clusters", type=int, default=9, help="extra clusters (default 9)")
    parser.add_argument("--hosts-per-cluster", type=int, default=6, help="extra hosts per cluster (default 6)")
    parser.add_argument("--task-seconds", action="store_true", help="also time every task (bench callback)")
    args = parser.parse_args()
    lab = Lab()
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        workdir = Path(tmp)
        run = Run(lab, workdir)
        fleet = Fleet(lab, workdir, clusters=args.clusters, hosts_per_cluster=args.hosts_per_cluster)
        run.hooks(list(lab.hosts))
        fleet.prepare(run.log)
        inventory = fleet.write_inventory(workdir / "fleet.yml")
        env: Dict[str, str] = {}
        timing = workdir / "task_seconds.json"
        if args.task_seconds:
            env = {"ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"),
                   "ANSIBLE_CALLBACKS_ENABLED": "kvmops.rolling.rolling_progress,task_seconds",
                   "TASK_SECONDS_OUT": str(timing)}
        try:
            sampled = play_sampled(run, inventory, "-e", "rm_zones=z1", env=env)
        finally:
            for host in lab.hosts:
                lab.clear_hooks(host)
        hosts = fleet.hosts
        if sampled.completed.returncode != 0 or len(run.report.get("hosts_updated", [])) != len(hosts):
            raise SystemExit("the run did not update every host:\n" + run.output[-5000:])
        lines = figure_lines(sampled, thirds(sampled.samples, len(lab.hosts), len(hosts)), len(hosts))
        turns = host_turn_seconds(sampled.samples)
        lab_turns = [turns[number] for number in range(2, len(lab.hosts) + 1) if number in turns]
        extra_turns = [turns[number] for number in range(len(lab.hosts) + 1, len(hosts) + 1) if number in turns]
        lines.append("seconds per host (median): lab hosts (2 guests migrate) %.1f, extra hosts %.1f"
                     % (statistics.median(lab_turns), statistics.median(extra_turns)))
        if args.task_seconds:
            lines += task_lines(timing, "one host at a time", len(hosts))
        print("\n".join(lines))


if __name__ == "__main__":
    main()
