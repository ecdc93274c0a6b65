#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_maintenance
short_description: Put a KVM host into maintenance by live-migrating its guests away, or take it out again
version_added: 0.1.0
description:
  - With O(state=present) the host enters maintenance. It is first marked as in maintenance in its
    state dir (so it is never chosen as a migration target), then every running guest is live-migrated to
    its planned target (libvirt peer-to-peer, persistent on the destination, undefined on the source), at most
    O(max_parallel_migrations) at a time. The host must run no guest within O(wait_timeout) seconds.
  - If a migration fails, the deadline passes or the run is cancelled, no further migration starts, those in
    flight are aborted, and the host leaves maintenance again. No guest is stopped or lost; one that a failed
    migration of ours left paused is resumed once its target is known not to run it (a pause by the operator or
    an I/O error is left alone), and one running on both hosts is never touched and named in RV(on_both); the
    result says which guests moved where and why the rest did not.
  - With O(state=absent) the host leaves maintenance, once no evacuation runs on it any more (one still running is
    cancelled and waited for first). Guests do not move back.
  - The plan (O(moves)) comes from the collection's placement planner; the module checks its shape, not
    its capacity.
  - The action plugin of the same name runs the evacuation detached from the connection and polls it every
    O(ping_interval) seconds, so a dropped connection does not stop it; progress shows in the play output.
author:
  - kvmops.rolling engineers (@kvmops)
extends_documentation_fragment:
  - kvmops.rolling.rolling
  - kvmops.rolling.rolling.action
  - kvmops.rolling.rolling.job
  - kvmops.rolling.rolling.holds_lock
  - kvmops.rolling.rolling.record
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details:
      - The action calls the module on the host once. With O(state=present) the moves are checked, but the host is
        not marked, no job starts and no guest moves; RV(status) is V(would_run) and RV(moves) lists the planned
        moves. With O(state=absent) the mark is not removed and an evacuation still running is not cancelled.
      - The record is not kept on the host and O(holds_lock) is not checked, since a check run takes no lock.
options:
  state:
    description: V(present) enters maintenance (evacuating the host), V(absent) leaves it.
    type: str
    default: present
    choices: [present, absent]
  moves:
    description:
      - The planned move of every running guest of the host. Required with O(state=present); an empty list
        is right for a host that runs no guest.
    type: list
    elements: dict
    default: []
    suboptions:
      vm:
        description: The guest's name.
        type: str
        required: true
      uuid:
        description: The guest's UUID; the guest is looked up by it.
        type: str
        required: true
      target:
        description: Inventory name of the host the guest moves to.
        type: str
        required: true
      target_uri:
        description: The libvirt URI by which this host's libvirtd reaches the target's (peer-to-peer migration).
        type: str
        required: true
  uri:
    description: The libvirt URI of this host's own libvirtd.
    type: str
    default: qemu:///system
  state_dir:
    description: Root-only directory where the maintenance mark and the evacuation job are kept.
    type: path
    default: /var/lib/kvm-rolling-maintenance
  wait_timeout:
    description: Seconds the host has to become empty (all of it counted); then the evacuation stops and the host
      leaves maintenance. With O(state=absent) leaving takes at most 80 seconds (the time a cancelled evacuation
      gets to end) and a host out of reach is given up 30 seconds after that.
    type: int
    default: 1800
  ping_interval:
    description: Seconds between status polls of the running evacuation.
    type: int
    default: 10
  max_parallel_migrations:
    description: How many guests migrate at the same time.
    type: int
    default: 2
  run_id:
    description: Identifier of the rolling maintenance run, recorded in the maintenance mark. Generated when omitted.
    type: str
  host_name:
    description: This host's inventory name, recorded in the maintenance mark. Defaults to the inventory host name.
    type: str
requirements:
  - libvirt-python (Debian package python3-libvirt) on the host
notes:
  - Supports check mode; then nothing is marked or migrated and the result lists the planned moves.
