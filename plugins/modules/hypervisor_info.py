#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: hypervisor_info
short_description: Gather a KVM host's libvirt inventory for rolling maintenance
version_added: 0.1.0
description:
  - Reads, through libvirt, what a rolling maintenance needs to plan a KVM host's evacuation. That is the
    node's CPUs and memory, and for every domain (running or only defined) its state, vCPUs, configured memory,
    placement metadata and what keeps it from being live-migrated.
  - Placement metadata is read from each domain's C(<metadata>) in the namespace
    C(urn:kvmops:rolling:placement:1) (C(<host-tag>) and C(<anti-affinity-group>) elements); see
    C(docs/placement-metadata.md) in the collection for the format and the C(virsh metadata) commands that set it.
  - A running domain is read from its live XML, a shut-off one from its persistent configuration.
  - A domain cannot be live-migrated when it has host devices passed through (C(<hostdev>),
    C(<interface type='hostdev'>)) or a disk (or backing file) that is a host path outside
    O(shared_storage_paths); network disks (rbd, iSCSI, NBD, Gluster, ...) count as shared.
  - Also reports whether the host is in maintenance, from the state file C(maintenance.json) in O(state_dir)
    that the collection's maintenance module writes, and whether a rolling maintenance run disabled its
    cluster (C(cluster.json)).
  - The node's free memory as libvirt reports it is deliberately left out; compute it from the node's memory
    and the domains.
  - Changes nothing; the connection to libvirt is read-only.
author:
  - kvmops.rolling engineers (@kvmops)
extends_documentation_fragment:
  - kvmops.rolling.rolling
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: It only reads (libvirt over a read-only connection, the state files), so check mode gives the same result.
requirements:
  - libvirt-python (Debian package C(python3-libvirt)) on the managed host
options:
  uri:
    description:
      - The libvirt connection URI.
      - The default reaches the host's own system libvirtd, which is what the module is meant for.
    type: str
    default: qemu:///system
  shared_storage_paths:
    description:
      - Host paths under which disk images are on storage that every host of the cluster mounts at the same
        place (NFS, CephFS, a cluster file system, multipath devices of a shared LUN).
      - A C(file), C(block) or C(dir) disk whose source is not under one of them is local to the host and keeps its
        domain from being live-migrated. With the default, every such disk is local.
      - Paths are compared as given, after normalisation; symbolic links are not resolved.
    type: list
    elements: path
    default: []
  state_dir:
    description: The collection's root-only state directory on the host, where C(maintenance.json) is read from.
    type: path
    default: /var/lib/kvm-rolling-maintenance
  hooks_dir:
    description:
      - Where the host's stage scripts are. When set, RV(hypervisor.stage_scripts) says which stages have a script
        that would run, vetted as M(kvmops.rolling.maintenance_stage) vets it (nothing runs), and
        RV(hypervisor.stage_script_problems) why a script, or the hooks dir, must not run.
    type: path
notes:
  - Run it as root (C(become=true)) or as a user allowed to use the libvirt socket and to read O(state_dir).
  - A domain with malformed placement metadata (an unknown element in the namespace, an empty tag) is reported
    with the problem as a migration blocker, so it is never moved against its constraints.
  - Transitional states (see RV(hypervisor.domains[].transitional)) follow libvirt's state reasons and the job
    libvirt runs on the domain; a VM paused by the user is not transitional, one paused by an I/O error is, and so
    is the source of a live migration, which libvirt still reports as running.
seealso:
  - module: kvmops.rolling.capacity_plan
    description: Plans the evacuation of the hosts from what this module gathered.
  - module: kvmops.rolling.run_recovery
    description: Judges the locks, marks, jobs and records this module reports.
  - module: kvmops.rolling.maintenance_stage
    description: Runs the stage scripts that RV(hypervisor.stage_scripts) vets.
  - name: libvirt domain XML, metadata
    description: Where the placement metadata lives in a domain's XML.
    link: https://libvirt.org/formatdomain.html#general-metadata
  - name: libvirt domain states and reasons
    description: The states and reasons that RV(hypervisor.domains[].state) and RV(hypervisor.domains[].state_reason) name.
    link: https://libvirt.org/html/libvirt-libvirt-domain.html#virDomainState
