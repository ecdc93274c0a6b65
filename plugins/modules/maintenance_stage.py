#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: maintenance_stage
short_description: Run one rolling-maintenance stage script on a KVM host
version_added: 0.1.0
description:
  - Runs the host's script for one stage of a rolling maintenance (C(PreFlight), C(PreMaintenance),
    C(Maintenance) or C(PostMaintenance)) and reports how it ended.
  - The script is looked up in O(hooks_dir) as C(Stage), C(Stage.sh) or C(Stage.py). No script means the
    stage is skipped as a success; more than one is an error ("one script per stage").
  - A script must be a regular executable file inside O(hooks_dir) (a link may only point inside it), not
    writable by group or others, and owned by root or by the connecting user. The hooks dir (its links resolved)
    and every directory above it must be owned by root or the connecting user and not writable by group or
    others (a root-owned parent with the sticky bit, such as C(/tmp), excepted).
  - The script is opened once, vetted through that open file and executed from it (C(/proc/self/fd/N)), so a file
    swapped in under its name after the check never runs; C($0) of a script with an interpreter line is that
    path, and C(RM_SCRIPT) holds the script's own.
  - The script's arguments are the words of O(payload), split the way a POSIX shell splits words; no shell
    ever interprets the payload. Its environment carries C(RM_STAGE), C(RM_RUN_ID), C(RM_HOST), C(RM_CLUSTER),
    C(RM_PAYLOAD), C(RM_JOB_ID) and C(RM_SCRIPT); its stdin is C(/dev/null); its output is kept in the job's
    directory under O(state_dir), each stream capped at its first and last 2 MiB with a line saying how much was
    dropped between (RV(output_dropped)), and the result holds its tail. Old jobs are pruned by count (200) and
    by size (64 MiB together).
  - Exit 0 is success. Exit 70 in C(PreFlight) or C(PreMaintenance) means the host needs no maintenance;
    in a later stage it is a success. Any other exit, or death by a signal, is a failure.
  - The action plugin of the same name drives the run. With the C(service) executor the script runs
    detached from the connection and its result is written atomically to the root-only O(state_dir), so a
    dropped connection, a controller restart or a host reboot never loses it; the controller polls every
    O(ping_interval) seconds and notices completion at once. A host that reboots during the stage is
    recognised by its new boot id and the stage ends as C(rebooted), whether it was reset or shut down
    gracefully (C(systemctl reboot) sends SIGTERM to everything first; only a cancel the controller recorded
    first counts as a cancel).
  - A script that succeeds but leaves a reboot pending (C(shutdown -r +1), C(systemd-run --on-active=5 systemctl
    reboot)) has not ended its stage; it ends as C(rebooted) once the host is back, within O(stage_timeout),
    and as C(timeout) if the host has not gone down by then. Pending reboots are read from systemd (its
    scheduled-shutdown file, queued shutdown jobs, timers that run a shutdown command).
  - After O(stage_timeout) seconds the script's whole process group (and anything it left below it) gets
    SIGTERM, then SIGKILL five seconds later, and the stage ends as C(timeout).
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
      - The action calls the module on the host once. The script is looked up and vetted but not run, and no job
        is started; RV(status) is V(would_run) (V(skipped) when the stage has no script), which counts as a success.
      - With O(leave_maintenance) the host's mark is not removed; with O(read_hypervisor) the host is still read,
        which changes nothing. The record is not kept on the host and O(holds_lock) is not checked, since a check
        run takes no lock.
