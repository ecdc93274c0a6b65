"""What a run prints (cluster c2 of the lab). The rolling_progress callback beside the default stdout callback: one
line per step, in order, and the report block at the very end of the output, on every ansible-core venv
bootstrapped here. The quiet stdout callback of the repository's ansible.cfg: those lines, failures in full, the
report, and little else; a refused input in one line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, List

import pytest

from labtools import REPO, VENV_BIN, Lab

pytestmark = pytest.mark.lab
PLAYBOOK = REPO / "playbooks" / "rolling_maintenance.yml"
C2 = ["hv4", "hv5", "hv6"]
STAGES = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")
# The venv running pytest, then every other ansible-core venv bootstrapped here (.venv-2.21, ...).
VENVS = list(dict.fromkeys([VENV_BIN] + sorted(path / "bin" for path in REPO.glob(".venv-*")
                                               if (path / "bin" / "ansible-playbook").exists())))
CALLBACK = {"ANSIBLE_CALLBACKS_ENABLED": "kvmops.rolling.rolling_progress", "ANSIBLE_STDOUT_CALLBACK": "default"}
SECONDS = r"in [0-9]+\.[0-9] s"
MOVED = r"evacuation ok %s: ([0-9]+ of [0-9]+ guests? moved|no guest to move)" % SECONDS


@pytest.fixture
def c2_hooks(lab: Lab) -> Iterator[None]:
    """Every stage of c2 succeeds, except hv6's PreMaintenance, which says the host needs no maintenance."""
    for host in C2:
        lab.clear_hooks(host)
        for stage in STAGES:
            lab.write_hook(host, stage, "exit 70" if (host, stage) == ("hv6", "PreMaintenance") else "exit 0")
    yield
    for host in C2:
        lab.clear_hooks(host)


def host_lines(progress: List[str], host: str, position: str) -> List[str]:
    """The host's own progress lines, without their prefix."""
    head = "[rolling c2 %s] %s: " % (position, host)
    return [line[len(head):] for line in progress if line.startswith(head)]


def assert_sequence(lines: List[str], patterns: List[str]) -> None:
    assert len(lines) == len(patterns), "\n".join(lines)
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), "%r does not match %r in:\n%s" % (line, pattern, "\n".join(lines))


def stage_patterns(stage: str, end: str = "ok " + SECONDS) -> List[str]:
    return [re.escape("%s stage started" % stage), re.escape("%s stage " % stage) + end]


