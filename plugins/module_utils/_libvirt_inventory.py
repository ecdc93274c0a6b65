# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A hypervisor's libvirt inventory: node capacity and every domain's demand, placement and mobility.

Pure and typed. :func:`parse_domain_xml` reads what the capacity planner needs from a domain's XML
text alone; :func:`domain_state` names libvirt's numeric domain states and reasons and says whether
a VM is in a transitional or error state; :func:`gather` walks an open libvirt connection. Nothing
here imports libvirt (the numbers below are libvirt's stable API values), so all of it runs and is
tested without the binding. Private to the collection (leading underscore): not a public API.

Placement metadata lives in the domain XML's ``<metadata>`` in the namespace
:data:`PLACEMENT_NAMESPACE` (see docs/placement-metadata.md)::

    <metadata>
      <rm:placement xmlns:rm="urn:kvmops:rolling:placement:1">
        <rm:host-tag>ssd</rm:host-tag>
        <rm:anti-affinity-group>db-primary</rm:anti-affinity-group>
      </rm:placement>
    </metadata>
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError

PLACEMENT_NAMESPACE = "urn:kvmops:rolling:placement:1"
PLACEMENT_NAMESPACE_FAMILY = "urn:kvmops:rolling:placement:"
PLACEMENT_ELEMENT = "placement"
HOST_TAG_ELEMENT = "host-tag"
ANTI_AFFINITY_ELEMENT = "anti-affinity-group"

# virDomainState and the virDomain*Reason enums (libvirt's include/libvirt/libvirt-domain.h).
VIR_DOMAIN_NOSTATE = 0
VIR_DOMAIN_RUNNING = 1
VIR_DOMAIN_BLOCKED = 2
VIR_DOMAIN_PAUSED = 3
VIR_DOMAIN_SHUTDOWN = 4
VIR_DOMAIN_SHUTOFF = 5
VIR_DOMAIN_CRASHED = 6
VIR_DOMAIN_PMSUSPENDED = 7

STATE_NAMES: Dict[int, str] = {
    VIR_DOMAIN_NOSTATE: "nostate",
    VIR_DOMAIN_RUNNING: "running",
    VIR_DOMAIN_BLOCKED: "blocked",
    VIR_DOMAIN_PAUSED: "paused",
    VIR_DOMAIN_SHUTDOWN: "shutdown",
    VIR_DOMAIN_SHUTOFF: "shutoff",
    VIR_DOMAIN_CRASHED: "crashed",
    VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

# virDomainPausedReason: its name, and what a guest paused for it is. The one table for the inventory (which
# pauses leave a guest movable) and the evacuation (which pause it may undo): steady (by the user, unknown,
# after a snapshot: movable, and never resumed by us), migration (our own migration paused it: resumed once
# the guest is known to run nowhere else), and the rest: a job under way or an error (transitional).
PAUSED_STEADY = "steady"
PAUSED_BY_MIGRATION = "migration"
PAUSED_TRANSITIONAL = "transitional"
PAUSED_REASONS: Dict[int, Tuple[str, str]] = {
    0: ("unknown", PAUSED_STEADY), 1: ("user", PAUSED_STEADY), 2: ("migration", PAUSED_BY_MIGRATION),
    3: ("save", PAUSED_TRANSITIONAL), 4: ("dump", PAUSED_TRANSITIONAL), 5: ("ioerror", PAUSED_TRANSITIONAL),
    6: ("watchdog", PAUSED_TRANSITIONAL), 7: ("from_snapshot", PAUSED_STEADY),
    8: ("shutting_down", PAUSED_TRANSITIONAL), 9: ("snapshot", PAUSED_TRANSITIONAL),
    10: ("crashed", PAUSED_TRANSITIONAL), 11: ("starting_up", PAUSED_TRANSITIONAL),
    # Post-copy leaves part of the guest's memory on the other host: never resumed here (we never use it).
    12: ("postcopy", PAUSED_TRANSITIONAL), 13: ("postcopy_failed", PAUSED_TRANSITIONAL),
    14: ("api_error", PAUSED_TRANSITIONAL),
}


def paused_reasons(kind: str) -> Tuple[int, ...]:
    """The virDomainPausedReason values of one kind (PAUSED_STEADY, PAUSED_BY_MIGRATION, ...)."""
    return tuple(reason for reason, (_name, what) in sorted(PAUSED_REASONS.items()) if what == kind)


REASON_NAMES: Dict[int, Dict[int, str]] = {
    VIR_DOMAIN_NOSTATE: {0: "unknown"},
    VIR_DOMAIN_RUNNING: {
        0: "unknown", 1: "booted", 2: "migrated", 3: "restored", 4: "from_snapshot", 5: "unpaused",
        6: "migration_canceled", 7: "save_canceled", 8: "wakeup", 9: "crashed", 10: "postcopy",
        11: "postcopy_failed",
    },
    VIR_DOMAIN_BLOCKED: {0: "unknown"},
    VIR_DOMAIN_PAUSED: {reason: name for reason, (name, _kind) in PAUSED_REASONS.items()},
    VIR_DOMAIN_SHUTDOWN: {0: "unknown", 1: "user"},
    VIR_DOMAIN_SHUTOFF: {
        0: "unknown", 1: "shutdown", 2: "destroyed", 3: "crashed", 4: "migrated", 5: "saved", 6: "failed",
        7: "from_snapshot", 8: "daemon",
    },
    VIR_DOMAIN_CRASHED: {0: "unknown", 1: "panicked"},
    VIR_DOMAIN_PMSUSPENDED: {0: "unknown"},
}

# Reasons that leave a running or paused VM movable: everything else in those states means the VM is
# being migrated, saved, dumped or snapshotted, is starting or shutting down, or is stuck on an error.
_STEADY_RUNNING_REASONS = frozenset((0, 1, 2, 3, 4, 5, 6, 7, 8, 9))
_STEADY_PAUSED_REASONS = frozenset(paused_reasons(PAUSED_STEADY))

# VIR_ERR_NO_DOMAIN: a domain that vanished between listing and reading (migrated away, undefined).
VIR_ERR_NO_DOMAIN = 42
# VIR_ERR_OPERATION_TIMEOUT: libvirt could not get the domain's job lock (another job holds it too long).
_VIR_ERR_OPERATION_TIMEOUT = 68
# virDomainJobType: a job in progress (BOUNDED, UNBOUNDED), and virDomainJobOperation names.
_ACTIVE_JOB_TYPES = (1, 2)
JOB_OPERATION_NAMES: Dict[int, str] = {
    0: "unknown", 1: "start", 2: "save", 3: "restore", 4: "migration_in", 5: "migration_out", 6: "snapshot",
    7: "snapshot_revert", 8: "dump", 9: "backup", 10: "snapshot_delete",
}
# VIR_DOMAIN_XML_INACTIVE: the persistent configuration instead of the live one.
_VIR_DOMAIN_XML_INACTIVE = 2

# Storage pools whose volumes are reached over the network, not through a host path.
NETWORK_POOL_TYPES = ("rbd", "gluster", "iscsi-direct", "sheepdog")

# (kind, location): kind "path" (location is the volume's path on the host) or "network".
VolumeLocator = Callable[[str, str], Tuple[str, str]]

_UNIT_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5, "e": 6}
_MIB = 1024 * 1024


class DomainXMLError(RollingError, ValueError):
    """The domain XML cannot be read (not XML, or no usable memory or vCPU figures)."""


def domain_state(state: int, reason: int) -> Tuple[str, str, bool]:
    """Name libvirt's (state, reason) pair and say whether the VM is in a transitional or error state.

    Transitional: being migrated (paused for or running in post-copy migration), stuck on an error
    (I/O error, watchdog, crashed, API error, failed post-copy), in the middle of a save, dump,
    snapshot, start or shutdown, crashed, being shut down, or suspended to RAM/disk. A running VM,
    a VM paused by the user (or after a snapshot was restored, or for an unknown reason), a blocked
    one and a shut-off one are not. Unknown states and reasons are transitional: they cannot be
    reasoned about.
    """
    state_name = STATE_NAMES.get(state, "state_%d" % state)
    reasons = REASON_NAMES.get(state, {})
    reason_name = reasons.get(reason, "reason_%d" % reason)
    if state == VIR_DOMAIN_RUNNING:
        transitional = reason not in _STEADY_RUNNING_REASONS
    elif state == VIR_DOMAIN_PAUSED:
        transitional = reason not in _STEADY_PAUSED_REASONS
    elif state in (VIR_DOMAIN_BLOCKED, VIR_DOMAIN_SHUTOFF):
        transitional = False
    else:
        # nostate, shutdown (being shut down), crashed, pmsuspended, and anything unknown
        transitional = True
    return state_name, reason_name, transitional


def _scale(unit: Optional[str]) -> int:
    """Bytes per unit, libvirt's way (virScaleInteger): b, bytes, k/KiB (1024), KB (1000), ... EiB; default KiB."""
    if unit is None or unit == "":
        return 1024
    lowered = unit.lower()
    if lowered in ("b", "byte", "bytes"):
        return 1
    power = _UNIT_POWERS.get(lowered[0])
    if power is None:
        raise DomainXMLError("unknown memory unit %r" % unit)
    rest = lowered[1:]
    if rest in ("", "ib"):
        return 1024 ** power
    if rest == "b":
        return 1000 ** power
    raise DomainXMLError("unknown memory unit %r" % unit)


def _memory_mib(element: Optional[ET.Element], what: str) -> Optional[int]:
    """An element's memory size in MiB, rounded up; None when the element is absent."""
    if element is None:
        return None
    text = (element.text or "").strip()
    if not text.isdigit():
        raise DomainXMLError("%s is not a whole number: %r" % (what, text))
    size = int(text) * _scale(element.get("unit"))
    return -(-size // _MIB)


def _local_name(tag: str) -> Tuple[Optional[str], str]:
    """Split an ElementTree tag into (namespace or None, local name)."""
    if tag.startswith("{"):
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return None, tag


def _parse_placement(metadata: Optional[ET.Element]) -> Tuple[List[str], List[str], List[str], List[str]]:
    """Return (host tags, anti-affinity groups, errors, notes) from a domain's <metadata>."""
    tags: List[str] = []
    groups: List[str] = []
    errors: List[str] = []
    notes: List[str] = []
    if metadata is None:
        return tags, groups, errors, notes
    placements = []
    for child in list(metadata):
        if not isinstance(child.tag, str):
            continue  # comments, processing instructions
        namespace, local = _local_name(child.tag)
        if namespace == PLACEMENT_NAMESPACE:
            if local == PLACEMENT_ELEMENT:
                placements.append(child)
            else:
                errors.append("unknown element <%s> in namespace %s (expected <%s>)"
                              % (local, PLACEMENT_NAMESPACE, PLACEMENT_ELEMENT))
        elif namespace and namespace.startswith(PLACEMENT_NAMESPACE_FAMILY):
            errors.append("metadata in namespace %s is of a version this collection does not know (it reads %s)"
                          % (namespace, PLACEMENT_NAMESPACE))
    if len(placements) > 1:
        notes.append("%d <%s> elements in the metadata; their tags and groups are combined"
                     % (len(placements), PLACEMENT_ELEMENT))
    for placement in placements:
        for item in list(placement):
            if not isinstance(item.tag, str):
                continue
            namespace, local = _local_name(item.tag)
            if namespace not in (PLACEMENT_NAMESPACE, None) or local not in (HOST_TAG_ELEMENT, ANTI_AFFINITY_ELEMENT):
                errors.append("unknown element <%s>%s inside <%s> (allowed: <%s>, <%s>)"
                              % (local, " of namespace %s" % namespace if namespace not in (PLACEMENT_NAMESPACE, None)
                                 else "", PLACEMENT_ELEMENT, HOST_TAG_ELEMENT, ANTI_AFFINITY_ELEMENT))
                continue
            if len(item):
                errors.append("<%s> must hold only text, not elements" % local)
                continue
            value = (item.text or "").strip()
            if not value:
                errors.append("empty <%s>" % local)
                continue
            target = tags if local == HOST_TAG_ELEMENT else groups
            if value not in target:
                target.append(value)
        if (placement.text or "").strip():
            errors.append("text %r directly inside <%s> (put it in <%s> or <%s>)"
                          % ((placement.text or "").strip(), PLACEMENT_ELEMENT, HOST_TAG_ELEMENT,
                             ANTI_AFFINITY_ELEMENT))
    return sorted(tags), sorted(groups), errors, notes


def _is_shared(path: str, shared_roots: Sequence[str]) -> bool:
    if not path.startswith("/"):
        return False
    path = posixpath.normpath(path)
    for root in shared_roots:
        if root == "/" or path == root or path.startswith(root + "/"):
            return True
    return False


def _normalise_roots(shared_storage_paths: Sequence[str]) -> List[str]:
    roots = []
    for root in shared_storage_paths or ():
        root = (root or "").strip()
        if root.startswith("/"):
            roots.append(posixpath.normpath(root))
    return roots


def _source_path(disk_type: Optional[str], source: Optional[ET.Element]) -> Optional[str]:
    if source is None:
        return None
    attribute = {"file": "file", "block": "dev", "dir": "dir"}.get(disk_type or "file", "file")
    value = source.get(attribute)
    return value if value else None


def _disk_blockers(disk: ET.Element, roots: Sequence[str], locate_volume: Optional[VolumeLocator]) -> List[str]:
    device = disk.get("device") or "disk"
    disk_type = disk.get("type") or "file"
    target = disk.find("target")
    name = (target.get("dev") if target is not None else None) or "?"
    label = "%s %s" % ("disk" if device in ("disk", "lun") else device, name)
    source = disk.find("source")
    if disk_type == "network":
        return []
    if disk_type == "volume":
        if source is None:
            return []
        pool, volume = source.get("pool") or "", source.get("volume") or ""
        if locate_volume is None:
            return ["%s: volume %s of storage pool %s, whose location is not known here; migration needs "
                    "shared storage" % (label, volume, pool)]
        try:
            kind, location = locate_volume(pool, volume)
        except Exception as exc:  # the locator talks to libvirt; any failure leaves the disk unclassified
            return ["%s: volume %s of storage pool %s could not be located (%s); migration needs shared storage"
                    % (label, volume, pool, exc)]
        if kind == "network" or _is_shared(location, roots):
            return []
        return ["%s: local volume %s (pool %s, %s) is not under a shared storage path"
                % (label, volume, pool, location)]
    if disk_type not in ("file", "block", "dir"):
        if source is None and device in ("cdrom", "floppy"):
            return []
        return ["%s: storage of type '%s' is tied to this host" % (label, disk_type)]
    blockers = []
    path = _source_path(disk_type, source)
    if path is not None and not _is_shared(path, roots):
        blockers.append("%s: local %s %s is not under a shared storage path"
                        % (label, "block device" if disk_type == "block" else disk_type, path))
    # The backing chain (live XML) must be reachable from the target too.
    backing = disk.find("backingStore")
    while backing is not None:
        backing_type = backing.get("type") or "file"
        backing_path = _source_path(backing_type, backing.find("source"))
        if backing_type in ("file", "block", "dir") and backing_path is not None \
                and not _is_shared(backing_path, roots):
            blockers.append("%s: backing file %s is not under a shared storage path" % (label, backing_path))
        backing = backing.find("backingStore")
    return blockers


def _pci_address(address: Optional[ET.Element]) -> str:
    if address is None:
        return "?"
    try:
        return "%04x:%02x:%02x.%x" % tuple(int(address.get(key) or "0", 0)
                                           for key in ("domain", "bus", "slot", "function"))
    except ValueError:
        return "?"


def _hostdev_blocker(hostdev: ET.Element) -> str:
    mode = hostdev.get("mode") or "subsystem"
    kind = hostdev.get("type") or "?"
    source = hostdev.find("source")
    where = ""
    if source is not None:
        if kind == "pci":
            where = " " + _pci_address(source.find("address"))
        elif kind == "usb":
            vendor, product, address = source.find("vendor"), source.find("product"), source.find("address")
            if vendor is not None and product is not None:
                where = " %s:%s" % ((vendor.get("id") or "?").replace("0x", ""),
                                    (product.get("id") or "?").replace("0x", ""))
            elif address is not None:
                where = " bus %s device %s" % (address.get("bus"), address.get("device"))
        elif kind == "scsi":
            adapter, address = source.find("adapter"), source.find("address")
            if adapter is not None:
                where = " %s" % adapter.get("name")
            if address is not None:
                where += " %s:%s:%s" % (address.get("bus"), address.get("target"), address.get("unit"))
        elif kind == "mdev":
            address = source.find("address")
            if address is not None:
                where = " %s" % address.get("uuid")
        else:
            for tag in ("block", "char"):
                found = source.find(tag)
                if found is not None and found.text:
                    where = " %s" % found.text.strip()
    label = {"pci": "PCI", "usb": "USB", "scsi": "SCSI", "scsi_host": "SCSI host", "mdev": "mediated"}.get(kind, kind)
    return "host device: %s%s passed through (<hostdev mode='%s'>)" % (label, where, mode)


def parse_domain_xml(xml: str, shared_storage_paths: Sequence[str],
                     locate_volume: Optional[VolumeLocator] = None) -> Dict[str, Any]:
    """What the capacity planner needs from one domain, from its XML text alone.

    Returns ``{"name", "uuid", "vcpus", "memory_mib", "host_tags", "anti_affinity_groups",
    "migration_blockers", "notes"}``. ``vcpus`` is the maximum (``<vcpu>``), ``memory_mib`` the
    configured maximum memory (``<memory>``) in MiB, rounded up. Tags and groups are sorted and
    unique. Malformed placement metadata is a migration blocker naming the problem (the VM cannot be
    placed safely until it is fixed); the valid tags and groups are still returned.
    ``locate_volume(pool, volume)`` resolves ``<disk type='volume'>`` sources; without it such a disk
    is a blocker. Raises DomainXMLError when the text is not a domain XML with usable figures.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DomainXMLError("the domain XML is not well-formed: %s" % exc) from None
    if root.tag != "domain":
        raise DomainXMLError("expected a <domain> document, got <%s>" % root.tag)
    roots = _normalise_roots(shared_storage_paths)
    notes: List[str] = []
    blockers: List[str] = []

    memory_mib = _memory_mib(root.find("memory"), "<memory>")
    if memory_mib is None:
        raise DomainXMLError("the domain XML has no <memory>")
    current_mib = _memory_mib(root.find("currentMemory"), "<currentMemory>")
    if current_mib is not None and current_mib < memory_mib:
        notes.append("memory balloon: %d MiB currently assigned of %d MiB configured; capacity counts %d MiB"
                     % (current_mib, memory_mib, memory_mib))
    hotplug_mib = _memory_mib(root.find("maxMemory"), "<maxMemory>")
    if hotplug_mib is not None and hotplug_mib > memory_mib:
        notes.append("memory can be hot-plugged up to %d MiB; capacity counts the current %d MiB"
                     % (hotplug_mib, memory_mib))

    vcpu = root.find("vcpu")
    vcpus = 1
    if vcpu is not None:
        text = (vcpu.text or "").strip()
        if not text.isdigit() or int(text) < 1:
            raise DomainXMLError("<vcpu> is not a positive whole number: %r" % text)
        vcpus = int(text)
        current = (vcpu.get("current") or "").strip()
        if current.isdigit() and int(current) < vcpus:
            notes.append("%s of %d vCPUs online; capacity counts %d" % (current, vcpus, vcpus))

    tags, groups, errors, placement_notes = _parse_placement(root.find("metadata"))
    notes.extend(placement_notes)
    blockers.extend("placement metadata (%s): %s; fix it with `virsh metadata`" % (PLACEMENT_NAMESPACE, error)
                    for error in errors)

    devices = root.find("devices")
    if devices is not None:
        for hostdev in devices.findall("hostdev"):
            blockers.append(_hostdev_blocker(hostdev))
        for interface in devices.findall("interface"):
            if interface.get("type") == "hostdev":
                mac = interface.find("mac")
                source = interface.find("source")
                blockers.append("host device: network interface%s passed through from PCI %s (<interface type='hostdev'>)"
                                % (" " + mac.get("address", "") if mac is not None else "",
                                   _pci_address(source.find("address") if source is not None else None)))
        for disk in devices.findall("disk"):
            blockers.extend(_disk_blockers(disk, roots, locate_volume))

    uuid_element = root.find("uuid")
    return {
        "name": (root.findtext("name") or "").strip(),
        "uuid": (uuid_element.text or "").strip() if uuid_element is not None else "",
        "vcpus": vcpus,
        "memory_mib": memory_mib,
        "host_tags": tags,
        "anti_affinity_groups": groups,
        "migration_blockers": blockers,
        "notes": notes,
    }


def _error_code(exc: Exception) -> Optional[int]:
    get_code = getattr(exc, "get_error_code", None)
    value = get_code() if callable(get_code) else None
    return value if isinstance(value, int) else None


def libvirt_version_string(number: int) -> str:
    """libvirt's version number (major * 1000000 + minor * 1000 + release) as text, e.g. 9000000 -> 9.0.0."""
    return "%d.%d.%d" % (number // 1000000, (number // 1000) % 1000, number % 1000)


def volume_locator(conn: Any) -> VolumeLocator:
    """A locate_volume for parse_domain_xml that asks libvirt where a pool's volume lives."""
    pool_types: Dict[str, str] = {}

    def locate(pool_name: str, volume_name: str) -> Tuple[str, str]:
        pool = conn.storagePoolLookupByName(pool_name)
        if pool_name not in pool_types:
            pool_types[pool_name] = ET.fromstring(pool.XMLDesc(0)).get("type") or ""
        if pool_types[pool_name] in NETWORK_POOL_TYPES:
            return "network", "%s pool %s" % (pool_types[pool_name], pool_name)
        return "path", pool.storageVolLookupByName(volume_name).path()

    return locate


def domain_job_note(dom: Any) -> Optional[str]:
    """A note naming the job libvirt runs on an active domain, or None when there is none.

    A live migration keeps the source VM "running", so only its job tells. A domain whose job lock
    libvirt cannot get is reported as busy. The error of a domain that vanished propagates; any other
    (a driver that cannot report jobs) means no job is reported.
    """
    try:
        stats = dom.jobStats(0)
    except Exception as exc:  # libvirt.libvirtError; the binding is not imported here
        code = _error_code(exc)
        if code == VIR_ERR_NO_DOMAIN:
            raise
        if code == _VIR_ERR_OPERATION_TIMEOUT:
            return "libvirt is busy with the domain (its job lock is held): %s" % " ".join(str(exc).split())
        return None  # not supported by this driver, or not for this domain: no job to report
    if stats.get("type") not in _ACTIVE_JOB_TYPES:
        return None
    operation = stats.get("operation", 0)
    return "libvirt job in progress: %s" % JOB_OPERATION_NAMES.get(operation, "operation_%s" % operation)


def _domain_entry(dom: Any, shared_storage_paths: Sequence[str], locate: VolumeLocator) -> Dict[str, Any]:
    state, reason = dom.state()[:2]
    active = bool(dom.isActive())
    persistent = bool(dom.isPersistent())
    state_name, reason_name, transitional = domain_state(state, reason)
    job_note = domain_job_note(dom) if active else None
    transitional = transitional or job_note is not None
    xml = dom.XMLDesc(0 if active else _VIR_DOMAIN_XML_INACTIVE)
    entry: Dict[str, Any] = {"name": dom.name(), "uuid": dom.UUIDString(), "state": state_name,
                             "state_reason": reason_name, "active": active, "transitional": transitional,
                             "persistent": persistent}
    try:
        parsed = parse_domain_xml(xml, shared_storage_paths, locate)
    except DomainXMLError as exc:
        parsed = {"vcpus": None, "memory_mib": None, "host_tags": [], "anti_affinity_groups": [],
                  "migration_blockers": ["its XML could not be read: %s" % exc], "notes": []}
    for key in ("vcpus", "memory_mib", "host_tags", "anti_affinity_groups", "migration_blockers", "notes"):
        entry[key] = parsed[key]
    if not persistent:
        entry["notes"] = ["transient: not persistently defined on this host, it exists only while it runs"] \
            + entry["notes"]
    if job_note is not None:
        entry["notes"] = [job_note + " (the domain counts as transitional)"] + entry["notes"]
    return entry


def gather(conn: Any, shared_storage_paths: Sequence[str]) -> Dict[str, Any]:
    """Node facts and every domain (active and defined) of an open libvirt connection.

    Returns ``{"hostname", "uri", "node": {"cpus", "memory_mib", "libvirt_version"}, "domains": [...]}``
    with the domains sorted by name (see parse_domain_xml and domain_state for their fields). An active
    domain on which libvirt runs a job (a live migration out, a save, dump, snapshot or backup) is
    transitional too, whatever its state says, with a note naming the job. The
    node's free memory is deliberately not reported: libvirt's figure is not trustworthy; compute it
    from the node's memory and the domains. A domain that vanishes while it is read (migrated away,
    undefined) is left out; any other libvirt error propagates.
    """
    info = conn.getInfo()
    node = {"cpus": int(info[2]), "memory_mib": int(info[1]),
            "libvirt_version": libvirt_version_string(int(conn.getLibVersion()))}
    locate = volume_locator(conn)
    domains = []
    for dom in conn.listAllDomains(0):
        try:
            domains.append(_domain_entry(dom, shared_storage_paths, locate))
        except Exception as exc:
            if _error_code(exc) == VIR_ERR_NO_DOMAIN:
                continue
            raise
    domains.sort(key=lambda entry: (entry["name"], entry["uuid"]))
    return {"hostname": conn.getHostname(), "uri": conn.getURI(), "node": node, "domains": domains}