options:
  stage:
    description: The stage whose script runs.
    type: str
    required: true
    choices: [PreFlight, PreMaintenance, Maintenance, PostMaintenance]
  payload:
    description:
      - Extra arguments appended to the script invocation, split into words like a POSIX shell does,
        with quotes and backslashes honoured. C($(...)), C(${...}) and backquotes reach the script literally.
      - Unquoted control operators (C(;) C(&) C(|) C(<) C(>) C(\() C(\))), an unquoted line break and a word
        starting with C(#) are refused before anything runs, as is a payload over 120 KiB, one with a NUL byte, and
        one that is not UTF-8 text (module arguments reach the host as UTF-8).
    type: str
    default: ""
  hooks_dir:
    description: Directory of the host's stage scripts.
    type: path
    default: /etc/kvm-rolling-maintenance/hooks
  state_dir:
    description: Root-only directory where jobs, their output and their results are kept.
    type: path
    default: /var/lib/kvm-rolling-maintenance
  executor:
    description:
      - C(service) runs the script detached from the connection; it survives a dropped connection, a
        controller restart and, for its result, a host reboot. Where systemd is PID 1 its runner moves into a
        transient scope unit of its own (C(kvm-rolling-maintenance-JOB.scope)), so logind ending the ssh session
        (C(KillUserProcesses=yes), C(loginctl terminate-session)) does not end it; elsewhere it is a detached
        process.
      - C(agent) runs it attached to the module's connection; if the connection is lost, the outcome is
        reported as unknown (failed).
    type: str
    default: service
    choices: [service, agent]
  stage_timeout:
    description: Seconds the stage may take, wall clock, all of it counted. Must not be lower than O(ping_interval).
    type: int
    default: 1800
  ping_interval:
    description: Seconds between status polls of a running stage. Completion is noticed at once regardless.
    type: int
    default: 10
  run_id:
    description: Identifier of the rolling maintenance run this stage belongs to. Generated when omitted.
    type: str
  host_name:
    description: Host name given to the script as C(RM_HOST). Defaults to the inventory host name.
    type: str
  cluster:
    description: Cluster name given to the script as C(RM_CLUSTER).
    type: str
    default: ""
  leave_maintenance:
    description:
      - When the stage has ended, whatever its result (also when it was refused, cancelled or the host rebooted),
        take the host out of maintenance as M(kvmops.rolling.host_maintenance) with O(kvmops.rolling.host_maintenance#module:state=absent)
        does (an evacuation still running is stopped first). RV(left_maintenance) says what happened. For the
        C(Maintenance) stage of a host in maintenance, which leaves it next.
    type: bool
    default: false
  read_hypervisor:
    description:
      - When the stage has ended and succeeded, read the host as M(kvmops.rolling.hypervisor_info) does, in the same
        call, and return it as RV(hypervisor). For the C(PreMaintenance) stage, after which the run checks again on
        fresh libvirt data that the host can be evacuated.
    type: dict
    suboptions:
      uri:
        description: The libvirt connection URI.
        type: str
        default: qemu:///system
      shared_storage_paths:
        description: As M(kvmops.rolling.hypervisor_info)'s O(kvmops.rolling.hypervisor_info#module:shared_storage_paths).
        type: list
        elements: path
        default: []
      timeout:
        description: Seconds libvirt gets to answer; past them the host counts as unreadable (RV(hypervisor_error)).
        type: int
        default: 120
  rebooted_ok:
    description:
      - Whether a host reboot during the stage counts as success.
      - When unset, it does for C(Maintenance) (patch-and-reboot is its normal job) and does not for the others.
    type: bool
  secret_env:
    description:
      - Environment variables given to the script on top of its own (a credential for a package mirror, say), names
        not starting with C(RM_). Their values are written nowhere on the host (the runner keeps them in memory) nor
        in any result; wherever one would leave the host, in the output tails or a message, it is replaced by
        C(********). Unlike O(payload), which is the script's argv and shows in C(ps), they are visible only to
        root (C(/proc/PID/environ)).
    type: dict
    default: {}
notes:
  - Supports check mode; then no script runs and the result says what would run.
  - The module must be run by root or by the owner of O(state_dir).
seealso:
  - module: kvmops.rolling.host_maintenance
    description: Evacuates the host before its C(Maintenance) stage and takes it out of maintenance after.
  - module: kvmops.rolling.hypervisor_info
    description: Vets the stage scripts without running them (O(kvmops.rolling.hypervisor_info#module:hooks_dir)).
  - module: kvmops.rolling.run_journal
    description: Keeps the host's record between steps, as O(record) does at the end of the stage.
  - name: systemd.scope
    description: The transient scope unit the C(service) executor runs its runner in.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd.scope.html
"""

EXAMPLES = r"""
- name: Run the PreFlight check of every host
  kvmops.rolling.maintenance_stage:
    stage: PreFlight
    payload: 'kernel=6.1.0-27 "reason=monthly patching"'

- name: Patch and reboot, giving the script an hour
  kvmops.rolling.maintenance_stage:
    stage: Maintenance
    stage_timeout: 3600
    ping_interval: 15
  register: maintenance
  failed_when: not maintenance.succeeded
"""

RETURN = r"""
left_maintenance:
  description: With O(leave_maintenance), how leaving maintenance went once the stage ended.
  returned: when O(leave_maintenance) is true and the stage ended
  type: dict
  contains:
    status:
      description: V(ok) when the host is out of maintenance (or was not in it), V(failed) when it could not leave it.
      type: str
    in_maintenance:
      description: Whether the host is still in maintenance.
      type: bool
    msg:
      description: What happened.
      type: str
    changed:
      description: Whether the host left maintenance or an evacuation was stopped (in check mode, whether it would).
      returned: when V(ok)
      type: bool
    stopped_evacuations:
      description: The evacuation jobs still running on the host that were cancelled (and waited for) first.
      returned: when V(ok)
      type: list
      elements: str
    mark:
      description:
        - The maintenance mark that was removed (C(maintenance.json) in O(state_dir)).
        - Its keys are those of RV(kvmops.rolling.hypervisor_info#module:hypervisor.maintenance), as described there.
      returned: when the host was in maintenance
      type: dict
hypervisor:
  description:
    - With O(read_hypervisor), the host as M(kvmops.rolling.hypervisor_info) returns it (its RV(kvmops.rolling.hypervisor_info#module:hypervisor)).
    - Its keys are those of RV(kvmops.rolling.hypervisor_info#module:hypervisor), as described there.
  returned: when O(read_hypervisor) was given and the stage ended and succeeded, and the host could be read
  type: dict
hypervisor_error:
  description: With O(read_hypervisor), why the host could not be read.
  returned: when O(read_hypervisor) was given and the stage ended and succeeded, and the host could not be read
  type: str
record:
  description: The host's record (option O(record)) with the stage's summary under C(stages), closed when the result
    ends the host's turn (see O(record)).
  returned: when O(record) was given
  type: dict
  contains:
    host:
      description: The host's inventory name.
      type: str
      sample: hv1
    cluster:
      description: The host's cluster, as the run names it.
      type: str
      sample: c1
    status:
      description:
        - V(in_progress) while the host's turn goes on.
        - Once it has ended, V(updated) (every stage that ran succeeded), V(planned) (the same, in check mode), V(skipped)
          (the host needed no maintenance) or V(failed).
      type: str
      sample: in_progress
    kind:
      description:
        - How the turn ended, for a host skipped or failed. V(skip), V(failure), V(postfailure) (C(PostMaintenance) failed),
          V(critical) (a guest runs on two hosts) or V(lost_lock) (the run no longer holds its lock).
      returned: when the turn ended with the host skipped or failed
      type: str
    stage:
      description:
        - Where the turn of a host skipped or failed ended, a stage or a step such as C(maintenance mode).
        - Empty otherwise.
      type: str
    reason:
      description: Why the host was skipped or failed; empty otherwise.
      type: str
    aborts_run:
      description:
        - Whether that outcome aborts the run. A failure does unless C(rm_forced); a guest on two hosts or a lost lock
          always does.
      returned: when the turn ended with the host skipped or failed
      type: bool
    start:
      description: When the host's maintenance began, after C(PreFlight) (UTC, ISO 8601); empty before.
      type: str
      sample: '2026-11-24T22:14:03Z'
    end:
      description: When the host's turn ended (UTC, ISO 8601); empty while it goes on.
      type: str
    stages:
      description:
        - Stage name to what the record keeps of the stage, for each stage the host went through.
        - 'Each key is a stage''s name; each value (dict):'
        - One key per stage the host went through, V(PreFlight), V(PreMaintenance), V(Maintenance) or V(PostMaintenance).
        - The value is the stage's summary, as RV(kvmops.rolling.maintenance_stage#module:summary).
      type: dict
    evacuation:
      description: What the record keeps of the host's evacuation.
      returned: once the host's evacuation was tried
      type: dict
      contains:
        status:
          description: How the evacuation ended, as RV(kvmops.rolling.host_maintenance#module:status).
          type: str
          sample: ok
        moves:
          description:
            - Each planned guest with how its move ended (C(vm), C(uuid), C(target), C(status), C(seconds), C(error)),
              as RV(kvmops.rolling.host_maintenance#module:moves).
            - In check mode, the planned moves.
          returned: when the evacuation ran, and in check mode
          type: list
          elements: dict
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
          description: Guests a half-failed migration left running on the host and on its target, left untouched.
          returned: when the evacuation ran
          type: list
          elements: str
        msg:
          description: What happened, in one line.
          type: str
        duration:
          description: Seconds the evacuation took on the host.
          returned: when the evacuation ran
          type: float
        elapsed:
          description: Seconds from the start of the task until the controller saw the evacuation end.
          returned: when the evacuation ran, but not in the record the host keeps as the evacuation ends
          type: float
        adopted:
          description: True when the evacuation an interrupted run had started was followed instead of started again.
          returned: when an evacuation was adopted
          type: bool
record_kept:
  description: Whether the record was kept on the host when the step ended.
  returned: when O(record) was given and the step ended, not in check mode
  type: bool
record_error:
  description: Why the record could not be kept on the host (the step's own result stands).
  returned: when RV(record_kept) is false
  type: str
output_dropped:
  description: Bytes of each stream (C(stdout), C(stderr)) dropped from the middle of its log on the host to keep it
    within its cap.
  returned: when the script ran
  type: dict
  sample:
    stdout: 734003200
    stderr: 0
  contains:
    stdout:
      description: Bytes dropped from the standard output's log.
      type: int
    stderr:
      description: Bytes dropped from the standard error's log.
      type: int
lock_lost:
  description: With O(holds_lock), why the run no longer holds the lock of the host's cluster; the step was refused.
  returned: when the run lost its lock
  type: str
  sample: the lock of cluster c1 was taken over by run 20261125T010000Z-77, started ...
status:
  description:
    - How the stage ended. C(ok), C(no_maintenance) (exit 70 in PreFlight or PreMaintenance), C(skipped) (no script),
      C(failed), C(timeout), C(rebooted); C(would_run) in check mode.
  returned: always
  type: str
  sample: ok
succeeded:
  description: Whether the run may go on with this host (a C(rebooted) counts per O(rebooted_ok)).
  returned: always
  type: bool
  sample: true
rc:
  description:
    - The script's exit code; null when it was killed or did not end by itself.
    - ansible-core 2.19 and later leave a null C(rc) out of a task's result; C(summary.rc) always has it.
  returned: always
  type: int
  sample: 0
signal:
  description: Name of the signal that ended the script, if one did.
  returned: always
  type: str
  sample: SIGKILL
duration:
  description: Seconds the stage took on the host.
  returned: when a script ran
  type: float
  sample: 12.48
stdout_tail:
  description: The last 8 KiB of the script's standard output.
  returned: always
  type: str
stderr_tail:
  description: The last 8 KiB of the script's standard error.
  returned: always
  type: str
script:
  description: Path of the stage script; null when the stage has none.
  returned: always
  type: str
  sample: /etc/kvm-rolling-maintenance/hooks/Maintenance.sh
argv:
  description: The script's argument vector (the script, then the payload words).
  returned: always
  type: list
  elements: str
job_id:
  description: Identifier of the job on the host; its files are in O(state_dir)/jobs/<job_id>.
  returned: when a script ran
  type: str
adopted:
  description:
    - True when the run (O(run_id)) had already started this stage on the host, before it was interrupted, and that job
      still ran or had succeeded; it was followed instead of running the script again.
  returned: when a job was adopted
  type: bool
run_id:
  description: The run the stage belongs to.
  returned: always
  type: str
started_at:
  description: Unix time the script started.
  returned: when a script ran
  type: float
ended_at:
  description: Unix time the stage ended.
  returned: when a script ran
  type: float
boot_id:
  description: The host's boot id when the stage ended (or was last seen running).
  returned: when a script ran
  type: str
stdout_log:
  description: Path of the full standard output on the host.
  returned: when the script ended by itself, timed out or was cancelled
  type: str
stderr_log:
  description: Path of the full standard error on the host.
  returned: when the script ended by itself, timed out or was cancelled
  type: str
elapsed:
  description: Seconds from the start of the task until the controller saw the stage end.
  returned: always
  type: float
summary:
  description: What a report keeps of the stage (status, succeeded, rc, signal, duration, elapsed, started_at, ended_at,
    reconnects, adopted, script, stdout_tail, stderr_tail, msg).
  returned: always
  type: dict
  contains:
    status:
      description: How the stage ended, as RV(kvmops.rolling.maintenance_stage#module:status).
      type: str
      sample: ok
    succeeded:
      description: Whether the run may go on with the host after the stage.
      type: bool
    rc:
      description: The script's exit code; null when it was killed, did not end by itself, or no script ran.
      type: int
    signal:
      description: Name of the signal that ended the script; null when none did.
      type: str
    duration:
      description: Seconds the stage took on the host; null when no script ran.
      type: float
    elapsed:
      description: Seconds from the start of the task until the controller saw the stage end; null in check mode.
      type: float
    started_at:
      description: Unix time the script started; null when no script ran.
      type: float
    ended_at:
      description: Unix time the stage ended; null when no script ran.
      type: float
    script:
      description: Path of the stage script; null when the stage has none.
      type: str
    stdout_tail:
      description: The last 8 KiB of the script's standard output.
      type: str
    stderr_tail:
      description: The last 8 KiB of the script's standard error.
      type: str
    msg:
      description: What happened, in one line.
      type: str
    reconnects:
      description: How many times the controller had to reconnect to the host while the stage ran; null in check mode.
      type: int
    adopted:
      description:
        - True when the stage an interrupted run had started was followed instead of run again.
        - Null otherwise.
      type: bool
reconnects:
  description: How many times the controller had to reconnect to the host while the stage ran.
  returned: always
  type: int
msg:
  description: What happened, in one line.
  returned: always
  type: str
"""

import os
import time
import uuid
from typing import Any, Dict, List, Optional

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    STAGE_ARGUMENT_SPEC,
    STATUS_FAILED,
    STATUS_RUNNING,
    STATUS_SKIPPED,
    STATUS_WOULD_RUN,
    allowed_script_owners,
    checked_secret_env,
    mask_secrets,
    open_stage_script,
    split_payload,
    stage_environment,
    stage_succeeded,
    validate_timing,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._hypervisor import (
    READ_HYPERVISOR_ARGUMENT_SPEC,
    hypervisor_at_stage_end,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._jobs import (
    JOB_ARGUMENT_SPEC,
    JobError,
    JobStore,
    adoptable_job,
    as_run_by_this_process,
    cancel,
    checked_job_id,
    current_boot_id,
    poll,
    start_detached,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._maintenance_mode import (
    LEAVE_ARGUMENT_SPEC,
    left_maintenance_at_stage_end,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import keep_lock, step_lock_lost
from ansible_collections.kvmops.rolling.plugins.module_utils._record import (
    RECORD_ARGUMENT_SPEC,
    record_kept_at_step_end,
    record_after_stage,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage_runner import (
    ConnectionCheck,
    connection_watch,
    execute,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import LOCK_RENEW_SECONDS


def lock_kept_while(connection_gone: ConnectionCheck, params: Dict[str, Any]) -> ConnectionCheck:
    """The check of an attached runner (agent executor), which no poll renews the lock for: it renews the run's
    lock every LOCK_RENEW_SECONDS meanwhile, and a lock lost ends the stage as a lost connection does."""
    renewed = [time.monotonic()]

    def gone() -> Optional[str]:
        if params["holds_lock"] and time.monotonic() - renewed[0] >= LOCK_RENEW_SECONDS:
            renewed[0] = time.monotonic()
            lost = keep_lock(params["state_dir"], params["run_id"])
            if lost:
                return "this run no longer holds its lock: %s" % lost
        return connection_gone()
    return gone


def start(module: AnsibleModule, job_id: str) -> Dict[str, Any]:
    params = module.params
    stage = params["stage"]
    argv_tail = split_payload(params["payload"])
    opened = open_stage_script(params["hooks_dir"], stage, allowed_script_owners())
    if opened is None:
        return {"status": STATUS_SKIPPED, "script": None, "argv": [], "rc": None, "signal": None,
                "stdout_tail": "", "stderr_tail": "", "changed": False,
                "msg": "no %s script in %s: stage skipped" % (stage, params["hooks_dir"])}
    script, script_fd = opened
    try:
        return run_script(module, job_id, script, script_fd, argv_tail)
    finally:
        os.close(script_fd)  # the runner has its own copy


def run_script(module: AnsibleModule, job_id: str, script: str, script_fd: int,
               argv_tail: List[str]) -> Dict[str, Any]:
    """Run the vetted script open on ``script_fd`` as the stage's job (or follow the job already run for it)."""
    params = module.params
    stage = params["stage"]
    argv = [script] + argv_tail
    if module.check_mode:
        return {"status": STATUS_WOULD_RUN, "script": script, "argv": argv, "rc": None, "signal": None,
                "stdout_tail": "", "stderr_tail": "", "changed": True,
                "msg": "check mode: would run %s with %d payload argument(s)" % (script, len(argv_tail))}
    store = JobStore(params["state_dir"])
    store.prepare()
    if os.path.isdir(store.job_dir(job_id)):
        # A retried start whose first attempt got through: follow that job, never run it twice.
        status, fields = poll(store, job_id, params["_wait"])
        return dict(fields, status=status, argv=argv)
    adopted = adoptable_job(store, params["run_id"], "%s stage" % stage,
                            lambda status: stage_succeeded(status, stage, params["rebooted_ok"]))
    if adopted is not None:
        # A resumed run: this stage already ran (or still runs) for the run; follow it, never run it twice.
        status, fields = poll(store, adopted, params["_wait"])
        return dict(fields, status=status, adopted=True)
    boot_id = current_boot_id()
    busy = store.running_jobs(boot_id)
    if busy:
        other = busy[0]
        raise JobError("the %s of run %s (job %s) is still running on this host; one job at a time"
                       % (other["label"], other["run_id"], other["job_id"]))
    store.prune()
    os.mkdir(store.job_dir(job_id), 0o700)
    job = {"job_id": job_id, "run_id": params["run_id"], "kind": "stage", "label": "%s stage" % stage,
           "stage": stage, "script": script, "argv": argv,
           "created_at": time.time(), "boot_id": boot_id, "stage_timeout": params["stage_timeout"],
           "executor": params["executor"]}
    secret_env = checked_secret_env(params["secret_env"])
    env = stage_environment(os.environ, stage, params["run_id"], params["host_name"] or "",
                            params["cluster"], params["payload"], job_id, secret_env, script)
    secrets = list(secret_env.values())
    cwd = os.path.dirname(script)
    if params["executor"] == "agent":
        store.write_job(job_id, as_run_by_this_process(job))
        execute(store, job, argv, env, cwd, attached=lock_kept_while(connection_watch(), params), secrets=secrets,
                script_fd=script_fd)
    else:
        start_detached(store, job, lambda: execute(store, job, argv, env, cwd, secrets=secrets, script_fd=script_fd),
                       keep_fds=(script_fd,))
    status, fields = poll(store, job_id, params["_wait"])
    return dict(fields, status=status, argv=argv)


def main() -> None:
    module = AnsibleModule(argument_spec=dict(STAGE_ARGUMENT_SPEC, **JOB_ARGUMENT_SPEC, **RECORD_ARGUMENT_SPEC,
                                              **LEAVE_ARGUMENT_SPEC, **READ_HYPERVISOR_ARGUMENT_SPEC),
                           supports_check_mode=True)
    params = module.params
    params["run_id"] = params["run_id"] or uuid.uuid4().hex[:12]
    job_id = params["_job_id"] or "%s.%s.%s" % (params["run_id"], params["stage"], uuid.uuid4().hex[:8])
    failure: Optional[str] = None
    result: Dict[str, Any] = {}
    try:
        validate_timing(params["stage_timeout"], params["ping_interval"])
        checked_job_id(job_id)
        store = JobStore(params["state_dir"])
        lost = step_lock_lost(params, module.check_mode) if params["_mode"] != "cancel" else ""
        if lost and params["_mode"] == "start":
            result = {"status": STATUS_FAILED, "changed": False, "rc": None, "signal": None, "lock_lost": lost,
                      "msg": "the %s stage was not started: %s" % (params["stage"], lost)}
        elif params["_mode"] == "start":
            result = start(module, job_id)
            if params["executor"] == "agent" and result["status"] == STATUS_FAILED:
                # The attached runner stops the script when the lock is lost (lock_kept_while): say so as every
                # other step does, so the run stops.
                lost = step_lock_lost(params, module.check_mode)
                if lost:
                    result["lock_lost"] = lost
        elif params["_mode"] == "poll" and not lost:
            status, fields = poll(store, job_id, params["_wait"])
            result = dict(fields, status=status)
        else:
            status, fields = cancel(store, job_id)
            result = dict(fields, status=status)
            if lost:
                result.update(lock_lost=lost, msg="the %s stage was cancelled: %s" % (params["stage"], lost))
    except (ValueError, RollingError) as exc:
        failure = str(exc)
    except OSError as exc:
        failure = "%s: %s%s" % (exc.strerror, exc.filename or "",
                                " (run the stage as root, with become)" if exc.errno in (1, 13) else "")
    if failure is not None:
        module.fail_json(msg=failure, status="failed", stage=params["stage"], run_id=params["run_id"], job_id=job_id)
    result.setdefault("changed", True)
    result.setdefault("run_id", params["run_id"])
    result.setdefault("job_id", job_id)
    result["succeeded"] = stage_succeeded(result["status"], params["stage"], params["rebooted_ok"])
    # The runner masked the tails it wrote; a job settled later (its host rebooted) was read back raw.
    secrets = [str(value) for value in (params["secret_env"] or {}).values()]
    for key in ("stdout_tail", "stderr_tail", "msg"):
        if isinstance(result.get(key), str):
            result[key] = mask_secrets(result[key], secrets)
    if result["succeeded"] and result["status"] != STATUS_RUNNING:
        result.update(hypervisor_at_stage_end(params["read_hypervisor"], params["state_dir"]))
    if params["leave_maintenance"] and result["status"] != STATUS_RUNNING:
        result["left_maintenance"] = left_maintenance_at_stage_end(params["state_dir"], module.check_mode)
    if params["record"] is not None and not result.get("lock_lost") \
            and not (params["_mode"] == "cancel" and step_lock_lost(params, module.check_mode)):
        # A cancel is never refused, but keeps the record only while the run holds the lock.
        result.update(record_kept_at_step_end(params["state_dir"], params["run_id"], result["status"],
                                              record_after_stage(params["record"], params["stage"], result,
                                                                 params["forced"], module.check_mode),
                                              module.check_mode))
    # Explicit: ansible-core 2.19+ takes a result with a non-zero rc and no "failed" for a failure, and
    # a script's exit code (70 included) is the stage's business, not the module's.
    module.exit_json(failed=False, **result)


if __name__ == "__main__":
    main()
