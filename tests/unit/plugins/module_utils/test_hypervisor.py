"""The host as the run plans with it, read by hypervisor_info and by PreMaintenance as it ends (_hypervisor.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Dict

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils import _hypervisor
from ansible_collections.kvmops.rolling.plugins.module_utils._hypervisor import hypervisor_at_stage_end

pytest.importorskip("libvirt")


def read(uri: str = "test:///default", timeout: int = 30) -> Dict[str, Any]:
    return {"uri": uri, "shared_storage_paths": [], "timeout": timeout}


def test_no_read_asked_adds_nothing(tmp_path: Path) -> None:
    assert hypervisor_at_stage_end(None, str(tmp_path)) == {}


def test_the_stage_end_reads_libvirt_and_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / "maintenance.json").write_text('{"run_id": "r1", "since": 1700000000}')
    found = hypervisor_at_stage_end(read(), str(tmp_path))
    assert set(found) == {"hypervisor"}
    facts = found["hypervisor"]
    assert facts["domains"] and facts["node"]["memory_mib"] > 0  # the test driver's node and its "test" domain
    assert facts["maintenance"] == {"run_id": "r1", "since": 1700000000} and facts["lock"] is None


def test_a_host_libvirt_cannot_reach_is_an_error_to_report_not_a_failed_stage(tmp_path: Path) -> None:
    found = hypervisor_at_stage_end(read("test:///no/such/node.xml"), str(tmp_path))
    assert set(found) == {"hypervisor_error"} and "test:///no/such/node.xml" in found["hypervisor_error"]


def test_a_hung_libvirt_is_given_up_after_its_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    released = threading.Event()

    def hung(*_args: Any) -> Dict[str, Any]:
        released.wait(30)
        return {}

    monkeypatch.setattr(_hypervisor, "hypervisor", hung)
    try:
        found = hypervisor_at_stage_end(read(timeout=0), str(tmp_path))
    finally:
        released.set()
    assert found == {"hypervisor_error": "libvirt at test:///default did not answer within 0 s"}
