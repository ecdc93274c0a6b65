"""Tests that need a venv scripts/bootstrap builds: skipped where it was not built, failed under make test.

make test always runs scripts/bootstrap first and sets KVMOPS_REQUIRE_BOOTSTRAP, so there a missing tools venv is
a broken bootstrap, which must fail the suite instead of skipping the tests that need it unseen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[1]
TOOLS = TOP / ".venv-tools" / "bin"


def needs_tool(name: str) -> pytest.MarkDecorator:
    """Skip unless .venv-tools has NAME, or make test requires it."""
    return pytest.mark.skipif(not (TOOLS / name).exists() and not os.environ.get("KVMOPS_REQUIRE_BOOTSTRAP"),
                              reason="scripts/bootstrap builds .venv-tools with %s" % name)
