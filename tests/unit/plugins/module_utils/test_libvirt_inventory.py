"""The libvirt inventory: domain XML parsing, state naming, gathering from libvirt's test driver,
libvirt error messages and the maintenance state read by the hypervisor_info module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import (
    HINT_AUTH,
    HINT_CONNECTION_LOST,
    HINT_DAEMON,
    HINT_HOOK,
    HINT_MIGRATION,
    HINT_NETWORK,
    HINT_NO_DOMAIN,
    HINT_TIMEOUT,
    libvirt_error_message,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt_inventory import (
    PLACEMENT_NAMESPACE,
    DomainXMLError,
    domain_job_note,
    domain_state,
    gather,
    libvirt_version_string,
    parse_domain_xml,
)
from ansible_collections.kvmops.rolling.plugins.module_utils._marks import MAINTENANCE_MARK, MarkError, read_mark

NS = PLACEMENT_NAMESPACE
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"


def domain(body: str = "", memory: str = "<memory unit='KiB'>65536</memory>", vcpu: str = "<vcpu>1</vcpu>",
           metadata: str = "", devices: str = "") -> str:
    return ("<domain type='kvm'><name>vm</name><uuid>6695eb01-f6a4-8304-79aa-97f2502e193f</uuid>%s%s%s%s"
            "<os><type>hvm</type></os><devices>%s</devices></domain>"
            % ("<metadata>%s</metadata>" % metadata if metadata else "", memory, vcpu, body, devices))


def placement(*children: str, prefix: str = "rm") -> str:
    return "<{p}:placement xmlns:{p}='{ns}'>{c}</{p}:placement>".format(p=prefix, ns=NS, c="".join(children))


def file_disk(path: str, target: str = "vda", device: str = "disk", extra: str = "") -> str:
    return ("<disk type='file' device='%s'><driver name='qemu' type='qcow2'/><source file='%s'/>"
            "<target dev='%s' bus='virtio'/>%s</disk>" % (device, path, target, extra))


# --- parse_domain_xml: figures --------------------------------------------------------------------

@pytest.mark.parametrize(("value", "unit", "mib"), [
    ("1048576", None, 1024),          # no unit: KiB
    ("1048576", "KiB", 1024),
    ("1048576", "k", 1024),
    ("1536", "KiB", 2),               # 1.5 MiB rounds up
    ("2", "GiB", 2048),
    ("2", "G", 2048),
    ("1", "GB", 954),                 # 10^9 bytes = 953.67 MiB, rounded up
    ("1000", "MB", 954),
    ("512", "M", 512),
    ("512", "MiB", 512),
    ("1", "TiB", 1048576),
    ("1073741824", "bytes", 1024),
    ("1", "b", 1),
    ("1", "KB", 1),
])
def test_memory_units_convert_to_mib_rounded_up(value: str, unit: Optional[str], mib: int) -> None:
    memory = "<memory%s>%s</memory>" % (" unit='%s'" % unit if unit else "", value)
    assert parse_domain_xml(domain(memory=memory), [])["memory_mib"] == mib


def test_memory_is_the_configured_maximum_and_a_balloon_is_a_note() -> None:
    parsed = parse_domain_xml(domain(memory="<memory unit='GiB'>8</memory><currentMemory unit='GiB'>2</currentMemory>"
                                     "<maxMemory slots='16' unit='GiB'>64</maxMemory>"), [])
    assert parsed["memory_mib"] == 8192
    assert parsed["notes"] == [
        "memory balloon: 2048 MiB currently assigned of 8192 MiB configured; capacity counts 8192 MiB",
        "memory can be hot-plugged up to 65536 MiB; capacity counts the current 8192 MiB",
    ]
    assert parsed["migration_blockers"] == []


def test_vcpus_are_the_maximum_and_offline_ones_are_a_note() -> None:
    parsed = parse_domain_xml(domain(vcpu="<vcpu placement='static' current='2'>8</vcpu>"), [])
    assert parsed["vcpus"] == 8
    assert parsed["notes"] == ["2 of 8 vCPUs online; capacity counts 8"]
    assert parse_domain_xml(domain(vcpu=""), [])["vcpus"] == 1  # libvirt's default


def test_name_and_uuid_come_from_the_xml() -> None:
    parsed = parse_domain_xml(domain(), [])
    assert (parsed["name"], parsed["uuid"]) == ("vm", "6695eb01-f6a4-8304-79aa-97f2502e193f")
    assert sorted(parsed) == sorted(["name", "uuid", "vcpus", "memory_mib", "host_tags", "anti_affinity_groups",
                                     "migration_blockers", "notes"])


@pytest.mark.parametrize(("xml", "message"), [
    ("<domain><name>x", "not well-formed"),
    ("<network><name>x</name></network>", "expected a <domain>"),
    (domain(memory=""), "no <memory>"),
    (domain(memory="<memory unit='parsec'>1</memory>"), "unknown memory unit 'parsec'"),
    (domain(memory="<memory unit='KiB'>lots</memory>"), "not a whole number"),
    (domain(vcpu="<vcpu>0</vcpu>"), "<vcpu> is not a positive whole number"),
])
def test_unreadable_xml_raises_a_named_error(xml: str, message: str) -> None:
    with pytest.raises(DomainXMLError, match=message):
        parse_domain_xml(xml, [])


# --- parse_domain_xml: placement metadata -------------------------------------------------------

def test_placement_metadata_gives_sorted_unique_tags_and_groups() -> None:
    metadata = placement("<rm:host-tag>ssd</rm:host-tag>", "<rm:host-tag> gpu </rm:host-tag>",
                         "<rm:host-tag>ssd</rm:host-tag>", "<rm:anti-affinity-group>db-primary</rm:anti-affinity-group>")
    parsed = parse_domain_xml(domain(metadata=metadata), [])
    assert parsed["host_tags"] == ["gpu", "ssd"]
    assert parsed["anti_affinity_groups"] == ["db-primary"]
    assert parsed["migration_blockers"] == [] and parsed["notes"] == []


def test_the_namespace_counts_not_the_prefix() -> None:
    other_prefix = placement("<x:host-tag>ssd</x:host-tag>", prefix="x")
    default_ns = "<placement xmlns='%s'><host-tag>ssd</host-tag></placement>" % NS
    # what `virsh metadata --key rm --set '<placement><host-tag>..'` writes when libvirt leaves children unprefixed
    unqualified_children = "<rm:placement xmlns:rm='%s'><host-tag>ssd</host-tag></rm:placement>" % NS
    for metadata in (other_prefix, default_ns, unqualified_children):
        parsed = parse_domain_xml(domain(metadata=metadata), [])
        assert (parsed["host_tags"], parsed["migration_blockers"]) == (["ssd"], []), metadata


def test_no_or_foreign_metadata_means_no_constraints() -> None:
    foreign = "<app:info xmlns:app='http://example.com/app/1'><app:host-tag>ssd</app:host-tag></app:info>"
    for xml in (domain(), domain(metadata=foreign)):
        parsed = parse_domain_xml(xml, [])
        assert (parsed["host_tags"], parsed["anti_affinity_groups"], parsed["migration_blockers"]) == ([], [], [])


@pytest.mark.parametrize(("metadata", "problem"), [
    (placement("<rm:host-tags>ssd</rm:host-tags>"), "unknown element <host-tags> inside <placement>"),
    (placement("<rm:host-tag>   </rm:host-tag>"), "empty <host-tag>"),
    (placement("<rm:anti-affinity-group/>"), "empty <anti-affinity-group>"),
    (placement("<o:host-tag xmlns:o='http://example.com/other'>ssd</o:host-tag>"),
     "unknown element <host-tag> of namespace http://example.com/other inside <placement>"),
    (placement("<rm:host-tag><rm:x>ssd</rm:x></rm:host-tag>"), "<host-tag> must hold only text"),
    (placement("ssd"), "text 'ssd' directly inside <placement>"),
    ("<rm:placment xmlns:rm='%s'/>" % NS, "unknown element <placment> in namespace %s" % NS),
    ("<rm:placement xmlns:rm='urn:kvmops:rolling:placement:2'/>", "of a version this collection does not know"),
])
def test_malformed_metadata_is_a_blocker_naming_the_problem(metadata: str, problem: str) -> None:
    parsed = parse_domain_xml(domain(metadata=metadata), [])
    assert len(parsed["migration_blockers"]) == 1, parsed
    assert problem in parsed["migration_blockers"][0]
    assert parsed["migration_blockers"][0].startswith("placement metadata (%s): " % NS)


def test_valid_parts_of_malformed_metadata_are_still_read() -> None:
    metadata = placement("<rm:host-tag>ssd</rm:host-tag>", "<rm:host-tag/>", "<rm:colour>red</rm:colour>",
                         "<rm:anti-affinity-group>g1</rm:anti-affinity-group>")
    parsed = parse_domain_xml(domain(metadata=metadata), [])
    assert (parsed["host_tags"], parsed["anti_affinity_groups"]) == (["ssd"], ["g1"])
    assert len(parsed["migration_blockers"]) == 2


def test_two_placement_elements_are_combined_with_a_note() -> None:
    metadata = placement("<rm:host-tag>ssd</rm:host-tag>") + placement("<b:host-tag>gpu</b:host-tag>", prefix="b")
    parsed = parse_domain_xml(domain(metadata=metadata), [])
    assert parsed["host_tags"] == ["gpu", "ssd"]
    assert parsed["notes"] == ["2 <placement> elements in the metadata; their tags and groups are combined"]


# --- parse_domain_xml: migration blockers --------------------------------------------------------

SHARED = ["/srv/shared/", "/dev/mapper"]


@pytest.mark.parametrize(("devices", "blockers"), [
    (file_disk("/srv/shared/vm/a.qcow2"), []),
    (file_disk("/srv/shared"), []),
    (file_disk("/srv/shared/../local/a.qcow2"), ["disk vda: local file /srv/shared/../local/a.qcow2 is not under a "
                                                 "shared storage path"]),
    (file_disk("/srv/shared2/a.qcow2"), ["disk vda: local file /srv/shared2/a.qcow2 is not under a shared storage path"]),
    (file_disk("/var/lib/libvirt/images/a.qcow2", extra="<shareable/>"),
     ["disk vda: local file /var/lib/libvirt/images/a.qcow2 is not under a shared storage path"]),
    ("<disk type='block' device='disk'><source dev='/dev/mapper/mpatha'/><target dev='vdb'/></disk>", []),
    ("<disk type='block' device='lun'><source dev='/dev/sdb'/><target dev='sda'/></disk>",
     ["disk sda: local block device /dev/sdb is not under a shared storage path"]),
    ("<disk type='dir' device='disk'><source dir='/var/lib/vvfat'/><target dev='hdb'/></disk>",
     ["disk hdb: local dir /var/lib/vvfat is not under a shared storage path"]),
    ("<disk type='network' device='disk'><source protocol='rbd' name='pool/img'><host name='ceph1'/></source>"
     "<target dev='vdc'/></disk>", []),
    ("<disk type='network' device='disk'><source protocol='iscsi' name='iqn.2013-07.com.example:iscsi-nopool/1'>"
     "<host name='example.com' port='3260'/></source><target dev='vdd'/></disk>", []),
    ("<disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>", []),
    ("<disk type='file' device='floppy'><target dev='fda'/></disk>", []),
    ("<disk type='file' device='cdrom'><source file='/var/lib/libvirt/images/debian.iso'/><target dev='sdb'/>"
     "<readonly/></disk>", ["cdrom sdb: local file /var/lib/libvirt/images/debian.iso is not under a shared storage path"]),
    (file_disk("/srv/shared/top.qcow2", extra="<backingStore type='file'><format type='qcow2'/>"
               "<source file='/var/lib/libvirt/images/base.qcow2'/><backingStore/></backingStore>"),
     ["disk vda: backing file /var/lib/libvirt/images/base.qcow2 is not under a shared storage path"]),
    ("<disk type='nvme' device='disk'><source type='pci' managed='yes' namespace='1'><address domain='0x0000' "
     "bus='0x01' slot='0x00' function='0x0'/></source><target dev='vde'/></disk>",
     ["disk vde: storage of type 'nvme' is tied to this host"]),
    ("<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x03' slot='0x00' "
     "function='0x1'/></source></hostdev>", ["host device: PCI 0000:03:00.1 passed through (<hostdev mode='subsystem'>)"]),
    ("<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>",
     ["host device: USB 1234:beef passed through (<hostdev mode='subsystem'>)"]),
    ("<hostdev mode='subsystem' type='usb'><source><address bus='1' device='5'/></source></hostdev>",
     ["host device: USB bus 1 device 5 passed through (<hostdev mode='subsystem'>)"]),
    ("<hostdev mode='subsystem' type='mdev' model='vfio-pci'><source><address "
     "uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source></hostdev>",
     ["host device: mediated c2177883-f1bb-47f0-914d-32a22e3a8804 passed through (<hostdev mode='subsystem'>)"]),
    ("<hostdev mode='capabilities' type='storage'><source><block>/dev/sdf1</block></source></hostdev>",
     ["host device: storage /dev/sdf1 passed through (<hostdev mode='capabilities'>)"]),
    ("<interface type='hostdev' managed='yes'><mac address='52:54:00:6d:90:02'/><source><address type='pci' "
     "domain='0x0000' bus='0x00' slot='0x07' function='0x0'/></source></interface>",
     ["host device: network interface 52:54:00:6d:90:02 passed through from PCI 0000:00:07.0 "
      "(<interface type='hostdev'>)"]),
    ("<interface type='network'><source network='default'/></interface><memballoon model='virtio'/>", []),
])
def test_migration_blockers_name_the_device(devices: str, blockers: List[str]) -> None:
    assert parse_domain_xml(domain(devices=devices), SHARED)["migration_blockers"] == blockers


def test_without_shared_paths_every_host_path_is_local_and_root_shares_all() -> None:
    xml = domain(devices=file_disk("/srv/shared/a.qcow2"))
    assert len(parse_domain_xml(xml, [])["migration_blockers"]) == 1
    assert parse_domain_xml(xml, ["/"])["migration_blockers"] == []
    assert len(parse_domain_xml(xml, ["", "relative/dir"])["migration_blockers"]) == 1


def test_blockers_are_listed_in_device_order_with_hostdevs_first() -> None:
    devices = file_disk("/local/a.img") + file_disk("/srv/shared/b.img", "vdb") + file_disk("/local/c.img", "vdc") \
        + "<hostdev mode='subsystem' type='pci'><source><address bus='0x3'/></source></hostdev>"
    blockers = parse_domain_xml(domain(devices=devices), SHARED)["migration_blockers"]
    assert [b.split(":")[0] for b in blockers] == ["host device", "disk vda", "disk vdc"]


VOLUME_DISK = "<disk type='volume' device='disk'><source pool='%s' volume='v1'/><target dev='vda'/></disk>"


def test_volume_disks_are_located_through_the_locator() -> None:
    def locate(pool: str, volume: str) -> Tuple[str, str]:
        if pool == "broken":
            raise LookupError("pool 'broken' is not active")
        return {"ceph": ("network", "rbd pool ceph"), "nfs": ("path", "/srv/shared/nfs/" + volume),
                "default": ("path", "/var/lib/libvirt/images/" + volume)}[pool]

    def blockers(pool: str, locator: Any = locate) -> List[str]:
        result: List[str] = parse_domain_xml(domain(devices=VOLUME_DISK % pool), SHARED, locator)["migration_blockers"]
        return result

    assert blockers("ceph") == [] and blockers("nfs") == []
    assert blockers("default") == ["disk vda: local volume v1 (pool default, /var/lib/libvirt/images/v1) is not "
                                   "under a shared storage path"]
    assert blockers("broken") == ["disk vda: volume v1 of storage pool broken could not be located (pool 'broken' "
                                  "is not active); migration needs shared storage"]
    assert blockers("nfs", None) == ["disk vda: volume v1 of storage pool nfs, whose location is not known here; "
                                     "migration needs shared storage"]


# --- domain_state --------------------------------------------------------------------------------

@pytest.mark.parametrize(("state", "reason", "expected"), [
    (1, 1, ("running", "booted", False)),
    (1, 0, ("running", "unknown", False)),
    (1, 2, ("running", "migrated", False)),
    (1, 5, ("running", "unpaused", False)),
    (1, 6, ("running", "migration_canceled", False)),
    (1, 10, ("running", "postcopy", True)),
    (1, 11, ("running", "postcopy_failed", True)),
    (2, 0, ("blocked", "unknown", False)),
    (3, 1, ("paused", "user", False)),
    (3, 0, ("paused", "unknown", False)),
    (3, 7, ("paused", "from_snapshot", False)),
    (3, 2, ("paused", "migration", True)),
    (3, 3, ("paused", "save", True)),
    (3, 4, ("paused", "dump", True)),
    (3, 5, ("paused", "ioerror", True)),
    (3, 6, ("paused", "watchdog", True)),
    (3, 8, ("paused", "shutting_down", True)),
    (3, 9, ("paused", "snapshot", True)),
    (3, 10, ("paused", "crashed", True)),
    (3, 11, ("paused", "starting_up", True)),
    (3, 12, ("paused", "postcopy", True)),
    (3, 13, ("paused", "postcopy_failed", True)),
    (3, 14, ("paused", "api_error", True)),
    (3, 99, ("paused", "reason_99", True)),
    (4, 1, ("shutdown", "user", True)),
    (5, 0, ("shutoff", "unknown", False)),
    (5, 2, ("shutoff", "destroyed", False)),
    (5, 4, ("shutoff", "migrated", False)),
    (5, 6, ("shutoff", "failed", False)),
    (6, 1, ("crashed", "panicked", True)),
    (7, 0, ("pmsuspended", "unknown", True)),
    (0, 0, ("nostate", "unknown", True)),
    (42, 0, ("state_42", "reason_0", True)),
])
def test_domain_state(state: int, reason: int, expected: Tuple[str, str, bool]) -> None:
    assert domain_state(state, reason) == expected


def test_state_numbers_match_the_libvirt_binding() -> None:
    libvirt = pytest.importorskip("libvirt")
    for state, name in [(1, "RUNNING"), (2, "BLOCKED"), (3, "PAUSED"), (4, "SHUTDOWN"), (5, "SHUTOFF"),
                        (6, "CRASHED"), (7, "PMSUSPENDED"), (0, "NOSTATE")]:
        assert getattr(libvirt, "VIR_DOMAIN_" + name) == state
        from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt_inventory import REASON_NAMES
        for reason, reason_name in REASON_NAMES[state].items():
            constant = "VIR_DOMAIN_%s_%s" % (name, reason_name.upper())
            if state == 0:
                constant = "VIR_DOMAIN_NOSTATE_UNKNOWN"
            if hasattr(libvirt, constant):  # newer reasons (paused/api_error) are not in every binding
                assert getattr(libvirt, constant) == reason, constant


def test_error_codes_match_the_libvirt_binding() -> None:
    libvirt = pytest.importorskip("libvirt")
    from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import _ERROR_NAMES
    assert {code: getattr(libvirt, name) for code, name in _ERROR_NAMES.items()} == {code: code for code in _ERROR_NAMES}


def test_libvirt_version_string() -> None:
    assert libvirt_version_string(9000000) == "9.0.0"
    assert libvirt_version_string(10010002) == "10.10.2"


# --- gather against libvirt's test driver ---------------------------------------------------------

NODE_XML = """<node>
  <cpu><mhz>2000</mhz><model>x86_64</model><active>24</active><nodes>1</nodes><sockets>2</sockets>
       <cores>6</cores><threads>2</threads></cpu>
  <memory>67108864</memory>
  <domain type='test' xmlns:test='{test_ns}'>
    <name>db1</name><uuid>11111111-1111-1111-1111-111111111111</uuid>
    <metadata>
      <rm:placement xmlns:rm="{ns}">
        <rm:host-tag>ssd</rm:host-tag>
        <rm:host-tag>gpu</rm:host-tag>
        <rm:anti-affinity-group>db-primary</rm:anti-affinity-group>
      </rm:placement>
    </metadata>
    <memory unit='GiB'>4</memory><currentMemory unit='GiB'>4</currentMemory><vcpu>4</vcpu><os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/srv/shared/db1.qcow2'/><target dev='vda'/></disk>
    </devices>
  </domain>
  <domain type='test' xmlns:test='{test_ns}'>
    <name>archive</name><uuid>22222222-2222-2222-2222-222222222222</uuid>
    <memory unit='MiB'>1000</memory><vcpu>2</vcpu><os><type>hvm</type></os>
    <devices>
      <disk type='file' device='disk'><source file='/var/lib/libvirt/images/archive.qcow2'/><target dev='vda'/></disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
  <domain type='test' xmlns:test='{test_ns}'>
    <name>web1</name><uuid>33333333-3333-3333-3333-333333333333</uuid>
    <memory unit='MiB'>512</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <test:runstate>3</test:runstate>
  </domain>
  <domain type='test' xmlns:test='{test_ns}'>
    <name>crashy</name><uuid>44444444-4444-4444-4444-444444444444</uuid>
    <memory unit='MiB'>256</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <test:runstate>6</test:runstate>
  </domain>
  <domain type='test' xmlns:test='{test_ns}'>
    <name>batch</name><uuid>55555555-5555-5555-5555-555555555555</uuid>
    <memory unit='MiB'>300</memory><vcpu>1</vcpu><os><type>hvm</type></os>
    <test:transient/>
  </domain>
