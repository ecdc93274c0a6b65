"""The collection in an execution environment (AWX, Automation Controller): what it declares ships in the tarball
and ansible-builder finds it; the example definition makes a build context (building the image needs a container
engine, which is not here)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from bootstrapped import TOOLS, TOP, needs_tool

pytestmark = needs_tool("ansible-builder")


def run(*args: object, cwd: Path = TOP) -> str:
    # Without the repository's Ansible settings (make test exports ANSIBLE_CONFIG): its collections path holds the
    # checkout itself, which an install would take for the collection already installed.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ANSIBLE_")}
    completed = subprocess.run([str(arg) for arg in args], cwd=cwd, env=env, capture_output=True, text=True,
                               check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def test_ansible_builder_finds_the_collections_own_needs_in_the_installed_tarball(tmp_path: Path) -> None:
    run(TOOLS / "ansible-galaxy", "collection", "build", "--output-path", tmp_path, TOP)
    [tarball] = tmp_path.glob("kvmops-rolling-*.tar.gz")
    run(TOOLS / "ansible-galaxy", "collection", "install", "-p", tmp_path / "collections", tarball, cwd=tmp_path)
    found = yaml.safe_load(run(TOOLS / "ansible-builder", "introspect", "--sanitize", tmp_path / "collections"))
    assert found["python"] == []
    assert found["system"] == ["openssh-clients [platform:rpm]  # from collection kvmops.rolling",
                               "openssh-client [platform:dpkg]  # from collection kvmops.rolling"]


def test_the_example_definition_makes_a_build_context_that_installs_the_collection(tmp_path: Path) -> None:
    definition = TOP / "examples" / "awx" / "execution-environment.yml"
    run(TOOLS / "ansible-builder", "create", "-f", definition, "-c", tmp_path / "context", cwd=definition.parent)
    containerfile = (tmp_path / "context" / "Dockerfile").read_text()
    assert "ansible-galaxy" in containerfile and "install-from-bindep" in containerfile
    requirements = yaml.safe_load((tmp_path / "context" / "_build" / "requirements.yml").read_text())
    assert [entry["name"] for entry in requirements["collections"]] == ["kvmops.rolling"]
