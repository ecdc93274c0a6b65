#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_lock
short_description: Take or release, on one KVM host, the lock a rolling maintenance run holds on the host's cluster
version_added: 0.2.0
description:
  - Two runs must never work on the same cluster at once. A run takes the lock (C(lock.json) in O(state_dir)) on every
    host of each cluster it works on, in inventory order, before it touches any; a second run finds it and refuses to
    start, naming the first run and its start time.
  - The lock lives with the hosts, so runs from different controllers (a laptop, AWX) see each other. The holder
    renews it (its modification time) at every step on the host and each time it polls a stage or an evacuation
    there; its age tells how long the holder has not been heard from. It records the holder's O(renew_interval) and
    O(threshold), so that another run judges the holder by the holder's own settings, never by its own.
  - With O(state=present) the lock is taken when the host has none, when O(run_id) holds it already (a resumed run
    writes it again, naming this controller), or when it is held by O(takeover), the run the caller has found dead
    or stale. Any other holder makes the task fail with a message naming it. The check and the write happen under
    an exclusive C(flock), so two runs racing for the same host cannot both get it. A takeover is refused, under the
    same C(flock), when the lock was renewed after O(takeover_renewed_at), the renewal time the caller judged it by,
    since its holder is at work.
  - With O(state=present) and O(wait_job_id), once the lock is held the task waits up to O(wait_seconds) for that
    job (one a gone run left running on the host) to end, renewing the lock meanwhile, so that a run waiting for an
    hour long patch script of the run it took over from is not taken for a stale one.
  - With O(state=renewed) the lock O(run_id) holds is renewed (its age restarts) and nothing else changes; the task
    fails with C(held=false) and RV(lock_lost) when the run no longer holds it. A run renews it so on the hosts it is
    not working on, between its steps.
  - With O(state=absent) the lock is released, only when O(run_id) holds it.
author:
  - kvmops.rolling engineers (@kvmops)
extends_documentation_fragment:
  - kvmops.rolling.rolling
  - kvmops.rolling.rolling.state_dir
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written, not even the C(flock) file; the lock is read and RV(held) says whether the run would
        hold it. With O(wait_job_id), the job is not waited for.
options:
  state:
    description: V(present) takes the lock, V(renewed) renews the one the run holds, V(absent) releases it.
    type: str
    required: true
    choices: [present, renewed, absent]
  cluster:
    description: The host's cluster, recorded in the lock.
    type: str
    required: true
  run_id:
    description: The run that takes or releases the lock.
    type: str
    required: true
  started:
    description: When the run started (UTC, ISO 8601), recorded in the lock for the message another run shows.
    type: str
    default: ""
  controller:
    description:
      - Who runs the run (host, boot_id, pid, pid_start_ticks of the controller process), recorded in the lock so a
        later run on the same controller can tell a dead holder at once.
    type: dict
    default: {}
  takeover:
    description: With O(state=present), the run whose lock may be replaced (found dead or stale by the caller).
    type: str
    default: ""
  takeover_renewed_at:
    description:
      - With O(takeover), when the lock to replace was last renewed as the caller saw it (seconds since the epoch,
        the host's clock; C(renewed_at) of M(kvmops.rolling.hypervisor_info)'s C(lock)). V(0) skips the check.
    type: float
    default: 0
  renew_interval:
    description: With O(state=present), how often (seconds) the run renews its lock at the least, recorded in it.
    type: int
    default: 0
  threshold:
    description:
      - With O(state=present), after how many seconds without a renewal the run may be taken for gone, recorded in
        the lock; another run judges it by this value. V(0) records none (the judging run then uses its own).
    type: int
    default: 0
  wait_job_id:
    description: With O(state=present), a job on the host to wait for once the lock is held (see above).
    type: str
    default: ""
  wait_seconds:
    description: How long to wait for O(wait_job_id) at most; the job may still run when the task returns.
    type: int
    default: 0
notes:
  - While it waits for O(wait_job_id), a renewal that fails (the lock taken over or removed meanwhile) ends the wait
    and the task fails with C(held=false), naming the new holder.
  - Supports check mode; then nothing is written and the result says whether the lock could be taken.
seealso:
  - module: kvmops.rolling.run_recovery
    description: Judges whether a lock's holder is gone, and names the run to take over (O(takeover)).
  - module: kvmops.rolling.hypervisor_info
    description: Reports the lock with its age and renewal time (O(takeover_renewed_at)).
  - module: kvmops.rolling.cluster_state
    description: Releases the lock in the same call that enables the cluster again.
  - module: kvmops.rolling.run_journal
    description: Renews the lock as it keeps the host's record.