"""

EXAMPLES = r"""
- name: Read the libvirt inventory of every KVM host
  kvmops.rolling.hypervisor_info:
  become: true
  register: inventory

- name: Count disks on NFS and Ceph-backed paths as shared
  kvmops.rolling.hypervisor_info:
    shared_storage_paths:
      - /var/lib/libvirt/shared
      - /mnt/cephfs/vm-images
  become: true
  register: inventory

- name: Refuse to go on while a VM is migrating or in an error state
  ansible.builtin.assert:
    that: inventory.hypervisor.domains | selectattr('transitional') | list | length == 0
    fail_msg: >-
      {{ inventory_hostname }}: {{ inventory.hypervisor.domains | selectattr('transitional')
      | map(attribute='name') | join(', ') }} in a transitional state

- name: Show the VMs that cannot be live-migrated, with the reasons
  ansible.builtin.debug:
    msg: "{{ item.name }}: {{ item.migration_blockers | join('; ') }}"
  loop: "{{ inventory.hypervisor.domains | selectattr('active') | rejectattr('migration_blockers', 'equalto', []) }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
hypervisor:
  description: The host's libvirt inventory and maintenance state.
  returned: success
  type: dict
  contains:
    hostname:
      description: The host name libvirt reports.
      returned: success
      type: str
      sample: hv1.example.com
    uri:
      description: The URI of the connection, as libvirt canonicalised it.
      returned: success
      type: str
      sample: qemu:///system
    node:
      description: The node's capacity.
      returned: success
      type: dict
      contains:
        cpus:
          description: Number of active host CPUs (logical CPUs).
          returned: success
          type: int
          sample: 64
        memory_mib:
          description: The node's memory in MiB.
          returned: success
          type: int
          sample: 515797
        libvirt_version:
          description: Version of the libvirt library on the host.
          returned: success
          type: str
          sample: 9.0.0
    domains:
      description: Every domain defined or running on the host, sorted by name.
      returned: success
      type: list
      elements: dict
      contains:
        name:
          description: The domain's name.
          returned: success
          type: str
          sample: db01
        uuid:
          description: The domain's UUID.
          returned: success
          type: str
          sample: 6695eb01-f6a4-8304-79aa-97f2502e193f
        state:
          description:
            - libvirt's state of the domain, one of C(nostate), C(running), C(blocked), C(paused), C(shutdown) (being
              shut down), C(shutoff), C(crashed), C(pmsuspended).
          returned: success
          type: str
          sample: running
        state_reason:
          description:
            - Why the domain is in its state, libvirt's reason in lower case, for example C(booted), C(migrated), C(user),
              C(migration), C(ioerror), C(postcopy_failed), C(destroyed).
          returned: success
          type: str
          sample: booted
        active:
          description: Whether the domain is running (in any state but shut off).
          returned: success
          type: bool
          sample: true
        transitional:
          description:
            - Whether the domain is being migrated, saved, dumped, snapshotted, backed up, started or shut down, is suspended,
              or is stuck in an error state (paused on an I/O error or watchdog, crashed, failed post-copy migration).
              A libvirt job on an active domain makes it transitional whatever its state (its note names the job). Such
              a domain blocks its cluster's maintenance.
          returned: success
          type: bool
          sample: false
        persistent:
          description: Whether the domain has a persistent definition (a transient one exists only while it runs).
          returned: success
          type: bool
          sample: true
        vcpus:
          description: The domain's maximum number of vCPUs. Null if its XML could not be read.
          returned: success
          type: int
          sample: 4
        memory_mib:
          description:
            - The domain's configured maximum memory (C(<memory>)) in MiB, rounded up; what capacity planning counts.
              Null if its XML could not be read.
          returned: success
          type: int
          sample: 8192
        host_tags:
          description: Host tags the domain requires (sorted, unique); it may only run on a host that has all of them.
          returned: success
          type: list
          elements: str
          sample:
            - gpu
            - ssd
        anti_affinity_groups:
          description: Anti-affinity groups of the domain; no two running domains of a group may share a host.
          returned: success
          type: list
          elements: str
          sample:
            - db-primary
        migration_blockers:
          description:
            - Why the domain cannot be live-migrated, one line per reason naming the device or the metadata problem.
              Empty when it can.
          returned: success
          type: list
          elements: str
          sample:
            - 'disk vdb: local file /var/lib/libvirt/images/db01-data.qcow2 is not under a shared storage path'
        notes:
          description:
            - Facts worth knowing that do not block migration (transient domain, balloon, vCPUs offline, a libvirt job
              in progress).
          returned: success
          type: list
          elements: str
          sample:
            - 'memory balloon: 2048 MiB currently assigned of 8192 MiB configured; capacity counts 8192 MiB'
    maintenance:
      description:
        - The content of O(state_dir)/maintenance.json, which the collection writes while the host is in maintenance.
        - Null when the file does not exist (the host is not in maintenance).
      returned: success
      type: dict
      sample: null
      contains:
        run_id:
          description: The run that put the host into maintenance.
          type: str
          sample: 20261124T221000Z-4711
        host:
          description: The host's inventory name, as that run gave it.
          type: str
          sample: hv1
        job_id:
          description: The evacuation job (its files are in O(state_dir)/jobs/<job_id>).
          type: str
        state:
          description: V(evacuating) while the guests are being moved off, V(in_maintenance) once the host is empty.
          type: str
          sample: in_maintenance
        since:
          description: When the evacuation started (seconds since the epoch).
          type: float
          sample: 1795555000.0
        entered_at:
          description: When the host was empty and entered maintenance (seconds since the epoch).
          returned: when C(state) is V(in_maintenance)
          type: float
    cluster_mark:
      description:
        - The content of O(state_dir)/cluster.json, which a rolling maintenance run writes on every host of a cluster
          it disabled (the run id and since when).
        - Null when the file does not exist.
      returned: success
      type: dict
      sample:
        cluster: c1
        run_id: 20261124-2210
        since: 1795555000.0
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
    lock:
      description:
        - The content of O(state_dir)/lock.json, which a rolling maintenance run holds on every host of the clusters
          it works on, with C(age), seconds since the run last renewed it (by the host's clock, never counted from before
          the host's last boot), and C(renewed_at), when it did (seconds since the epoch). The holder's C(renew_interval)
          and C(threshold) (seconds) are in it too.
        - Null when no run holds the host's cluster.
      returned: success
      type: dict
      sample:
        cluster: c1
        run_id: 20261124T221000Z-4711
        started: '2026-11-24T22:10:00Z'
        controller:
          host: awx-1
          boot_id: 6b1c...
          pid: 4242
          pid_start_ticks: 991
        renew_interval: 10
        threshold: 900
        age: 3.5
        renewed_at: 1795555000.0
      contains:
        cluster:
          description: The cluster the lock is for.
          type: str
          sample: c1
        run_id:
          description: The run that holds the lock.
          type: str
          sample: 20261124T221000Z-4711
        started:
          description: When that run started (UTC, ISO 8601); empty when it did not say.
          type: str
          sample: '2026-11-24T22:10:00Z'
        controller:
          description: The controller that runs the holder, as the holder gave it (empty when it gave none).
          type: dict
          contains:
            host:
              description: The controller's host name.
              type: str
              sample: awx-1
            boot_id:
              description: The controller's boot id, to tell that it rebooted since.
              type: str
            pid:
              description: The process id of the run's ansible-playbook process.
              type: int
              sample: 4242
            pid_start_ticks:
              description:
                - When that process started (clock ticks since boot), to tell it apart from a later process with the
                  same id.
                - Null when unknown.
              type: int
              sample: 991
        taken_at:
          description: When the holder took the lock or last wrote it again (seconds since the epoch, the host's clock).
          type: float
        took_over:
          description: The run whose lock the holder took over; null when it took a free lock or its own again.
          type: str
        renew_interval:
          description: How often (seconds) the holder renews the lock at the least; null when it recorded none.
          type: int
        threshold:
          description: Seconds without a renewal after which the holder may be taken for gone; null when it recorded
            none.
          type: int
        age:
          description:
            - Seconds since the holder last renewed the lock, by the host's clock, never counted from before the host's
              last boot.
          type: float
          sample: 3.5
        renewed_at:
          description: When the holder last renewed the lock (seconds since the epoch, the host's clock).
          type: float
          sample: 1795555000.0
    last_run:
      description:
        - The content of O(state_dir)/last_run.json, the host's record in the last run that worked on it (run_id, record);
          a resumed run goes on from it.
        - Null when no run has worked on the host.
      returned: success
      type: dict
      contains:
        run_id:
          description: The run the record belongs to.
          type: str
          sample: 20261124T221000Z-4711
        record:
          description:
            - The host's record in that run, as the run's report shows it.
            - Its keys are those of RV(kvmops.rolling.maintenance_stage#module:record), as described there.
          type: dict
        written_at:
          description: When the record was written (seconds since the epoch).
          type: float
    running_jobs:
      description: Stage scripts and evacuations still running on the host, detached (left by an interrupted run).
      returned: success
      type: list
      elements: dict
      sample:
        - job_id: r1.Maintenance-stage.0a1b2c3d
          run_id: r1
          label: Maintenance stage
          elapsed: 12.5
          timeout: 1800
      contains:
        job_id:
          description: The job's id (its files are in O(state_dir)/jobs/<job_id>).
          type: str
        run_id:
          description: The run that started it.
          type: str
        label:
          description: What the job is, C(evacuation) or the stage (C(Maintenance stage), ...).
          type: str
        elapsed:
          description: Seconds the job has run.
          type: float
        timeout:
          description: Seconds the job may run in all (its stage or evacuation timeout); null when the job does not say.
          type: int
    job_run_ids:
      description: The runs that have a stage or evacuation job on record on the host, finished or not.
      returned: success
      type: list
      elements: str
      sample:
        - 20261124T221000Z-4711
    stage_scripts:
      description:
        - With O(hooks_dir), each stage's script as the gather finds it, nothing run; C(would_run), C(skipped) (none),
          or C(failed) (it must not run, RV(hypervisor.stage_script_problems) says why).
      returned: when O(hooks_dir) is set
      type: dict
      sample:
        PreFlight: skipped
        PreMaintenance: would_run
        Maintenance: would_run
        PostMaintenance: skipped
      contains:
        PreFlight:
          description: The C(PreFlight) script, V(would_run), V(skipped) or V(failed).
          type: str
        PreMaintenance:
          description: The C(PreMaintenance) script, V(would_run), V(skipped) or V(failed).
          type: str
        Maintenance:
          description: The C(Maintenance) script, V(would_run), V(skipped) or V(failed).
          type: str
        PostMaintenance:
          description: The C(PostMaintenance) script, V(would_run), V(skipped) or V(failed).
          type: str
    stage_script_problems:
      description: With O(hooks_dir), why each script that must not run must not (once per reason).
      returned: when O(hooks_dir) is set
      type: list
      elements: str
      sample:
        - /etc/kvm-rolling-maintenance/hooks/Maintenance is not executable (mode 0644); chmod 0755 it
"""

from typing import Any, Dict

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError, fail_from
from ansible_collections.kvmops.rolling.plugins.module_utils._hypervisor import hypervisor
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import (
    HAS_LIBVIRT,
    LIBVIRT_IMPORT_ERROR,
    LIBVIRT_REQUIREMENT,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import DEFAULT_STATE_DIR, stage_scripts

ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "uri": {"type": "str", "default": "qemu:///system"},
    "shared_storage_paths": {"type": "list", "elements": "path", "default": []},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
    "hooks_dir": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib(LIBVIRT_REQUIREMENT), exception=LIBVIRT_IMPORT_ERROR)
    try:
        facts = hypervisor(module.params["uri"], module.params["shared_storage_paths"] or [], module.params["state_dir"])
        if module.params["hooks_dir"]:
            facts["stage_scripts"], facts["stage_script_problems"] = stage_scripts(module.params["hooks_dir"])
    except RollingError as exc:
        fail_from(module, exc)
    except RuntimeError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=False, hypervisor=facts)


if __name__ == "__main__":
    main()
