# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a host is, as the run plans with it: its libvirt inventory and what runs left in its state dir.

Read by hypervisor_info (the gather, the re-check's reads of other hosts) and by the PreMaintenance stage as it
ends (read_hypervisor: the re-check's fresh facts of the host itself, without one more connection).
Private to the collection (leading underscore): not a public API.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import JobStore, current_boot_id
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_REQUIREMENT,
    libvirt_error_message,
    open_connection,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt_inventory import gather
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    CLUSTER_MARK,
    JOURNAL_MARK,
    LOCK_MARK,
    MAINTENANCE_MARK,
    lock_age,
    lock_renewed_at,
    read_mark,
)

# maintenance_stage's option: read the host as the stage ends (its suboptions are hypervisor_info's).
READ_HYPERVISOR_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "read_hypervisor": {"type": "dict", "options": {
        "uri": {"type": "str", "default": "qemu:///system"},
        "shared_storage_paths": {"type": "list", "elements": "path", "default": []},
        "timeout": {"type": "int", "default": 120},
    }},
}


def inventory(uri: str, shared_storage_paths: List[str]) -> Dict[str, Any]:
    """gather() over a read-only connection; raises RuntimeError with an operator's message on failure."""
    doing = "connecting to libvirt"
    conn = None
    try:
        conn = open_connection(uri, readonly=True)
        doing = "reading the node and its domains"
        return gather(conn, shared_storage_paths)
    except Exception as exc:  # libvirt.libvirtError mostly; the message says what failed, where and why
        raise RuntimeError(libvirt_error_message(exc, doing, uri=uri)) from exc
    finally:
        if conn is not None:
            conn.close()


def run_state(state_dir: str) -> Dict[str, Any]:
    """What runs left on the host: marks, the lock with its age, the last run's record, jobs still running."""
    lock = read_mark(state_dir, LOCK_MARK)
    if lock is not None:
        lock["age"] = lock_age(state_dir)
        lock["renewed_at"] = lock_renewed_at(state_dir)
    now = time.time()
    running = [{"job_id": job["job_id"], "run_id": job.get("run_id", ""), "label": job.get("label", ""),
                "elapsed": round(now - job.get("created_at", now), 1),
                "timeout": job.get("stage_timeout") or job.get("timeout")}
               for job in JobStore(state_dir).running_jobs(current_boot_id())]
    return {"maintenance": read_mark(state_dir, MAINTENANCE_MARK), "cluster_mark": read_mark(state_dir, CLUSTER_MARK),
            "lock": lock, "last_run": read_mark(state_dir, JOURNAL_MARK), "running_jobs": running,
            "job_run_ids": JobStore(state_dir).run_ids()}


def hypervisor(uri: str, shared_storage_paths: List[str], state_dir: str) -> Dict[str, Any]:
    """The host's libvirt inventory with its run state; RuntimeError with an operator's message on failure."""
    facts = inventory(uri, shared_storage_paths)
    facts.update(run_state(state_dir))
    return facts


def hypervisor_at_stage_end(read: Optional[Dict[str, Any]], state_dir: str) -> Dict[str, Any]:
    """The stage result's fields for read_hypervisor: ``hypervisor``, or ``hypervisor_error`` saying why the
    host could not be read (the re-check then fails the host as a failed read of it would)."""
    if read is None:
        return {}
    if not HAS_LIBVIRT:
        return {"hypervisor_error": "%s is not installed on the host" % LIBVIRT_REQUIREMENT}
    found: Dict[str, Any] = {}

    def read_host() -> None:
        try:
            found["hypervisor"] = hypervisor(read["uri"], read["shared_storage_paths"] or [], state_dir)
        except Exception as exc:  # RuntimeError with libvirt's message mostly: it goes to the report
            found["hypervisor_error"] = str(exc)

    # A hung libvirtd makes the host unfit, as the gather's task timeout does; it never holds the stage's result.
    # The reader is a daemon thread: left behind, it does not keep the module from exiting.
    reader = threading.Thread(target=read_host, daemon=True)
    reader.start()
    reader.join(read["timeout"])
    return dict(found) or {"hypervisor_error": "libvirt at %s did not answer within %d s" % (read["uri"], read["timeout"])}
