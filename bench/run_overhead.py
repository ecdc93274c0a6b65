"""What a whole rolling maintenance run costs over the plainest playbook that runs the same four scripts.

On the lab (2 clusters x 3 hosts), with no guest running (each running guest is shut off first and started
again at the end) and four stage scripts that do nothing, rounds alternate between:
- the naive playbook: one play over the lab's hosts, `serial: 1`, the four scripts run by
  `ansible.builtin.command`, nothing else (no lock, no plan, no re-check, no maintenance mode, no report);
- the rolling maintenance playbook, `-e rm_zones=z1 -e rm_ping_interval=P`, for each P of --ping.
Reported per ping interval: the median wall seconds of both and their ratio; and, from the rolling runs, the
seconds per play and per task (summed over the hosts, median over the rounds; bench/callback_plugins).

Usage (the lab must be up: extensions/lab/kvmlab up): .venv/bin/python bench/run_overhead.py [--rounds N] [--ping 10 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent / "tests"))  # tests/bootstrapped.py, which labtools uses
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))
sys.path.insert(0, str(BENCH.parent / ".collections"))  # made by scripts/bootstrap, as pytest.ini uses it

from labtools import Lab  # noqa: E402  pylint: disable=wrong-import-position

STAGES = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")
# Where the lab hosts see their hooks dir (the role's default rm_hooks_dir).
HOOKS_ON_HOST = "/etc/kvm-rolling-maintenance/hooks"
VIRSH = ("virsh", "-c", "qemu:///system")
HOST_PLAY = "Rolling maintenance | one host at a time, cluster after cluster"


def naive_playbook(path: Path) -> Path:
    path.write_text(yaml.safe_dump([{
        "name": "Naive rolling run", "hosts": "kvm_hosts", "serial": 1, "gather_facts": False,
        "tasks": [{"name": stage, "ansible.builtin.command": "%s/%s" % (HOOKS_ON_HOST, stage)} for stage in STAGES],
    }], sort_keys=False))
    return path


def shut_off_guests(lab: Lab) -> List[Tuple[str, str]]:
    """Shut off every running guest; returns (host, guest) to start again."""
    stopped = []
    for host in lab.hosts:
        names = lab.exec(host, *VIRSH, "list", "--name").stdout.split()
        for name in names:
            lab.exec(host, *VIRSH, "destroy", name)
            stopped.append((host, name))
    return stopped


def timed(lab: Lab, playbook: Path, *args: str, env: Dict[str, str]) -> float:
    began = time.monotonic()
    completed = lab.playbook(playbook, *args, env=env, timeout=1800)
    wall = time.monotonic() - began
    if completed.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s" % (playbook.name, completed.returncode, completed.stdout[-4000:]))
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ping", type=int, nargs="+", default=[10, 2])
    parser.add_argument("--top", type=int, default=20, help="tasks to list, most expensive first")
    args = parser.parse_args()
    lab = Lab()
    for host in lab.hosts:
        lab.clear_hooks(host)
        for stage in STAGES:
            lab.write_hook(host, stage, "exit 0")
    stopped = shut_off_guests(lab)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            naive = naive_playbook(work / "naive.yml")
            rolling = BENCH.parent / "playbooks" / "rolling_maintenance.yml"
            for ping in args.ping:
                walls: Dict[str, List[float]] = {"naive": [], "rolling": []}
                tasks: Dict[Tuple[str, str], List[float]] = {}
                plays: Dict[str, List[float]] = {}
                host_play_tasks: List[int] = []  # task starts in the serial host play, one per host each
                for index in range(args.rounds):
                    walls["naive"].append(timed(lab, naive, env={}))
                    out = work / ("tasks-%d-%d.json" % (ping, index))
                    env = {"ANSIBLE_CALLBACK_PLUGINS": str(BENCH / "callback_plugins"),
                           "ANSIBLE_CALLBACKS_ENABLED": "task_seconds", "TASK_SECONDS_OUT": str(out)}
                    walls["rolling"].append(timed(lab, rolling, "-e", "rm_zones=z1", "-e", "rm_ping_interval=%d" % ping,
                                                  "-e", "rm_report_path=%s" % (work / "report.json"), env=env))
                    round_plays: Dict[str, float] = {}
                    started = 0
                    for play, task, seconds, runs in json.loads(out.read_text()):
                        tasks.setdefault((play, task), []).append(seconds)
                        round_plays[play] = round_plays.get(play, 0.0) + seconds
                        started += runs if play == HOST_PLAY else 0
                    host_play_tasks.append(started)
                    for play, seconds in round_plays.items():
                        plays.setdefault(play, []).append(seconds)
                naive_s, rolling_s = statistics.median(walls["naive"]), statistics.median(walls["rolling"])
                print("\n## rm_ping_interval %d, %d rounds" % (ping, args.rounds))
                print("| measure | value |\n|---|---|")
                print("| naive serial playbook, median (all) | %.1f s (%s) |"
                      % (naive_s, ", ".join("%.1f" % wall for wall in walls["naive"])))
                print("| rolling maintenance run, median (all) | %.1f s (%s) |"
                      % (rolling_s, ", ".join("%.1f" % wall for wall in walls["rolling"])))
                print("| ratio rolling / naive | %.2f |" % (rolling_s / naive_s))
                print("| tasks per host in the host play (included files and skipped tasks count) | %.1f |"
                      % (statistics.median(host_play_tasks) / len(lab.hosts)))
                print("\n| play | seconds (median) |\n|---|---|")
                for play, values in sorted(plays.items(), key=lambda item: -statistics.median(item[1])):
                    print("| %s | %.1f |" % (play, statistics.median(values)))
                print("\n| task (summed over the hosts) | seconds (median) |\n|---|---|")
                ranked = sorted(tasks.items(), key=lambda item: -statistics.median(item[1]))
                for (play, task), values in ranked[:args.top]:
                    print("| %s: %s | %.2f |" % (play, task.split(" : ")[-1], statistics.median(values)))
    finally:
        for host, name in stopped:
            lab.exec(host, *VIRSH, "start", name, check=False)
        for host in lab.hosts:
            lab.clear_hooks(host)


if __name__ == "__main__":
    main()
