"""What `ansible-galaxy collection build` ships: what a user runs and reads, the lab and the molecule scenarios
(the hooks template needs them), and none of the development tree."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import List

import pytest

TOP = Path(__file__).resolve().parents[3]
GALAXY = TOP / ".venv" / "bin" / "ansible-galaxy"
pytestmark = pytest.mark.skipif(not GALAXY.exists(), reason="scripts/bootstrap builds .venv with ansible-core")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> List[str]:
    where = tmp_path_factory.mktemp("build")
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")}
    subprocess.run([str(GALAXY), "collection", "build", "--output-path", str(where), str(TOP)], env=env, check=True,
                   capture_output=True)
    [tarball] = where.glob("kvmops-rolling-*.tar.gz")
    with tarfile.open(tarball) as archive:
        return sorted(member.name for member in archive.getmembers() if member.isfile())


def test_the_tarball_ships_what_a_user_runs_and_reads(shipped: List[str]) -> None:
    for path in ("playbooks/rolling_maintenance.yml", "roles/rolling_maintenance/meta/argument_specs.yml",
                 "plugins/callback/quiet.py", "docs/inputs.md", "README.md", "LICENSE", "CHANGELOG.md",
                 "meta/execution-environment.yml", "examples/hooks/Maintenance.sh", "examples/awx/survey.json",
                 "extensions/lab/kvmlab", "extensions/lab/kvmlab_impl.py", "extensions/lab/system-packages.txt",
                 "extensions/molecule/hooks/molecule.yml", "extensions/molecule/shared/create.yml",
                 "extensions/molecule/default/verify.yml"):
        assert path in shipped, path


def test_the_tarball_ships_none_of_the_development_tree(shipped: List[str]) -> None:
    development = ("tests/", "bench/", "scripts/", "requirements/", ".ci/", "build/", ".collections/", ".venv",
                   "changelogs/fragments/", "Makefile", "pytest.ini", ".ansible-lint", ".gitignore")
    assert [path for path in shipped if path.startswith(development)] == []
    assert [path for path in shipped if "__pycache__" in path or path.endswith((".pyc", ".json"))
            and path.startswith(("rolling-maintenance-", "report"))] == []