</node>
""".format(ns=NS, test_ns=TEST_NS)


@pytest.fixture
def test_conn(tmp_path: Path) -> Any:
    pytest.importorskip("libvirt")
    from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import open_connection
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    conn = open_connection("test://%s" % node)
    yield conn
    conn.close()


def by_name(result: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    return {entry["name"]: entry for entry in result["domains"]}


def test_gather_reports_the_node_and_every_domain_sorted(test_conn: Any, tmp_path: Path) -> None:
    result = gather(test_conn, ["/srv/shared"])
    assert sorted(result) == ["domains", "hostname", "node", "uri"]
    assert result["uri"] == "test://%s/node.xml" % tmp_path
    assert result["hostname"] == test_conn.getHostname()
    assert result["node"] == {"cpus": 24, "memory_mib": 65536, "libvirt_version": libvirt_version_string(
        test_conn.getLibVersion())}
    assert [entry["name"] for entry in result["domains"]] == ["archive", "batch", "crashy", "db1", "web1"]
    assert by_name(result)["db1"] == {
        "name": "db1", "uuid": "11111111-1111-1111-1111-111111111111", "state": "running",
        "state_reason": "unknown", "active": True, "transitional": False, "persistent": True, "vcpus": 4,
        "memory_mib": 4096, "host_tags": ["gpu", "ssd"], "anti_affinity_groups": ["db-primary"],
        "migration_blockers": [], "notes": [],
    }


def test_gather_states_persistence_and_blockers(test_conn: Any) -> None:
    domains = by_name(gather(test_conn, ["/srv/shared"]))
    archive = domains["archive"]
    assert (archive["state"], archive["active"], archive["transitional"], archive["memory_mib"]) == \
        ("shutoff", False, False, 1000)
    assert archive["migration_blockers"] == [
        "disk vda: local file /var/lib/libvirt/images/archive.qcow2 is not under a shared storage path"]
    assert (domains["web1"]["state"], domains["web1"]["active"], domains["web1"]["transitional"]) == \
        ("paused", True, False)
    assert (domains["crashy"]["state"], domains["crashy"]["transitional"]) == ("crashed", True)
    batch = domains["batch"]
    assert (batch["persistent"], batch["active"]) == (False, True)
    assert batch["notes"] == ["transient: not persistently defined on this host, it exists only while it runs"]


def test_gather_sees_a_user_pause_and_live_metadata(test_conn: Any) -> None:
    libvirt = pytest.importorskip("libvirt")
    db1 = test_conn.lookupByName("db1")
    db1.suspend()
    # What `virsh metadata db1 urn:kvmops:rolling:placement:1 --key rm --live --set '<placement>..'` does.
    db1.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                    "<placement><host-tag>nvme</host-tag></placement>", "rm", NS, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    entry = by_name(gather(test_conn, ["/srv/shared"]))["db1"]
    assert (entry["state"], entry["state_reason"], entry["transitional"]) == ("paused", "user", False)
    assert (entry["host_tags"], entry["anti_affinity_groups"]) == (["nvme"], [])  # the live XML, not the config


def test_gather_reads_an_inactive_domain_from_its_persistent_config(test_conn: Any) -> None:
    libvirt = pytest.importorskip("libvirt")
    archive = test_conn.lookupByName("archive")
    archive.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                        "<placement><anti-affinity-group>cold</anti-affinity-group></placement>", "rm", NS,
                        libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    assert by_name(gather(test_conn, []))["archive"]["anti_affinity_groups"] == ["cold"]


class FakeLibvirtError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def get_error_code(self) -> int:
        return self.code

    def get_error_message(self) -> str:
        return self.message


class VanishingDomain:
    def __init__(self, code: int) -> None:
        self.code = code

    def state(self) -> List[int]:
        raise FakeLibvirtError(self.code, "Domain not found: no domain with matching uuid")


class ConnWithVanishingDomain:
    def __init__(self, conn: Any, code: int) -> None:
        self.conn = conn
        self.code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def listAllDomains(self, flags: int = 0) -> List[Any]:
        return [VanishingDomain(self.code)] + self.conn.listAllDomains(flags)


def test_a_domain_that_vanishes_while_gathering_is_left_out(test_conn: Any) -> None:
    result = gather(ConnWithVanishingDomain(test_conn, 42), [])
    assert len(result["domains"]) == 5
    with pytest.raises(FakeLibvirtError):
        gather(ConnWithVanishingDomain(test_conn, 1), [])


class JobDomain:
    """A domain whose jobStats() answers as given (a dict, or an exception to raise)."""

    def __init__(self, answer: Any, dom: Any = None) -> None:
        self.answer = answer
        self.dom = dom

    def __getattr__(self, name: str) -> Any:
        return getattr(self.dom, name)

    def jobStats(self, flags: int = 0) -> Dict[str, Any]:
        if isinstance(self.answer, Exception):
            raise self.answer
        result: Dict[str, Any] = self.answer
        return result


@pytest.mark.parametrize(("answer", "note"), [
    ({"type": 0}, None),
    ({"type": 3, "operation": 5}, None),  # a completed job
    ({"type": 2, "operation": 5, "time_elapsed": 120}, "libvirt job in progress: migration_out"),
    ({"type": 1, "operation": 8}, "libvirt job in progress: dump"),
    ({"type": 2, "operation": 77}, "libvirt job in progress: operation_77"),
    (FakeLibvirtError(3, "this function is not supported by the connection driver"), None),
    (FakeLibvirtError(68, "Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainMigratePerform3Params)"),
     "libvirt is busy with the domain (its job lock is held): Timed out during operation: cannot acquire state change "
     "lock (held by monitor=remoteDispatchDomainMigratePerform3Params)"),
])
def test_domain_job_note(answer: Any, note: Optional[str]) -> None:
    assert domain_job_note(JobDomain(answer)) == note


def test_domain_job_note_lets_a_vanished_domain_through() -> None:
    with pytest.raises(FakeLibvirtError):
        domain_job_note(JobDomain(FakeLibvirtError(42, "Domain not found")))


class ConnMigratingDb1:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def listAllDomains(self, flags: int = 0) -> List[Any]:
        return [JobDomain({"type": 2, "operation": 5}, dom) if dom.name() == "db1" else dom
                for dom in self.conn.listAllDomains(flags)]


def test_a_running_domain_with_a_migration_job_is_transitional(test_conn: Any) -> None:
    domains = by_name(gather(ConnMigratingDb1(test_conn), []))
    assert (domains["db1"]["state"], domains["db1"]["transitional"]) == ("running", True)
    assert domains["db1"]["notes"] == ["libvirt job in progress: migration_out (the domain counts as transitional)"]
    assert domains["web1"]["transitional"] is False  # the test driver reports no jobs


def test_the_documented_virsh_metadata_command_round_trips() -> None:
    """docs/placement-metadata.md's command, run by virsh against the test driver's default domain."""
    virsh = shutil.which("virsh")
    if virsh is None:
        pytest.skip("virsh is not installed")
    command = ("metadata test %s --key rm --set '<placement><host-tag>ssd</host-tag><host-tag>gpu</host-tag>"
               "<anti-affinity-group>db-primary</anti-affinity-group></placement>'; dumpxml test" % NS)
    completed = subprocess.run([virsh, "-c", "test:///default", command], capture_output=True, text=True, check=True,
                               timeout=60)
    xml = completed.stdout[completed.stdout.index("<domain"):]
    parsed = parse_domain_xml(xml, [])
    assert (parsed["host_tags"], parsed["anti_affinity_groups"]) == (["gpu", "ssd"], ["db-primary"])
    assert '<rm:placement xmlns:rm="%s">' % NS in xml


# --- libvirt_error_message -----------------------------------------------------------------------

@pytest.mark.parametrize(("code", "text", "doing", "hint"), [
    (38, "Failed to connect socket to '/var/run/libvirt/libvirt-sock': No such file or directory",
     "connecting to libvirt", HINT_DAEMON),
    (38, "unable to connect to server at 'hv2:16509': Connection refused", "connecting to libvirt", HINT_DAEMON),
    (45, "authentication failed: Failed to start SASL negotiation", "connecting to libvirt", HINT_AUTH),
    (42, "Domain not found: no domain with matching name 'db1'", "migrating db1 to hv2", HINT_NO_DOMAIN),
    (68, "Timed out during operation: cannot acquire state change lock", "migrating db1 to hv2", HINT_TIMEOUT),
    (81, "Unsafe migration: Migration may lead to data corruption if disks use cache other than none",
     "migrating db1 to hv2", HINT_MIGRATION),
    (55, "Requested operation is not valid: cannot migrate domain: Attempt to migrate guest to the same host",
     "migrating db1 to hv2", HINT_MIGRATION),
    # The target's qemu hook was killed as the target went down: the hook, not the guest, is the cause.
    (70, "Hook script execution failed: internal error: Child process (/etc/libvirt/hooks/qemu db1 migrate begin -) "
     "unexpected fatal signal 9", "migrating db1 to hv2", HINT_HOOK),
    (1, "internal error: unexpected", "listing domains", None),
])
def test_libvirt_error_message_names_what_where_why_and_a_hint(code: int, text: str, doing: str,
                                                               hint: Optional[str]) -> None:
    message = libvirt_error_message(FakeLibvirtError(code, text), doing, uri="qemu+tcp://hv2/system", domain="db1")
    assert message.startswith("%s (domain db1, URI qemu+tcp://hv2/system) failed: %s [libvirt error %d" % (doing, text, code))
    if hint is None:
        assert "Hint:" not in message
    else:
        assert message.endswith(". Hint: " + hint)


@pytest.mark.parametrize(("code", "text", "doing", "uri", "hint"), [
    # This host's libvirtd died under the evacuation's own connection.
    (38, "End of file while reading data: Input/output error", "migrating db1 to hv2", "qemu:///system",
     HINT_CONNECTION_LOST),
    # The target's libvirtd died under the source daemon's peer-to-peer connection: relayed by the source.
    (1, "internal error: client socket is closed", "migrating db1 to hv2", "qemu:///system", HINT_CONNECTION_LOST),
    (1, "internal error: client socket is closed", "listing domains", "qemu:///system", HINT_CONNECTION_LOST),
    # Over the network it stays a reachability problem.
    (38, "End of file while reading data: Input/output error", "connecting to libvirt", "qemu+ssh://hv2/system",
     HINT_NETWORK),
])
def test_a_connection_closed_under_a_call_is_not_taken_for_a_refused_migration(
        code: int, text: str, doing: str, uri: str, hint: str) -> None:
    message = libvirt_error_message(FakeLibvirtError(code, text), doing, uri=uri)
    assert message.endswith(". Hint: " + hint), message


def test_libvirt_error_message_with_a_real_libvirt_error() -> None:
    libvirt = pytest.importorskip("libvirt")
    from ansible_collections.kvmops.rolling.plugins.module_utils._libvirt import open_connection
    conn = open_connection("test:///default", readonly=True)
    try:
        with pytest.raises(libvirt.libvirtError) as caught:
            conn.lookupByName("nope")
    finally:
        conn.close()
    message = libvirt_error_message(caught.value, "looking up the domain", uri="test:///default", domain="nope")
    assert message.startswith("looking up the domain (domain nope, URI test:///default) failed: Domain not found")
    assert "[libvirt error 42, VIR_ERR_NO_DOMAIN]" in message and message.endswith(HINT_NO_DOMAIN)


def test_libvirt_error_message_for_any_exception() -> None:
    assert libvirt_error_message(OSError("boom"), "reading") == "reading failed: boom"
    assert libvirt_error_message(RuntimeError(), "reading") == "reading failed: RuntimeError"


# --- the marks in the state dir (hypervisor_info reports them) --------------------------------------

def test_maintenance_state_missing_file_or_dir_is_none(tmp_path: Path) -> None:
    assert read_mark(str(tmp_path), MAINTENANCE_MARK) is None
    assert read_mark(str(tmp_path / "missing"), MAINTENANCE_MARK) is None
    (tmp_path / "file").write_text("")
    assert read_mark(str(tmp_path / "file"), MAINTENANCE_MARK) is None  # state_dir is a file: nothing inside it


def test_maintenance_state_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "maintenance.json").write_text('{"run_id": "r1", "since": 1700000000}')
    assert read_mark(str(tmp_path), MAINTENANCE_MARK) == {"run_id": "r1", "since": 1700000000}


@pytest.mark.parametrize(("content", "message"), [
    (b"{broken", "is corrupt (not valid JSON"),
    (b"", "is corrupt (not valid JSON"),
    (b"\xff\xfe{}", "is corrupt (not UTF-8"),
])
def test_corrupt_maintenance_state_is_reported(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "maintenance.json").write_bytes(content)
    with pytest.raises(MarkError, match=r"maintenance\.json %s" % message.replace("(", r"\(")):
        read_mark(str(tmp_path), MAINTENANCE_MARK)


def test_a_mark_that_is_not_an_object_is_corrupt(tmp_path: Path) -> None:
    (tmp_path / "maintenance.json").write_text("[1, 2]")
    with pytest.raises(MarkError, match="not a JSON object"):
        read_mark(str(tmp_path), MAINTENANCE_MARK)


def test_unreadable_maintenance_state_is_reported(tmp_path: Path) -> None:
    (tmp_path / "maintenance.json").mkdir()
    with pytest.raises(MarkError, match=r"cannot read .*maintenance\.json: Is a directory"):
        read_mark(str(tmp_path), MAINTENANCE_MARK)
