"""The molecule scenarios of extensions/molecule, run by molecule itself, each on a lab of its own.

- default: the collection's own, from the repository (collection mode: galaxy.yml beside extensions/).
- hooks: the template operators copy to test their own stage scripts, from the installed tarball, with
  one command in its extensions directory, as its molecule.yml documents."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, Iterator

import pytest

from bootstrapped import TOOLS, needs_tool
from labtools import REPO, installed_collection

pytestmark = [pytest.mark.lab, needs_tool("molecule")]
STAGES = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")


@pytest.fixture
def ansible_home() -> Iterator[Path]:
    """Molecule keeps a scenario's state under ANSIBLE_HOME by the name of its directory: one per test, and short,
    since ssh's control sockets live there too."""
    path = Path(tempfile.mkdtemp(prefix="/tmp/mh"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def molecule(scenario: str, cwd: Path, lab: str, subnet: int, env: Dict[str, str]) -> "subprocess.CompletedProcess[str]":
    environment = {name: value for name, value in os.environ.items()
                   if not name.startswith(("ANSIBLE_", "KVMLAB_", "MOLECULE_"))}
    environment.update(PATH="%s:%s" % (TOOLS, os.environ.get("PATH", "")), NO_COLOR="1", KVMLAB_NAME=lab,
                       KVMLAB_DIR="/tmp/kvmlab-%s" % lab, KVMLAB_SUBNET="10.213.%d.0/24" % subnet, **env)
    return subprocess.run([str(TOOLS / "molecule"), "test", "-s", scenario], cwd=str(cwd), env=environment,
                          capture_output=True, text=True, timeout=900, check=False)


def succeeded(output: str, scenario: str, action: str) -> bool:
    """Whether molecule says ACTION of SCENARIO succeeded ('default > verify', or with an arrow on a terminal)."""
    return re.search(r"\b%s (>|➜) %s: Executed: Successful" % (scenario, action), output) is not None


def test_the_collections_own_scenario_maintains_the_lab_and_every_guest_runs_once(ansible_home: Path) -> None:
    completed = molecule("default", REPO, "kvmmol", 96, {"ANSIBLE_HOME": str(ansible_home),
                                                         "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections")})
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    for action in ("create", "converge", "verify", "destroy"):
        assert succeeded(output, "default", action), output[-6000:]
    assert "SUCCESS - 4 updated, 0 skipped, 0 failed of 4 host(s)" in output, output[-6000:]
    converge = re.split(r"default (?:>|➜) (?:converge|verify)\]?:? Executing", output)[1]
    assert "TASK [" not in converge, "the quiet callback shows no task banner in a run that went well:\n" + converge


@pytest.mark.parametrize("case, lab, subnet", [("scripts-that-work", "kvmhkok", 97),
                                               ("a-failing-maintenance", "kvmhkfail", 98)], ids=str)
def test_the_hooks_template_tests_an_operators_scripts_from_the_installed_tarball(
        tmp_path: Path, ansible_home: Path, case: str, lab: str, subnet: int) -> None:
    installed = installed_collection(tmp_path)
    hooks = tmp_path / "my-hooks"
    hooks.mkdir()
    for stage in STAGES:
        body = 'echo "%s on $RM_HOST with $*"' % stage
        if stage == "Maintenance" and case == "a-failing-maintenance":
            body += "\necho 'apt-get: could not get lock' >&2\nexit 100"
        (hooks / ("%s.sh" % stage)).write_text("#!/bin/sh\n%s\n" % body)
        (hooks / ("%s.sh" % stage)).chmod(0o755)
    extensions = installed / "ansible_collections" / "kvmops" / "rolling" / "extensions"
    completed = molecule("hooks", extensions, lab, subnet,
                         {"ANSIBLE_HOME": str(ansible_home), "ANSIBLE_COLLECTIONS_PATH": str(installed),
                          "KVMOPS_HOOKS_DIR": str(hooks), "KVMOPS_PAYLOAD": "--security-only"})
    output = completed.stdout + completed.stderr

    # The plan first (check mode: no script ran), then the real run, each stage's result, and the lab gone.
    assert succeeded(output, "hooks", "check"), output[-6000:]
    assert "hv1: Maintenance stage would run (check mode)" in output, output[-6000:]
    assert succeeded(output, "hooks", "destroy"), output[-6000:]
    if case == "scripts-that-work":
        assert completed.returncode == 0, output[-6000:]
        # Each stage's result on each host, with what the script printed, its payload as its arguments.
        assert succeeded(output, "hooks", "verify"), output[-6000:]
        assert "Maintenance on hv1 with --security-only" in output and "PostMaintenance on hv2 with --security-only" \
            in output, output[-6000:]
    else:
        # The run stops at the failing host (fail-fast): the template fails, and the report says what the script said.
        assert completed.returncode != 0, output[-6000:]
        assert "FAILED   c1/hv1  at Maintenance: failed with exit code 100; it said: apt-get: could not get lock" \
            in output, output[-6000:]
