"""End-to-end fixtures: the lab of simulated KVM hosts, brought up once per session."""

from __future__ import annotations

import os
from typing import Iterator, List

import pytest

from labtools import Lab


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
