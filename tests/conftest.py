"""The whole suite: each pytest-xdist worker gets a lab of its own, and the longest tests start first.

The end-to-end tests mostly wait (for SSH, libvirt, stage scripts), so several run side by side, each
worker on its own lab (namespaces, addresses and directories named after the worker), one lab per
worker for the whole session. Tests on one lab still run one after another, as without xdist.
"""

from __future__ import annotations

import os
from typing import Dict, List

import pytest

# Worker N's lab lives in 10.213.(WORKER_SUBNET_BASE + N).0/24: clear of the default lab (10.213.47.0/24)
# and of the lab smoke test's own (10.213.59.0/24).
WORKER_SUBNET_BASE = 64
MAX_WORKERS = 64

# Longest first, so a worker that draws one of these is not the last to finish (loadgroup hands out work
# in collection order once the groups are placed). Tests not listed keep their order: end to end first,
# then the quick unit tests, which fill the workers' gaps at the end.
LONGEST_FIRST = (
    "tests/integration/test_scale.py",
    "tests/integration/test_run_faults.py",
    "tests/integration/test_resume.py",
)


def worker_lab_environment(worker: str) -> Dict[str, str]:
    """The lab of xdist worker WORKER ("gw0", "gw1", ...): a name, directory and subnet no other worker uses."""
    number = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else -1
    if not 0 <= number < MAX_WORKERS:
        raise pytest.UsageError("unexpected pytest-xdist worker id %r (at most %d workers)" % (worker, MAX_WORKERS))
    return {"KVMLAB_NAME": "kvmlabgw%d" % number, "KVMLAB_DIR": "/tmp/kvmlab-gw%d" % number,
            "KVMLAB_SUBNET": "10.213.%d.0/24" % (WORKER_SUBNET_BASE + number)}


def pytest_configure(config: pytest.Config) -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:  # the kvmlab command and every test's subprocesses inherit it
        os.environ.update(worker_lab_environment(worker))


def collection_rank(nodeid: str) -> int:
    """Where a test goes in the run: listed long ones first, then the other lab tests, then unit tests."""
    for rank, prefix in enumerate(LONGEST_FIRST):
        if nodeid.startswith(prefix):
            return rank
    return len(LONGEST_FIRST) + (1 if nodeid.startswith("tests/unit/") else 0)


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    items.sort(key=lambda item: collection_rank(item.nodeid))  # stable: file order within a rank