"""

EXAMPLES = r"""
- name: Take the lock of cluster c1 on each of its hosts, in order
  kvmops.rolling.run_lock:
    state: present
    cluster: c1
    run_id: "{{ rm_run_id }}"
    started: "2026-11-24T22:10:00Z"
  delegate_to: "{{ item }}"
  loop: [hv1, hv2, hv3]

- name: Hold it while a job an interrupted run left on hv2 ends (an hour at most)
  kvmops.rolling.run_lock:
    state: present
    cluster: c1
    run_id: "{{ rm_run_id }}"
    wait_job_id: 20261124T221000Z-4711.Maintenance-stage.f31e7de9
    wait_seconds: 3600
  delegate_to: hv2
- name: Renew it on hv3, where the run is not working now
  kvmops.rolling.run_lock:
    state: renewed
    cluster: c1
    run_id: "{{ rm_run_id }}"
  delegate_to: hv3

- name: Release it
  kvmops.rolling.run_lock:
    state: absent
    cluster: c1
    run_id: "{{ rm_run_id }}"
"""

RETURN = r"""
previous:
  description:
    - The lock found before the task (null when there was none).
    - Its keys are those of RV(kvmops.rolling.hypervisor_info#module:hypervisor.lock) but C(age) and C(renewed_at), as
      described there.
  returned: always
  type: dict
  sample:
    cluster: c1
    run_id: 20261124T221000Z-4711
    started: '2026-11-24T22:10:00Z'
held:
  description: Whether O(run_id) holds the lock on the host after the task (in check mode, whether it would).
  returned: always
  type: bool
job:
  description: With O(wait_job_id), the job's status when the wait ended (V(running) when it still runs).
  returned: when O(wait_job_id) is set
  type: str
  sample: ok
lock_lost:
  description: Why the run no longer holds the lock, when it lost it (O(state=renewed), or while waiting for O(wait_job_id)).
  returned: when the lock was lost
  type: str
  sample: the lock of cluster c1 was taken over by run 20261125T010000Z-77, started ...
msg:
  description: What happened.
  returned: always
  type: str
"""

import time
from typing import Any, Dict, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import JobError, JobStore, checked_job_id, poll
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    LOCK_MARK,
    MarkError,
    StateDirError,
    LockLost,
    describe_holder,
    keep_lock,
    lock_age,
    lock_guard,
    lock_renewed_at,
    prepare_state_dir,
    release_lock,
    read_mark,
    write_mark,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import DEFAULT_STATE_DIR, STATUS_RUNNING
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import LOCK_RENEW_SECONDS

# Seconds a lock's modification time may differ between two reads without a renewal in between (filesystems
# that round timestamps).
RENEWAL_CLOCK_SLACK = 0.01


def take(module: AnsibleModule, previous: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    params = module.params
    state_dir = params["state_dir"]
    ours = previous is not None and previous.get("run_id") == params["run_id"]
    if previous is not None and not ours and previous.get("run_id") != params["takeover"]:
        module.fail_json(msg="cluster %s is being maintained by another run: %s" % (
            params["cluster"], describe_holder(previous, lock_age(state_dir))), previous=previous, held=False)
    renewed_at = lock_renewed_at(state_dir)
    if previous is not None and not ours and params["takeover_renewed_at"] and renewed_at is not None \
            and renewed_at > params["takeover_renewed_at"] + RENEWAL_CLOCK_SLACK:
        module.fail_json(msg="cluster %s: run %s renewed its lock after this run judged it gone (%s): it is at work, "
                             "so its lock is not taken over; nothing was done" % (
                                 params["cluster"], previous.get("run_id"), describe_holder(previous, lock_age(state_dir))),
                         previous=previous, held=False)
    if not module.check_mode:
        write_mark(state_dir, LOCK_MARK, {"cluster": params["cluster"], "run_id": params["run_id"],
                                          "started": params["started"], "controller": params["controller"],
                                          "taken_at": time.time(), "took_over": params["takeover"] or None,
                                          "renew_interval": params["renew_interval"] or None,
                                          "threshold": params["threshold"] or None})
    # A resumed run writes its lock again: the controller that holds it now is this one.
    taken = "holds again the lock" if ours else "took over the lock of run %s" % params["takeover"] \
        if previous is not None else "took the lock"
    return {"changed": True, "held": True,
            "msg": "run %s %s of cluster %s" % (params["run_id"], taken, params["cluster"])}


def release(module: AnsibleModule, previous: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    params = module.params
    if previous is None or previous.get("run_id") != params["run_id"]:
        return {"changed": False, "held": False,
                "msg": "run %s holds no lock here%s" % (params["run_id"], "" if previous is None else
                                                        " (run %s does; left alone)" % previous.get("run_id"))}
    return {"changed": True, "held": False, "msg": "run %s released the lock of cluster %s"
            % (params["run_id"], params["cluster"])}


def renew(module: AnsibleModule, previous: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    params = module.params
    if module.check_mode:
        held = previous is not None and previous.get("run_id") == params["run_id"]
        return {"changed": held, "held": held, "msg": "check mode: the lock would %sbe renewed" % ("" if held else "not ")}
    lost = keep_lock(params["state_dir"], params["run_id"])
    if lost:
        module.fail_json(msg=lost, held=False, lock_lost=lost, previous=previous)
    return {"changed": True, "held": True,
            "msg": "run %s renewed its lock of cluster %s" % (params["run_id"], params["cluster"])}


def wait_for_job(params: Dict[str, Any]) -> Dict[str, Any]:
    """Wait for the job to end, renewing the lock at every round; the job's status and a line saying it."""
    store = JobStore(params["state_dir"])
    job_id = checked_job_id(params["wait_job_id"])
    deadline = time.monotonic() + max(0, params["wait_seconds"])
    while True:
        status = poll(store, job_id, min(LOCK_RENEW_SECONDS, max(0.0, deadline - time.monotonic())))[0]
        lost = keep_lock(params["state_dir"], params["run_id"])
        if lost:
            raise LockLost(lost)
        if status != STATUS_RUNNING or time.monotonic() >= deadline:
            break
    ended = "still runs after %d s" % params["wait_seconds"] if status == STATUS_RUNNING else "ended: %s" % status
    return {"job": status, "msg": "job %s %s" % (job_id, ended)}


def main() -> None:
    module = AnsibleModule(argument_spec={
        "state": {"type": "str", "required": True, "choices": ["present", "renewed", "absent"]},
        "cluster": {"type": "str", "required": True},
        "run_id": {"type": "str", "required": True},
        "started": {"type": "str", "default": ""},
        "controller": {"type": "dict", "default": {}},
        "takeover": {"type": "str", "default": ""},
        "takeover_renewed_at": {"type": "float", "default": 0},
        "renew_interval": {"type": "int", "default": 0},
        "threshold": {"type": "int", "default": 0},
        "wait_job_id": {"type": "str", "default": ""},
        "wait_seconds": {"type": "int", "default": 0},
        "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
    }, supports_check_mode=True)
    state_dir = module.params["state_dir"]
    act = {"present": take, "renewed": renew, "absent": release}[module.params["state"]]
    try:
        if module.check_mode:  # nothing is written, not even the flock file
            previous = read_mark(state_dir, LOCK_MARK)
            result = act(module, previous)
        else:
            prepare_state_dir(state_dir)
            if act is renew:  # keep_lock holds the flock itself
                previous = read_mark(state_dir, LOCK_MARK)
                result = renew(module, previous)
            elif act is release:  # so does release_lock
                previous = release_lock(state_dir, module.params["run_id"], check_mode=False)
                result = release(module, previous)
            else:
                with lock_guard(state_dir):
                    previous = read_mark(state_dir, LOCK_MARK)
                    result = act(module, previous)
            if module.params["wait_job_id"] and result["held"]:  # waited for outside the flock
                waited = wait_for_job(module.params)
                result.update(waited, msg="%s; %s" % (result["msg"], waited["msg"]))
    except JobError as exc:
        module.fail_json(msg=str(exc), held=True)
    except LockLost as exc:
        module.fail_json(msg="%s; this run stopped waiting" % exc, held=False, lock_lost=str(exc))
    except StateDirError as exc:
        module.fail_json(msg=str(exc), held=False)
    except MarkError as exc:
        module.fail_json(msg="%s; the lock's holder is unknown, so no run may take it" % exc, held=False)
    except OSError as exc:
        module.fail_json(msg="cannot lock %s: %s%s" % (state_dir, exc.strerror,
                                                       " (run as root, with become)" if exc.errno in (1, 13) else ""),
                         held=False)
    module.exit_json(previous=previous, **result)


if __name__ == "__main__":
    main()
