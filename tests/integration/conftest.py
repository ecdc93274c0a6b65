"""End-to-end fixtures: the lab of simulated KVM hosts, brought up once per session."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, List

import pytest

from labtools import Lab
from runtools import ALL, Run


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    Lab.kvmlab("up", timeout=900)
    yield Lab()
    if not os.environ.get("KVMLAB_KEEP"):
        Lab.kvmlab("down", timeout=300)


@pytest.fixture
def clean_hooks(lab: Lab) -> Iterator[List[str]]:
    """Every lab host with an empty hooks dir, before and after the test."""
    hosts = list(lab.hosts)
    for host in hosts:
        lab.clear_hooks(host)
    yield hosts
    for host in hosts:
        lab.clear_hooks(host)


@pytest.fixture
def scenario(lab: Lab, tmp_path: Path) -> Iterator[Run]:
    """A run; afterwards every guest that ran before runs exactly once, no cluster is disabled, no host in maintenance."""
    before = lab.running_guests()
    run = Run(lab, tmp_path)
    yield run
    run.end_background()
    after = lab.running_guests()
    not_once = {name: after.get(name, []) for name in before if len(after.get(name, [])) != 1}
    left = lab.marks_left(ALL)
    # Cleaned up before the checks fail, so that one broken test (a run killed at a timeout) does not fail every
    # test after it on this lab with its locks and guests.
    for host in ALL:
        lab.clear_hooks(host)
        for mark in left.get(host, []):
            (lab.state_dir(host) / mark).unlink()
    for name in set(after) - set(before):
        lab.remove_guest(name)
    assert not not_once, "guests not running exactly once after the run: %s" % not_once
    assert not left, "left behind: %s" % left