seealso:
  - module: kvmops.rolling.capacity_plan
    description: Plans the moves this module takes as O(moves), the host's entry in its
      RV(kvmops.rolling.capacity_plan#module:moves).
  - module: kvmops.rolling.hypervisor_info
    description: Reports which guests cannot be live-migrated and whether the host is in maintenance.
  - module: kvmops.rolling.maintenance_stage
    description: Runs the stage scripts; with O(kvmops.rolling.maintenance_stage#module:leave_maintenance) its
      C(Maintenance) stage takes the host out of maintenance as O(state=absent) does.
  - name: libvirt migration
    description: Peer-to-peer live migration and the connection URIs of O(moves[].target_uri).
    link: https://libvirt.org/migration.html
"""

EXAMPLES = r"""
- name: Evacuate hv1 following a plan
  kvmops.rolling.host_maintenance:
    state: present
    moves:
      - {vm: web-1, uuid: 6f1d1a8e-6a5e-4b7e-9a53-0c7b8e0f6a11, target: hv2, target_uri: "qemu+ssh://hv2/system"}
      - {vm: db-1, uuid: 0b9c52a4-3f0e-4d4e-8f43-2f5f1c0ab9de, target: hv3, target_uri: "qemu+ssh://hv3/system"}
    wait_timeout: 900
    max_parallel_migrations: 2

- name: Take hv1 out of maintenance
  kvmops.rolling.host_maintenance:
    state: absent
"""

RETURN = r"""
record:
  description:
    - With O(state=present), the host's record (option O(record)) with the evacuation in its C(evacuation) key, closed
      as failed (or critical, for a guest left running on two hosts) when the evacuation failed.
    - Its keys are those of RV(kvmops.rolling.maintenance_stage#module:record), as described there; the evacuation's
      summary is under C(evacuation).
  returned: when O(record) was given
  type: dict
record_kept:
  description: Whether that record was kept on the host (C(last_run.json)) when the evacuation ended.
  returned: when O(record) was given and the evacuation ended, not in check mode
  type: bool
record_error:
  description: Why the record could not be kept on the host; the evacuation's result stands all the same.
  returned: when RV(record_kept) is false
  type: str
lock_lost:
  description: With O(holds_lock), why the run no longer holds the lock of the host's cluster; the step was refused.
  returned: when the run lost its lock
  type: str
  sample: the lock of cluster c1 was taken over by run 20261125T010000Z-77, started ...
status:
  description: V(ok) (done), V(failed), V(timeout) (not empty in time), V(rebooted) (the host rebooted meanwhile), V(would_run)
    in check mode.
  returned: always
  type: str
  sample: ok
in_maintenance:
  description: Whether the host is in maintenance after the task.
  returned: always
  type: bool
moves:
  description: Each planned guest with how its move ended (V(moved), V(failed), V(aborted), V(not_started), V(gone) when
    it no longer ran here, or V(on_both) when it runs here and on its target and was left untouched), its target, seconds
    taken and the error.
  returned: when the evacuation ran
  type: list
  elements: dict
  sample:
    - vm: web-1
      uuid: 6f1d1a8e-6a5e-4b7e-9a53-0c7b8e0f6a11
      target: hv2
      status: moved
      seconds: 2.1
      error: ''
  contains:
    vm:
      description: The guest's name.
      type: str
      sample: web-1
    uuid:
      description: The guest's UUID.
      type: str
    target:
      description: Inventory name of the host it was planned to move to.
      type: str
      sample: hv2
    target_uri:
      description: The target's libvirt URI, as planned.
      returned: in check mode
      type: str
    status:
      description: How the move ended, V(moved), V(failed), V(aborted), V(not_started), V(gone) or V(on_both).
      returned: when the evacuation ran
      type: str
      sample: moved
    seconds:
      description: Seconds the migration took.
      returned: when the evacuation ran
      type: float
    error:
      description: Why the move failed or was aborted; empty when it did not.
      returned: when the evacuation ran
      type: str
moved:
  description: How many guests moved.
  returned: when the evacuation ran
  type: int
still_running:
  description: Guests still running on the host when the evacuation ended.
  returned: when the evacuation ran
  type: list
  elements: str
on_both:
  description:
    - Guests a half-failed migration left running on this host and on its target. They are never touched (no resume,
      no destroy); the operator keeps one. The rolling maintenance stops and names them first.
  returned: when the evacuation ran
  type: list
  elements: str
stopped_evacuations:
  description: With O(state=absent), the evacuation jobs still running on the host that were cancelled (and waited for)
    before it left maintenance.
  returned: with O(state=absent)
  type: list
  elements: str
job_id:
  description: The evacuation job on the host (its files are in O(state_dir)/jobs/<job_id>).
  returned: with O(state=present)
  type: str
adopted:
  description:
    - True when the run (O(run_id)) had already started this host's evacuation before it was interrupted and it still
      ran or had brought the host into maintenance; it was followed instead of being started again.
  returned: when an evacuation was adopted
  type: bool
elapsed:
  description: Seconds from the start of the task until the controller saw the evacuation end.
  returned: with O(state=present)
  type: float
msg:
  description: What happened, in one line.
  returned: always
  type: str
"""

import os
import time
import traceback
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError, fail_from
from ansible_collections.kvmops.rolling.plugins.module_utils._evacuation import (
    MAINTENANCE_ARGUMENT_SPEC,
    Evacuation,
    parse_moves,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import (
    JOB_ARGUMENT_SPEC,
    CancelRequest,
    JobError,
    JobStore,
    cancel,
    checked_job_id,
    current_boot_id,
    poll,
    start_detached,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    LIBVIRT_REQUIREMENT,
    libvirt_error_message,
    open_connection,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._maintenance_mode import in_maintenance, leave_maintenance
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    MAINTENANCE_MARK,
    read_mark,
    remove_mark,
    step_lock_lost,
    write_mark,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._record import (
    RECORD_ARGUMENT_SPEC,
    record_kept_at_step_end,
    record_after_evacuation,
)


def evacuate(store: JobStore, job: Dict[str, Any], params: Dict[str, Any]) -> None:
    """The detached evacuation: migrate, then either stay in maintenance or leave it; write the result."""
    uri = params["uri"]

    def connect(target_uri: Optional[str]) -> Any:
        return open_connection(target_uri or uri)

    evacuation = Evacuation(connect, parse_moves(params["moves"], params["host_name"]),
                            params["max_parallel_migrations"], params["wait_timeout"],
                            lambda exc, doing: libvirt_error_message(exc, doing, uri=uri),
                            report=lambda progress: store.write_progress(job["job_id"], progress),
                            cancelled=lambda: CancelRequest.requested)
    try:
        outcome = evacuation.run()
    except Exception as exc:  # libvirt unreachable, or a bug: never leave the host marked
        outcome = {"status": "failed", "msg": libvirt_error_message(exc, "evacuating the host", uri=uri)}
    in_maintenance = outcome["status"] == "ok"
    if in_maintenance:
        mark = read_mark(params["state_dir"], MAINTENANCE_MARK) or {}
        write_mark(params["state_dir"], MAINTENANCE_MARK, dict(mark, state="in_maintenance", entered_at=time.time()))
    else:
        remove_mark(params["state_dir"], MAINTENANCE_MARK)
        outcome["msg"] += "; the host left maintenance again"
    now = time.time()
    store.write_result({**job, **outcome, "in_maintenance": in_maintenance, "started_at": job["created_at"],
                        "ended_at": now, "boot_id": current_boot_id()})


def enter(module: AnsibleModule, job_id: str) -> Dict[str, Any]:
    params = module.params
    moves = parse_moves(params["moves"], params["host_name"])
    if module.check_mode:
        return {"status": "would_run", "in_maintenance": False, "changed": True, "moves": params["moves"],
                "msg": "check mode: would mark the host in maintenance and migrate %d guest(s)" % len(moves)}
    store = JobStore(params["state_dir"])
    store.prepare()
    if os.path.isdir(store.job_dir(job_id)):  # a retried start whose first attempt got through
        return poll_result(store, job_id, params["_wait"])
    mark = read_mark(params["state_dir"], MAINTENANCE_MARK)
    if mark and mark.get("run_id") == params["run_id"] and os.path.isdir(store.job_dir(str(mark.get("job_id")))):
        # A resumed run whose evacuation of this host runs still or brought it into maintenance: follow it.
        return dict(poll_result(store, mark["job_id"], params["_wait"]), adopted=True)
    boot_id = current_boot_id()
    busy = store.running_jobs(boot_id)
    if busy:
        raise JobError("the %s of run %s (job %s) is still running on this host; one job at a time"
                       % (busy[0]["label"], busy[0]["run_id"], busy[0]["job_id"]))
    store.prune()
    os.mkdir(store.job_dir(job_id), 0o700)
    job = {"job_id": job_id, "run_id": params["run_id"], "kind": "evacuation", "label": "evacuation",
           "host": params["host_name"], "created_at": time.time(), "boot_id": boot_id,
           "planned": len(moves), "timeout": params["wait_timeout"]}
    write_mark(params["state_dir"], MAINTENANCE_MARK, {"run_id": params["run_id"], "host": params["host_name"],
                                                       "job_id": job_id, "state": "evacuating",
                                                       "since": job["created_at"]})
    try:
        start_detached(store, job, lambda: evacuate(store, job, params))
    except JobError:
        remove_mark(params["state_dir"], MAINTENANCE_MARK)
        raise
    return poll_result(store, job_id, params["_wait"])


def poll_result(store: JobStore, job_id: str, wait: float) -> Dict[str, Any]:
    status, fields = poll(store, job_id, wait)
    # A job settled without its runner (reboot, runner gone) says nothing about the mark: read it.
    fields.setdefault("in_maintenance", in_maintenance(store.state_dir))
    return dict(fields, status=status, changed=True)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(MAINTENANCE_ARGUMENT_SPEC, **JOB_ARGUMENT_SPEC, **RECORD_ARGUMENT_SPEC),
                           supports_check_mode=True)
    params = module.params
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(LIBVIRT_REQUIREMENT), exception=LIBVIRT_IMPORT_ERROR)
    params["run_id"] = params["run_id"] or "adhoc-%d" % int(time.time())
    params["host_name"] = params["host_name"] or os.uname()[1]
    job_id = params["_job_id"] or "%s.evacuation.%d" % (params["run_id"], os.getpid())
    try:
        if params["state"] == "present":
            checked_job_id(job_id)
        # Leaving maintenance is never refused: it is how a run that lost its lock stops cleanly.
        lost = step_lock_lost(params, module.check_mode) if params["state"] == "present" and \
            params["_mode"] != "cancel" else ""
        if params["state"] == "absent":
            result = leave_maintenance(params["state_dir"], module.check_mode)
        elif lost and params["_mode"] == "start":
            result = {"status": "failed", "changed": False, "lock_lost": lost,
                      "msg": "the host was not evacuated: %s" % lost}
        elif params["_mode"] == "start":
            result = enter(module, job_id)
        elif params["_mode"] == "poll" and not lost:
            result = poll_result(JobStore(params["state_dir"]), job_id, params["_wait"])
        else:
            status, fields = cancel(JobStore(params["state_dir"]), job_id)
            result = dict(fields, status=status)
            if lost:
                result.update(lock_lost=lost, msg="the evacuation was cancelled: %s; %s" % (lost, fields.get("msg")))
    except RollingError as exc:
        fail_from(module, exc, status="failed", in_maintenance=os.path.exists(
            os.path.join(params["state_dir"], MAINTENANCE_MARK)))
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (exc.strerror, exc.filename or ""), status="failed",
                         exception=traceback.format_exc())
    result.setdefault("in_maintenance", in_maintenance(params["state_dir"]))
    if params["state"] == "present" and params["record"] is not None and not result.get("lock_lost") \
            and not (params["_mode"] == "cancel" and step_lock_lost(params, module.check_mode)):
        # A cancel is never refused, but keeps the record only while the run holds the lock.
        result.update(record_kept_at_step_end(params["state_dir"], params["run_id"], result["status"],
                                              record_after_evacuation(params["record"], result, params["forced"],
                                                                      module.check_mode),
                                              module.check_mode))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
