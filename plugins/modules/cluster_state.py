#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_state
short_description: Record on a KVM host that a rolling maintenance run disabled its cluster, or clear that record
version_added: 0.1.0
description:
  - A rolling maintenance run disables each cluster while it works on it. The record of that lives with the
    hosts (C(cluster.json) in O(state_dir) on every host of the cluster), so a later run, from another
    controller too, knows which cluster an interrupted run left disabled and can enable it again.
  - With O(state=disabled) the mark is written (naming the cluster, the run and since when). With
    O(state=enabled) it is removed, but only when it was written by O(run_id), unless O(force=true); another
    run's mark is left alone and reported.
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
      - Nothing is written or removed, nor the lock released; the result says what would change. O(holds_lock)
        is not checked, since a check run takes no lock.
options:
  state:
    description: V(disabled) writes the mark, V(enabled) removes it.
    type: str
    required: true
    choices: [disabled, enabled]
  cluster:
    description: The cluster's name.
    type: str
    required: true
  run_id:
    description: The run that disables or enables the cluster.
    type: str
    required: true
  force:
    description: With O(state=enabled), remove a mark written by another run too.
    type: bool
    default: false
  release_lock:
    description:
      - With O(state=enabled), also release the lock O(run_id) holds on the host, as M(kvmops.rolling.run_lock) with
        O(kvmops.rolling.run_lock#module:state=absent) does, in the same call. For the end of a cluster the run is
        done with. Another run's lock is left alone.
      - With O(holds_lock), a run that no longer holds the lock changes nothing.
    type: bool
    default: false
notes:
  - Supports check mode; then nothing is written and the result says what would change.
seealso:
  - module: kvmops.rolling.run_lock
    description: The lock of the cluster, which O(release_lock) releases as the run is done with the cluster.
  - module: kvmops.rolling.hypervisor_info
    description: Reports the mark (its C(cluster_mark)) with the rest of the host's state.
  - module: kvmops.rolling.run_recovery
    description: Finds the clusters an interrupted run left disabled, to enable them again.
"""

EXAMPLES = r"""
- name: Record that run 20261124T2200Z disabled cluster c1
  kvmops.rolling.cluster_state:
    state: disabled
    cluster: c1
    run_id: 20261124T2200Z
"""

RETURN = r"""
lock_lost:
  description: With O(holds_lock), why the run no longer holds the lock of the host's cluster; the mark was left as it is.
  returned: when the run lost its lock
  type: str
previous:
  description: The mark found before the task (null when there was none).
  returned: always
  type: dict
  sample: {"cluster": "c1", "run_id": "20261124T2200Z", "since": 1795555000.0}
  contains:
    cluster:
      description: The cluster the run disabled.
      type: str
      sample: c1
    run_id:
      description: The run that disabled it.
      type: str
      sample: 20261124T2200Z
    since:
      description: When it did (seconds since the epoch).
      type: float
      sample: 1795555000.0
    corrupt:
      description:
        - True when the mark could not be read (unreadable, or not valid JSON); it is then the only key. Only with
          O(state=enabled) and O(force=true), which remove such a mark; otherwise the task fails.
      returned: when the mark found could not be read
      type: bool
disabled:
  description: Whether the host's cluster is marked disabled after the task.
  returned: always
  type: bool
released:
  description: With O(release_lock), whether the run's lock on the host was released.
  returned: when O(release_lock) is true and the run did not lose its lock
  type: bool
msg:
  description: What happened.
  returned: always
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import fail_from
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import (
    CLUSTER_MARK,
    MarkError,
    StateDirError,
    prepare_state_dir,
    step_lock_lost,
    read_mark,
    release_lock,
    remove_mark,
    write_mark,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import DEFAULT_STATE_DIR


def main() -> None:
    module = AnsibleModule(argument_spec={
        "state": {"type": "str", "required": True, "choices": ["disabled", "enabled"]},
        "cluster": {"type": "str", "required": True},
        "run_id": {"type": "str", "required": True},
        "force": {"type": "bool", "default": False},
        "release_lock": {"type": "bool", "default": False},
        "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
        "holds_lock": {"type": "bool", "default": False},
    }, supports_check_mode=True)
    params = module.params
    state_dir = params["state_dir"]
    try:
        previous = read_mark(state_dir, CLUSTER_MARK)
    except MarkError as exc:
        if params["state"] == "disabled" or not params["force"]:
            fail_from(module, exc)
        previous = {"corrupt": True}
    ours = previous is not None and previous.get("run_id") == params["run_id"]
    lost = step_lock_lost(params, module.check_mode)
    if lost:
        module.exit_json(changed=False, previous=previous, disabled=ours, lock_lost=lost,
                         msg="the cluster's mark was left as it is: %s" % lost)
    if params["state"] == "disabled":
        if ours:
            module.exit_json(changed=False, previous=previous, disabled=True, msg="already disabled by this run")
        if not module.check_mode:
            try:
                prepare_state_dir(state_dir)
            except StateDirError as exc:
                fail_from(module, exc)
            write_mark(state_dir, CLUSTER_MARK, {"cluster": params["cluster"], "run_id": params["run_id"],
                                                 "since": time.time()})
        module.exit_json(changed=True, previous=previous, disabled=True,
                         msg="cluster %s disabled by run %s" % (params["cluster"], params["run_id"]))
    if previous is None:
        result = {"changed": False, "previous": None, "disabled": False, "msg": "the cluster was not disabled"}
    elif not ours and not params["force"]:
        result = {"changed": False, "previous": previous, "disabled": True,
                  "msg": "left disabled: run %s disabled it, not run %s" % (previous.get("run_id"), params["run_id"])}
    else:
        if not module.check_mode:
            remove_mark(state_dir, CLUSTER_MARK)
        result = {"changed": True, "previous": previous, "disabled": False,
                  "msg": "cluster %s enabled again" % params["cluster"]}
    if params["release_lock"]:
        try:
            lock = release_lock(state_dir, params["run_id"], module.check_mode)
        except OSError as exc:
            result["msg"] = "%s; the lock of %s could not be released: %s" % (result["msg"], state_dir, exc.strerror)
            module.fail_json(**result)
        result["released"] = lock is not None and lock.get("run_id") == params["run_id"]
        result["changed"] = result["changed"] or result["released"]
        if result["released"]:
            result["msg"] += "; the run's lock released"
    module.exit_json(**result)


if __name__ == "__main__":
    main()