@pytest.mark.parametrize("venv_bin", VENVS, ids=[path.parent.name for path in VENVS])
def test_progress_lines_in_order_and_the_report_last(
        lab: Lab, c2_hooks: None, tmp_path: Path, venv_bin: Path) -> None:
    report_path = tmp_path / "report.json"
    completed = lab.playbook(PLAYBOOK, "-e", "rm_clusters=c2", "-e", "rm_ping_interval=1",
                             "-e", "rm_report_path=%s" % report_path, env=CALLBACK, venv_bin=venv_bin)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "Failure using method" not in output and "rolling_progress" not in completed.stderr, output
    lines = completed.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[rolling")]

    assert re.fullmatch(r"\[rolling\] run \S+: 3 host\(s\) in 1 cluster\(s\): hv4, hv5, hv6", progress[0]), progress

    # PreFlight on every host in parallel: each one's start before its end, all before anything else.
    for index, host in enumerate(C2, 1):
        mine = host_lines(progress, host, "%d/3" % index)
        assert mine[0] == "PreFlight stage started", mine
        assert re.fullmatch("PreFlight stage ok " + SECONDS, mine[1]), mine
    preflight = [line for line in progress if ": PreFlight stage " in line]
    assert len(preflight) == 6 and progress[1:7] == preflight, progress

    # Then the cluster is disabled, its hosts maintained one after another in inventory order, and it is
    # enabled again after the last one.
    assert progress[7] == "[rolling c2] cluster disabled (marked on 3 of 3 hosts)", progress
    assert progress[-1] == "[rolling c2] cluster enabled again (mark cleared on 3 of 3 hosts)", progress
    middle = progress[8:-1]
    owners = [line.split("] ", 1)[1].split(":", 1)[0] for line in middle]
    assert owners == sorted(owners, key=C2.index), middle
    for index, host in enumerate(C2[:2], 1):
        assert_sequence(host_lines(middle, host, "%d/3" % index),
                        stage_patterns("PreMaintenance") + ["evacuation started", MOVED]
                        + stage_patterns("Maintenance", "ok %s; the host left maintenance" % SECONDS)
                        + stage_patterns("PostMaintenance") + [r"updated \(%d of 3 hosts done\)" % index])
    # hv6 needs no maintenance: nothing is announced after its PreMaintenance stage.
    assert_sequence(host_lines(middle, "hv6", "3/3"),
                    stage_patterns("PreMaintenance", r"ok %s: no maintenance needed \(exit 70\)" % SECONDS)
                    + [re.escape("skipped at PreMaintenance: Pre-maintenance stage set to avoid maintenance "
                                 "(3 of 3 hosts done)")])

    # The report block comes last, after the play recap.
    header = [index for index, line in enumerate(lines) if line.startswith("ROLLING MAINTENANCE REPORT")]
    assert len(header) == 1, completed.stdout
    recap = [index for index, line in enumerate(lines) if line.startswith("PLAY RECAP")]
    assert recap and recap[-1] < header[0], completed.stdout
    block = [line for line in lines[header[0] + 1:] if line.strip()]
    assert re.fullmatch(r"Rolling maintenance \S+: SUCCESS - 2 updated, 1 skipped, 0 failed of 3 host\(s\)",
                        block[0]), block
    assert block[1].startswith("  updated  c2/hv4  ") and block[2].startswith("  updated  c2/hv5  "), block
    assert block[3] == "  skipped  c2/hv6  at PreMaintenance: Pre-maintenance stage set to avoid maintenance", block
    assert block[4:] == ["JSON report: %s" % report_path], block
    assert report_path.exists()


def test_the_quiet_callback_shows_the_progress_the_failures_and_the_report_and_little_else(
        lab: Lab, c2_hooks: None, tmp_path: Path) -> None:
    lab.write_hook("hv5", "Maintenance", "echo patching failed >&2; exit 3")
    # The repository's ansible.cfg: the quiet stdout callback, with rolling_progress enabled beside it.
    completed = lab.playbook(PLAYBOOK, "-e", "rm_clusters=c2", "-e", "rm_ping_interval=1", "-e", "rm_forced=true",
                             "-e", "rm_report_path=%s" % (tmp_path / "report.json"))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    lines = completed.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[rolling")]

    # The same progress lines as beside the default callback, each printed once.
    assert re.fullmatch(r"\[rolling\] run \S+: 3 host\(s\) in 1 cluster\(s\): hv4, hv5, hv6", progress[0]), progress
    assert len(progress) == len(set(progress)), progress
    assert progress[-1] == "[rolling c2] cluster enabled again (mark cleared on 3 of 3 hosts)", progress
    assert [line for line in progress if line.startswith("[rolling c2 2/3] hv5: Maintenance stage failed")], progress
    # No play banner, no result of a task that went well or was skipped; the one failure is shown in full
    # under its task's banner: the run's own status, after hv5's stage failed.
    assert not [line for line in lines if line.startswith(("PLAY [", "ok: [", "changed: [", "skipping: [", "included: "))]
    banners = [line for line in lines if line.startswith("TASK [")]
    assert len(banners) == 1 and "Fail when the run failed" in banners[0], banners
    assert [line for line in lines if line.startswith("fatal: [localhost]: FAILED! => ")][0].count(
        "1 updated, 1 skipped, 1 failed of 3 host(s)") == 1, output
    header = [index for index, line in enumerate(lines) if line.startswith("ROLLING MAINTENANCE REPORT")]
    assert len(header) == 1 and lines.index(next(line for line in lines if line.startswith("PLAY RECAP"))) < header[0]
    assert "  FAILED   c2/hv5  at Maintenance: failed with exit code 3" in "\n".join(lines[header[0]:]), output
    # Some 45 lines for a run of three hosts, where the default callback prints more than 150 task banners.
    assert len([line for line in lines if line.strip()]) < 60, output


def test_a_refused_input_is_one_line_under_the_quiet_callback(lab: Lab, tmp_path: Path) -> None:
    completed = lab.playbook(PLAYBOOK, "-e", "rm_clusters=c2", "-e", "rm_stage_timeout=abc",
                             "-e", "rm_report_path=%s" % (tmp_path / "report.json"))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    refusal = [line for line in output.splitlines() if "Validation of arguments failed" in line]
    assert refusal[0].startswith("fatal: [localhost]: FAILED! => ") and "rm_stage_timeout" in refusal[0], output
    assert len(refusal[0]) < 300, refusal[0]
    assert "argument_spec_data" not in output and "rm_cluster_disable_command" not in output, output
