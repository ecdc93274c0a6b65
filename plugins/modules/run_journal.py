#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_journal
short_description: Keep on a KVM host its record in the rolling maintenance run that works on it
version_added: 0.2.0
description:
  - After each step on a host (a stage, the evacuation, leaving maintenance, the end) the run writes the host's
    record to C(last_run.json) in O(state_dir), atomically. When the run is interrupted (controller killed, ssh cut,
    laptop closed), the next run started with C(rm_resume=true) reads it and goes on from the step after the last one
    recorded, so no host is updated twice and no stage that ended is run again.
  - Writing the record also renews the run's lock on the host (see M(kvmops.rolling.run_lock)).
author:
  - kvmops.rolling engineers (@kvmops)
extends_documentation_fragment:
  - kvmops.rolling.rolling
  - kvmops.rolling.rolling.state_dir
  - kvmops.rolling.rolling.holds_lock
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Nothing is written, and the task reports the change it would make. O(holds_lock) is not checked and the
        lock is not renewed, since a check run takes no lock.
options:
  run_id:
    description: The run the record belongs to.
    type: str
    required: true
  record:
    description: The host's record in the run (status, stages, evacuation, start, end, ...), as the report shows it.
    type: dict
    required: true
notes:
  - Supports check mode; then nothing is written.
seealso:
  - module: kvmops.rolling.run_recovery
    description: Reads the records kept here to resume an interrupted run (O(kvmops.rolling.run_recovery#module:resume)).
  - module: kvmops.rolling.hypervisor_info
    description: Reports the record kept on the host (RV(kvmops.rolling.hypervisor_info#module:hypervisor.last_run)).
  - module: kvmops.rolling.run_lock
    description: The lock that writing the record renews.
"""

EXAMPLES = r"""
- name: Keep the host's record on the host
  kvmops.rolling.run_journal:
    run_id: "{{ rm_run_id }}"
    record: "{{ rm_record }}"
"""

RETURN = r"""
lock_lost:
  description: With O(holds_lock), why the run no longer holds the lock of the host's cluster; the step was refused.
  returned: when the run lost its lock
  type: str
  sample: "the lock of cluster c1 was taken over by run 20261125T010000Z-77, started ..."
previous_run_id:
  description: The run of the record found before the task (null when there was none).
  returned: always
  type: str
msg:
  description: What happened.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import fail_from
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import step_lock_lost
from ansible_collections.kvmops.rolling.plugins.module_utils._record import RecordError, keep_record, recorded_run_id
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import DEFAULT_STATE_DIR


def main() -> None:
    module = AnsibleModule(argument_spec={
        "run_id": {"type": "str", "required": True},
        "record": {"type": "dict", "required": True},
        "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
        "holds_lock": {"type": "bool", "default": False},
    }, supports_check_mode=True)
    params = module.params
    lost = step_lock_lost(params, module.check_mode)
    if lost:
        module.exit_json(changed=False, lock_lost=lost, msg="the record was not written: %s" % lost)
    previous = recorded_run_id(params["state_dir"])
    if not module.check_mode:
        try:
            keep_record(params["state_dir"], params["run_id"], params["record"])
        except RecordError as exc:
            fail_from(module, exc)
    module.exit_json(changed=True, previous_run_id=previous,
                     msg="record of run %s kept (status %s)" % (params["run_id"], params["record"].get("status")))


if __name__ == "__main__":
    main()
