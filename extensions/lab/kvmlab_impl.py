"""Implementation of extensions/lab/kvmlab: simulated KVM hypervisors on one Debian 12 machine.

A simulated host is a network namespace (a veth into a bridge that lives in the lab's own
namespace), plus a mount+UTS namespace held open by a `sleep infinity` "holder" process, in which
per-host directories are bind-mounted over libvirt's paths, the collection's paths, /etc/hosts,
/etc/hostname and the kernel's boot id. Each host runs its own sshd and `libvirtd --listen`, and
real (tiny, TCG) QEMU guests that can be live-migrated between hosts.

Everything the lab creates is named after KVMLAB_NAME and kept under KVMLAB_DIR, so two labs with
different KVMLAB_DIR / KVMLAB_NAME / KVMLAB_SUBNET can coexist. Python 3.11 stdlib only.
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import grp
import ipaddress
import json
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar
from xml.etree import ElementTree

IMPL_PATH = Path(__file__).resolve()
PACKAGES_FILE = IMPL_PATH.parent / "system-packages.txt"

DEFAULT_DIR = "/tmp/kvmlab"
DEFAULT_NAME = "kvmlab"
DEFAULT_SUBNET = "10.213.47.0/24"
ZONE = "z1"
STATE_VERSION = 1

BRIDGE_IF = "br0"
HOST_IF = "eth0"
BRIDGE_CTL_IF = "ctl"
# What a root login on a Debian host gets; daemons and `exec` must not inherit the caller's PATH.
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
QEMU_BINARY = "/usr/bin/qemu-system-x86_64"
GUESTS_MARK = "@@kvmlab-persistent@@"
SSH_COMMON_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 "
                   "-o ServerAliveInterval=3 -o ServerAliveCountMax=3")

# (source inside the host dir, target path the host sees). Order matters: `hooks` is mounted
# inside `etc-krm`, so it must come after it.
HOST_MOUNTS: tuple[tuple[str, str], ...] = (
    ("etc-libvirt", "/etc/libvirt"),
    ("run-libvirt", "/run/libvirt"),
    ("lib-libvirt", "/var/lib/libvirt"),
    ("log-libvirt", "/var/log/libvirt"),
    ("cache-libvirt", "/var/cache/libvirt"),
    ("etc-krm", "/etc/kvm-rolling-maintenance"),
    ("hooks", "/etc/kvm-rolling-maintenance/hooks"),
    ("state", "/var/lib/kvm-rolling-maintenance"),
    ("etc-hosts", "/etc/hosts"),
    ("etc-hostname", "/etc/hostname"),
    ("boot_id", "/proc/sys/kernel/random/boot_id"),
    ("run-kvmlab", "/run/kvmlab"),
    ("run-systemd-shutdown", "/run/systemd/shutdown"),
)
HOST_FILE_MOUNTS = {"etc-hosts", "etc-hostname", "boot_id"}
# Mountpoints that must exist in the real root file system (hooks lives inside etc-krm).
ROOT_MOUNTPOINT_DIRS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
                        "/var/cache/libvirt", "/etc/kvm-rolling-maintenance",
                        "/var/lib/kvm-rolling-maintenance", "/run/kvmlab",
                        "/run/systemd/shutdown")
ROOT_MOUNTPOINT_FILES = ("/etc/hosts", "/etc/hostname")
# A host's syslog socket, as its processes see it (run-kvmlab/dev-log in its directory), when the machine has none.
DEV_LOG = "/dev/log"
HOST_DEV_LOG = "/run/kvmlab/dev-log"

T = TypeVar("T")


class LabError(Exception):
    """A failure with a message meant for the user (printed without a traceback)."""


# --------------------------------------------------------------------------------------------
# Configuration and lab description
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabConfig:
    """Where the lab lives and how its kernel objects are named (from the environment)."""

    lab_dir: Path
    name: str
    subnet: ipaddress.IPv4Network

    @classmethod
    def from_env(cls) -> "LabConfig":
        raw_dir = os.environ.get("KVMLAB_DIR", DEFAULT_DIR)
        lab_dir = Path(os.path.abspath(raw_dir))
        if re.search(r"\s", str(lab_dir)):
            raise LabError(f"KVMLAB_DIR must not contain whitespace: {raw_dir!r}")
        # Short, so any unix socket below it stays far from the ~100-character limit.
        if len(str(lab_dir)) > 60:
            raise LabError(f"KVMLAB_DIR is too long (max 60 characters): {lab_dir}")
        # Hosts reach their files (sshd config, guest XML) through the lab dir's own path, so it
        # must not lie under a path that hosts see through a bind mount.
        for _source, target in HOST_MOUNTS:
            if lab_dir == Path(target) or Path(target) in lab_dir.parents:
                raise LabError(f"KVMLAB_DIR must not be under {target}: {lab_dir}")
        name = os.environ.get("KVMLAB_NAME", DEFAULT_NAME)
        # No dashes, so "<name>-" prefixes of two labs can never match each other's objects;
        # 12 characters keep "<name>-c" within the kernel's 15-character interface names.
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", name):
            raise LabError(f"KVMLAB_NAME must match [a-z][a-z0-9]{{0,11}}: {name!r}")
        raw_subnet = os.environ.get("KVMLAB_SUBNET", DEFAULT_SUBNET)
        try:
            subnet = ipaddress.IPv4Network(raw_subnet, strict=True)
        except ValueError as exc:
            raise LabError(f"KVMLAB_SUBNET is not an IPv4 network: {raw_subnet!r} ({exc})") from exc
        if not subnet.is_private or subnet.prefixlen > 24:
            raise LabError(f"KVMLAB_SUBNET must be a private network of /24 or larger: {subnet}")
        return cls(lab_dir=lab_dir, name=name, subnet=subnet)

    @property
    def lab_ns(self) -> str:
        return f"{self.name}-lan"

    @property
    def ctl_if(self) -> str:
        return f"{self.name}-c"

    @property
    def state_file(self) -> Path:
        return self.lab_dir / "lab.json"

    @property
    def inventory_file(self) -> Path:
        return self.lab_dir / "inventory.yml"

    @property
    def lock_file(self) -> Path:
        return self.lab_dir / ".lock"

    @property
    def ssh_dir(self) -> Path:
        return self.lab_dir / "ssh"

    @property
    def key_file(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.lab_dir / "authorized_keys"

    @property
    def caps_dir(self) -> Path:
        return self.lab_dir / "qemu-caps"

    @property
    def hosts_dir(self) -> Path:
        return self.lab_dir / "hosts"

    @property
    def powerd_pid_file(self) -> Path:
        return self.lab_dir / "powerd.pid"

    def environment(self) -> dict[str, str]:
        """The KVMLAB_* variables that name this lab (for a kvmlab started by the lab itself)."""
        return {"KVMLAB_DIR": str(self.lab_dir), "KVMLAB_NAME": self.name, "KVMLAB_SUBNET": str(self.subnet)}

    @property
    def controller_address(self) -> str:
        return str(self.subnet.network_address + 1)

    def host_ns(self, host: str) -> str:
        return f"{self.name}-{host}"

    def host_ns_path(self, host: str) -> str:
        return f"/run/netns/{self.host_ns(host)}"

    def host_dir(self, host: str) -> Path:
        return self.hosts_dir / host

    def host_veth(self, host: str) -> str:
        """The bridge-side end of a host's veth (lives in the lab namespace)."""
        return f"v{host}"

    def host_address(self, index: int) -> str:
        return str(self.subnet.network_address + 10 + index)

    def holder_name(self, host: str) -> str:
        """How a host's holder is named (its comm and last argument): lab and host."""
        return self.host_ns(host)


@dataclass(frozen=True)
class HostSpec:
    """One simulated hypervisor and its placement."""

    name: str
    index: int
    address: str
    cluster: str
    pod: str
    zone: str


@dataclass(frozen=True)
class Lab:
    """A lab as recorded in lab.json at the end of `up`."""

    cfg: LabConfig
    clusters: int
    hosts_per_cluster: int
    vms_per_host: int
    hosts: tuple[HostSpec, ...]

    def host(self, name: str) -> HostSpec:
        for spec in self.hosts:
            if spec.name == name:
                return spec
        known = ", ".join(spec.name for spec in self.hosts)
        raise LabError(f"unknown host {name!r} (lab hosts: {known})")

    def same_shape(self, clusters: int, hosts_per_cluster: int, vms_per_host: int) -> bool:
        return (self.clusters, self.hosts_per_cluster, self.vms_per_host) == (
            clusters, hosts_per_cluster, vms_per_host)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "name": self.cfg.name,
            "lab_dir": str(self.cfg.lab_dir),
            "subnet": str(self.cfg.subnet),
            "controller_address": self.cfg.controller_address,
            "clusters": self.clusters,
            "hosts_per_cluster": self.hosts_per_cluster,
            "vms_per_host": self.vms_per_host,
            "hosts": [asdict(spec) for spec in self.hosts],
        }


def plan_lab(cfg: LabConfig, clusters: int, hosts_per_cluster: int, vms_per_host: int) -> Lab:
    """Hosts hv1..hvN numbered globally; cluster cK (pod pK) holds the K-th run of H hosts."""
    if clusters < 1 or hosts_per_cluster < 1 or vms_per_host < 0:
        raise LabError("need --clusters >= 1, --hosts-per-cluster >= 1, --vms-per-host >= 0")
    total = clusters * hosts_per_cluster
    if 10 + total >= cfg.subnet.num_addresses - 1:
        raise LabError(f"{total} hosts do not fit in {cfg.subnet}")
    hosts = []
    for index in range(1, total + 1):
        cluster_no = (index - 1) // hosts_per_cluster + 1
        hosts.append(HostSpec(name=f"hv{index}", index=index, address=cfg.host_address(index),
                              cluster=f"c{cluster_no}", pod=f"p{cluster_no}", zone=ZONE))
    return Lab(cfg, clusters, hosts_per_cluster, vms_per_host, tuple(hosts))


def load_lab(cfg: LabConfig) -> Lab | None:
    try:
        data = json.loads(cfg.state_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {cfg.state_file}: {exc}; run `kvmlab down`") from exc
    if data.get("version") != STATE_VERSION or data.get("name") != cfg.name:
        raise LabError(f"{cfg.state_file} belongs to another lab or version; run `kvmlab down`")
    recorded = LabConfig(lab_dir=cfg.lab_dir, name=cfg.name,
                         subnet=ipaddress.IPv4Network(data["subnet"]))
    hosts = tuple(HostSpec(**spec) for spec in data["hosts"])
    return Lab(recorded, data["clusters"], data["hosts_per_cluster"], data["vms_per_host"], hosts)


def require_lab(cfg: LabConfig) -> Lab:
    lab = load_lab(cfg)
    if lab is None:
        raise LabError(f"the lab is not up (no {cfg.state_file}); run `kvmlab up` first")
    return lab


# --------------------------------------------------------------------------------------------
# Small process helpers
# --------------------------------------------------------------------------------------------

def clean_env() -> dict[str, str]:
    """A root-login-like environment, so the caller's venv/pyenv never leaks into a host."""
    return {"PATH": HOST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "USER": "root", "LOGNAME": "root",
            "SHELL": "/bin/bash", "TERM": os.environ.get("TERM", "dumb")}


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run a short command, capturing output; failures become LabError with the command's stderr."""
    try:
        proc = subprocess.run(list(cmd), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=clean_env(), check=False)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout:.0f}s: {shlex.join(cmd)}") from exc
    except FileNotFoundError as exc:
        raise LabError(f"command not found: {cmd[0]}") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output")[-2000:]
        raise LabError(f"`{shlex.join(cmd)}` failed with exit code {proc.returncode}: {detail}")
    return proc


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def in_host(holder_pid: int, cmd: Sequence[str]) -> list[str]:
    """Prefix a command so it runs in a host's network, mount and UTS namespaces. Entering the
    mount namespace also puts the command's root and cwd at that namespace's /."""
    return ["nsenter", f"--target={holder_pid}", "--net", "--mount", "--uts", "--", *cmd]


def virsh_in_host(holder_pid: int, *args: str) -> list[str]:
    return in_host(holder_pid, ["virsh", "-q", "-c", "qemu:///system", *args])


def parallel(func: Callable[[HostSpec], T], hosts: Sequence[HostSpec]) -> list[T]:
    """Run func for every host at once; re-raise the first failure after all have finished."""
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
        futures = [pool.submit(func, host) for host in hosts]
        errors = [f.exception() for f in futures if f.exception() is not None]
        if errors:
            raise errors[0]  # type: ignore[misc]
        return [f.result() for f in futures]


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Processes and namespaces seen through /proc
# --------------------------------------------------------------------------------------------

def ns_key(path: str) -> tuple[int, int] | None:
    """Identity of a namespace (device, inode) from /run/netns/X or /proc/PID/ns/net."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def all_pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)


def pids_in_netns(keys: set[tuple[int, int]]) -> list[int]:
    """Every live process whose network namespace is one of `keys` (zombies have no namespace)."""
    me = os.getpid()
    return [pid for pid in all_pids() if pid != me and ns_key(f"/proc/{pid}/ns/net") in keys]


def kill_netns_processes(keys: set[tuple[int, int]], spare: set[int] | frozenset[int] = frozenset(),
                         timeout: float = 15.0) -> int:
    """SIGKILL, by PID, everything in the given network namespaces except `spare` until nothing
    else is left (loop, because a process may fork while we kill its parent)."""
    if not keys:
        return 0
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        pids = [pid for pid in pids_in_netns(keys) if pid not in spare]
        if not pids:
            return len(killed)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise LabError(f"processes still alive in the lab namespaces after SIGKILL: {pids}")
        time.sleep(0.05)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def pid_alive_in(pid: int | None, netns: tuple[int, int] | None) -> bool:
    """True when pid is a live (non-zombie) process in the given network namespace; guards
    against a stale pid file naming a recycled PID."""
    if pid is None or netns is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return ns_key(f"/proc/{pid}/ns/net") == netns


def tcp_hex(address: str, port: int) -> str:
    """An IPv4 address:port as /proc/net/tcp prints it (address in host byte order)."""
    return "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(address))[0], port)


def tcp_listening(pid: int, address: str, port: int) -> bool:
    """Is something listening on address:port in pid's network namespace? /proc/PID/net/tcp
    shows that namespace's sockets, so this works even while the host's link is down."""
    want = tcp_hex(address, port)
    try:
        lines = Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(fields[1] == want and fields[3] == "0A" for fields in (line.split() for line in lines))


def decode_tcp_address(hex_address: str) -> ipaddress.IPv4Address:
    raw = int(hex_address.split(":")[0], 16)
    return ipaddress.IPv4Address(socket.inet_ntoa(struct.pack("<I", raw)))


def close_controller_ssh(subnet: ipaddress.IPv4Network) -> int:
    """Close ssh clients of this (root) namespace connected to lab addresses, above all Ansible's
    ControlPersist masters, which would otherwise outlive the lab. Masters get `ssh -O exit`
    on their control path first, then every remaining one is terminated by PID."""
    inodes: set[str] = set()
    for table in ("/proc/self/net/tcp",):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if decode_tcp_address(fields[2]) in subnet:
                inodes.add(fields[9])
    if not inodes:
        return 0
    closed = 0
    for pid in list(all_pids()):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "ssh":
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
            sockets = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds}
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if not any(f"socket:[{inode}]" in sockets for inode in inodes):
            continue
        master = re.fullmatch(r"ssh: (\S+) \[mux\]\x00?", argv)
        if master:
            run(["ssh", "-o", f"ControlPath={master.group(1)}", "-O", "exit", "kvmlab-close"],
                check=False, timeout=5)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        closed += 1
    return closed


def list_netns() -> set[str]:
    proc = run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}


def link_exists(name: str, netns: str | None = None) -> bool:
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["link", "show", "dev", name]
    return run(cmd, check=False).returncode == 0


def link_is_up(cfg: LabConfig, host: str) -> bool | None:
    proc = run(["ip", "-n", cfg.lab_ns, "-j", "link", "show", "dev", cfg.host_veth(host)], check=False)
    if proc.returncode != 0:
        return None
    try:
        return "UP" in json.loads(proc.stdout)[0]["flags"]
    except (ValueError, IndexError, KeyError):
        return None


# --------------------------------------------------------------------------------------------
# Inside a host: the holder's setup (runs as `python3 kvmlab_impl.py _hostinit ...`)
# --------------------------------------------------------------------------------------------

MS_BIND = 4096
MNT_DETACH = 2
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    return libc


def bind_mount(libc: ctypes.CDLL, source: str, target: str) -> None:
    if libc.mount(source.encode(), target.encode(), None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bind mount {source} -> {target}: {os.strerror(err)}")


def detach_netns_mounts(libc: ctypes.CDLL) -> None:
    """Our new mount namespace copied the root's /run/netns/* bind mounts; those copies would
    keep other namespaces (of this or another lab) alive after `ip netns del`. Drop them."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        mountpoint = fields[4].replace("\\040", " ")
        fstype = fields[fields.index("-") + 1]
        if fstype == "nsfs" and mountpoint.startswith(("/run/netns/", "/var/run/netns/")):
            libc.umount2(mountpoint.encode(), MNT_DETACH)


def set_process_name(libc: ctypes.CDLL, name: str) -> None:
    """Set comm (what `ps -o comm` and `top` show; 15 bytes at most)."""
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def reap_forever() -> None:
    """The holder's life after boot: reap every orphan of the host (it is their subreaper), so
    killed guests, sessions and stage scripts never linger as zombies, until it is killed."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # only now: children inherit masks
    while True:
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
        signal.sigwaitinfo({signal.SIGCHLD})


def host_init(host_dir: str, hostname: str, holder_name: str) -> int:
    """The holder: runs inside fresh (private) mount and UTS namespaces and the host's network
    namespace. It builds the host's view of the file system, then acts as the host's init:
    it runs the daemon start commands it is sent (one JSON argv per line on stdin, answering
    with the exit code), and once stdin closes it just reaps orphans until it is killed.

    Starting the daemons from here makes every host process a descendant of the holder; as
    child subreaper it adopts and reaps them (PID 1 on this machine reaps nothing)."""
    os.chdir("/")
    libc = _libc()
    detach_netns_mounts(libc)
    for source, target in HOST_MOUNTS:
        bind_mount(libc, os.path.join(host_dir, source), target)
    socket.sethostname(hostname)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    set_process_name(libc, holder_name)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    with open(os.path.join(host_dir, "daemons.log"), "ab") as log:
        for line in sys.stdin:
            argv = json.loads(line)
            try:
                code = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                      timeout=90, check=False).returncode
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.write(f"kvmlab holder: {argv}: {exc}\n".encode())
                log.flush()
                code = 127
            sys.stdout.write(f"{code}\n")
            sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    reap_forever()
    return 0  # not reached


# --------------------------------------------------------------------------------------------
# Prerequisites
# --------------------------------------------------------------------------------------------

def require_root() -> None:
    if os.geteuid() != 0:
        raise LabError("kvmlab must run as root (it creates namespaces, mounts and daemons)")


def missing_packages() -> list[str]:
    if not PACKAGES_FILE.is_file():
        return []
    wanted = [line.strip() for line in PACKAGES_FILE.read_text().splitlines()
              if line.strip() and not line.lstrip().startswith("#")]
    proc = run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *wanted], check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines()
                 if line.endswith("install ok installed")}
    return [pkg for pkg in wanted if pkg not in installed]


def ensure_prerequisites() -> None:
    """System packages, the users/groups libvirt's QEMU driver insists on, and mountpoints."""
    missing = missing_packages()
    if missing:
        print(f"kvmlab: installing {' '.join(missing)}", file=sys.stderr)
        env = {**clean_env(), "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update"],
                    ["apt-get", "install", "-y", "--no-install-recommends", *missing]):
            if subprocess.run(cmd, env=env, stdout=sys.stderr, check=False).returncode != 0:
                raise LabError(f"`{shlex.join(cmd)}` failed")
    for group in ("kvm", "libvirt-qemu"):
        try:
            grp.getgrnam(group)
        except KeyError:
            run(["groupadd", "--system", group])
    try:
        pwd.getpwnam("libvirt-qemu")
    except KeyError:
        run(["useradd", "--system", "--gid", "libvirt-qemu", "--no-create-home",
             "--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin", "libvirt-qemu"])
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    for path in ROOT_MOUNTPOINT_DIRS:
        os.makedirs(path, mode=0o755, exist_ok=True)
    for path in ROOT_MOUNTPOINT_FILES:
        if not os.path.exists(path):
            Path(path).touch(mode=0o644)
    if not os.path.lexists(DEV_LOG):
        # Where syslog(3) sends: into each host's own /run/kvmlab, so a test can listen to what one host logs.
        # A machine with a syslog of its own keeps it.
        os.symlink(HOST_DEV_LOG, DEV_LOG)
    for tool in ("ip", "nsenter", "unshare", "libvirtd", "virsh", "ssh", "ssh-keygen",
                 "qemu-system-x86_64", "sleep"):
        if shutil.which(tool, path=HOST_PATH) is None:
            raise LabError(f"required tool {tool!r} not found in {HOST_PATH}")
    if not os.path.exists("/usr/sbin/sshd"):
        raise LabError("/usr/sbin/sshd not found (package openssh-server)")


def ensure_controller_key(cfg: LabConfig) -> None:
    """The controller's ed25519 key; kept across `down` (a reusable cache)."""
    cfg.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (cfg.key_file.exists() and cfg.key_file.with_suffix(".pub").exists()):
        for stale in (cfg.key_file, cfg.key_file.with_suffix(".pub")):
            stale.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{cfg.name}-controller",
             "-f", str(cfg.key_file)])
    os.chmod(cfg.key_file, 0o600)
    cfg.authorized_keys.write_text(cfg.key_file.with_suffix(".pub").read_text())


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------

def check_subnet_free(cfg: LabConfig) -> None:
    """Refuse a subnet that overlaps anything the root namespace already routes."""
    proc = run(["ip", "-j", "-4", "route", "show", "table", "all"], check=False)
    try:
        routes = json.loads(proc.stdout or "[]")
    except ValueError:
        routes = []
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("", "default") or route.get("type") in ("local", "broadcast"):
            continue
        try:
            net = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if net.overlaps(cfg.subnet) and net.prefixlen > 0:
            raise LabError(f"KVMLAB_SUBNET {cfg.subnet} overlaps an existing route ({dst} dev "
                           f"{route.get('dev')}); choose another KVMLAB_SUBNET")


def build_network(cfg: LabConfig, lab: Lab) -> None:
    """Lab namespace with a bridge; controller leg in the root namespace (.1, which adds the one
    kernel route for the subnet); one namespace per host with its veth plugged into the bridge."""
    prefix = cfg.subnet.prefixlen
    run(["ip", "netns", "add", cfg.lab_ns])
    run(["ip", "-n", cfg.lab_ns, "link", "set", "lo", "up"])
    run(["ip", "-n", cfg.lab_ns, "link", "add", BRIDGE_IF, "type", "bridge"])
    run(["ip", "-n", cfg.lab_ns, "link", "set", BRIDGE_IF, "up"])
    run(["ip", "link", "add", cfg.ctl_if, "type", "veth", "peer", "name", BRIDGE_CTL_IF,
         "netns", cfg.lab_ns])
    run(["ip", "-n", cfg.lab_ns, "link", "set", BRIDGE_CTL_IF, "master", BRIDGE_IF, "up"])
    run(["ip", "addr", "add", f"{cfg.controller_address}/{prefix}", "dev", cfg.ctl_if])
    run(["ip", "link", "set", cfg.ctl_if, "up"])
    for host in lab.hosts:
        ns = cfg.host_ns(host.name)
        veth = cfg.host_veth(host.name)
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", cfg.lab_ns, "link", "add", veth, "type", "veth", "peer", "name", HOST_IF,
             "netns", ns])
        run(["ip", "-n", cfg.lab_ns, "link", "set", veth, "master", BRIDGE_IF, "up"])
        run(["ip", "-n", ns, "addr", "add", f"{host.address}/{prefix}", "dev", HOST_IF])
        run(["ip", "-n", ns, "link", "set", HOST_IF, "up"])


def set_link(cfg: LabConfig, host: str, up: bool) -> None:
    """Admin-down the bridge side of the host's veth: the host keeps its address and its
    processes keep running, but every packet to or from it is dropped."""
    run(["ip", "-n", cfg.lab_ns, "link", "set", "dev", cfg.host_veth(host), "up" if up else "down"])


# --------------------------------------------------------------------------------------------
# Per-host files
# --------------------------------------------------------------------------------------------

def libvirtd_conf(address: str, host_uuid: str) -> str:
    return f"""# Written by kvmlab: one simulated hypervisor's libvirtd.
listen_tls = 0
listen_tcp = 1
listen_addr = "{address}"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
# Distinct per host, or libvirt refuses migration ("migrate guest to the same host").
host_uuid = "{host_uuid}"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""


def qemu_conf(address: str) -> str:
    return f"""# Written by kvmlab: QEMU as root, without cgroups, namespaces, labels or virtlogd.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
stdio_handler = "file"
cgroup_controllers = [ ]
namespaces = [ ]
migration_address = "{address}"
migration_host = "{address}"
"""


def sshd_conf(cfg: LabConfig, host_dir: Path, address: str) -> str:
    sshd_dir = host_dir / "sshd"
    return f"""# Written by kvmlab: this host's own sshd, key authentication only.
ListenAddress {address}
Port 22
HostKey {sshd_dir / 'ssh_host_ed25519_key'}
PidFile {sshd_dir / 'sshd.pid'}
AuthorizedKeysFile {cfg.authorized_keys}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
X11Forwarding no
AcceptEnv LANG LC_*
MaxSessions 64
MaxStartups 64:30:256
Subsystem sftp internal-sftp
"""


def hosts_file(lab: Lab) -> str:
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines += [f"{host.address}\t{host.name}" for host in lab.hosts]
    return "\n".join(lines) + "\n"


# A lab host's own `systemctl reboot` (no SECONDS) or `shutdown -r +MINUTES` (SECONDS later): it schedules a
# graceful reboot the way systemd does, in the host's /run/systemd/shutdown/scheduled, and returns at once.
# The lab's power daemon carries it out when it falls due.
REBOOT_COMMAND = """#!/bin/sh
# kvmlab: reboot this host gracefully (SIGTERM to every process, a grace period, SIGKILL, new boot id),
# now or SECONDS from now. Returns at once, as systemctl reboot and shutdown -r do.
delay=${1:-0}
case $delay in ''|*[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2;; esac
usec=$(( ($(date +%s) + delay) * 1000000 ))
printf 'USEC=%s\\nWARN_WALL=1\\nMODE=reboot\\n' "$usec" > /run/systemd/shutdown/.scheduled.new
mv -f /run/systemd/shutdown/.scheduled.new /run/systemd/shutdown/scheduled
"""
SCHEDULED_SHUTDOWN = "scheduled"
# What a graceful reboot gives the host's processes between SIGTERM and SIGKILL (systemd's default is 90 s).
DEFAULT_SHUTDOWN_GRACE = 5.0


def write_boot_id(host_dir: Path) -> str:
    boot_id = str(uuid.uuid4())
    (host_dir / "boot_id").write_text(boot_id + "\n")
    return boot_id


# Each host's state dir is a file system of its own, as /var is on many real hosts, so a test can fill it
# (a tmpfs: it only takes the memory written to it, and survives the host's reboots like a disk).
STATE_FS_SIZE = "256m"


def mounts_under(directory: Path) -> list[str]:
    """Mount points at or below DIRECTORY in this mount namespace, deepest first."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(directory) or point.startswith(str(directory) + "/"):
            found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_under(directory: Path) -> None:
    for point in mounts_under(directory):
        run(["umount", "--lazy", point], check=False)


def create_host_files(cfg: LabConfig, lab: Lab, host: HostSpec) -> None:
    """A fresh host directory: everything the host sees at the bind-mounted paths, plus sshd."""
    host_dir = cfg.host_dir(host.name)
    if host_dir.exists():
        unmount_under(host_dir)
        shutil.rmtree(host_dir)
    host_dir.mkdir(parents=True)
    for source, _target in HOST_MOUNTS:
        if source not in HOST_FILE_MOUNTS:
            (host_dir / source).mkdir(mode=0o755, exist_ok=True)
    (host_dir / "etc-krm" / "hooks").mkdir(mode=0o755)  # mountpoint for `hooks`
    # Guests' serial files go here; libvirt does not create it before the first QEMU log.
    (host_dir / "log-libvirt" / "qemu").mkdir(mode=0o755)
    os.chmod(host_dir / "hooks", 0o755)
    run(["mount", "-t", "tmpfs", "-o", f"size={STATE_FS_SIZE},mode=0700", f"{cfg.name}-state", str(host_dir / "state")])
    os.chmod(host_dir / "lib-libvirt", 0o755)
    # Keep the machine's libvirt client settings (libvirt.conf etc.); ours win for the daemons.
    if os.path.isdir("/etc/libvirt"):
        for entry in os.scandir("/etc/libvirt"):
            if entry.is_file() and entry.name.endswith(".conf"):
                shutil.copy2(entry.path, host_dir / "etc-libvirt" / entry.name)
    (host_dir / "etc-libvirt" / "libvirtd.conf").write_text(
        libvirtd_conf(host.address, str(uuid.uuid4())))
    (host_dir / "etc-libvirt" / "qemu.conf").write_text(qemu_conf(host.address))
    (host_dir / "etc-hosts").write_text(hosts_file(lab))
    (host_dir / "etc-hostname").write_text(host.name + "\n")
    write_boot_id(host_dir)
    sshd_dir = host_dir / "sshd"
    sshd_dir.mkdir(mode=0o700)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host.name}",
         "-f", str(sshd_dir / "ssh_host_ed25519_key")])
    (sshd_dir / "sshd_config").write_text(sshd_conf(cfg, host_dir, host.address))
    (host_dir / "guest-xml").mkdir()
    reboot_command = host_dir / "run-kvmlab" / "reboot"
    reboot_command.write_text(REBOOT_COMMAND)
    reboot_command.chmod(0o755)


def seed_qemu_caps(cfg: LabConfig, host_dir: Path) -> bool:
    """Copy an already probed QEMU capabilities cache in, so libvirt skips its ~8 s probe."""
    source = cfg.caps_dir / "qemu"
    target = host_dir / "cache-libvirt" / "qemu"
    if not (source / "capabilities").is_dir() or (target / "capabilities").is_dir():
        return False
    shutil.copytree(source, target, dirs_exist_ok=True)
    return True


def save_qemu_caps(cfg: LabConfig, host_dir: Path) -> None:
    source = host_dir / "cache-libvirt" / "qemu"
    if not (source / "capabilities").is_dir():
        return
    staging = cfg.lab_dir / "qemu-caps.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging / "qemu")
    shutil.rmtree(cfg.caps_dir, ignore_errors=True)
    staging.rename(cfg.caps_dir)


# --------------------------------------------------------------------------------------------
# Booting a host
# --------------------------------------------------------------------------------------------

def holder_pid(cfg: LabConfig, host: str) -> int | None:
    """The holder's PID if it is alive in the host's network namespace, else None."""
    pid = read_pid(cfg.host_dir(host) / "holder.pid")
    return pid if pid_alive_in(pid, ns_key(cfg.host_ns_path(host))) else None


def require_holder(cfg: LabConfig, host: str) -> int:
    pid = holder_pid(cfg, host)
    if pid is None:
        raise LabError(f"host {host} is not running (no live holder process); "
                       "`kvmlab up` rebuilds an unhealthy lab")
    return pid


class Holder:
    """The controller's end of a booting host's holder: send it daemon start commands."""

    def __init__(self, host: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.host = host
        self.proc = proc
        self.pid = proc.pid
        self.log_path = log_path

    def read_line(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        readable = select.select([self.proc.stdout], [], [], timeout)[0]
        return self.proc.stdout.readline().decode(errors="replace").strip() if readable else ""

    def run(self, argv: Sequence[str], timeout: float = 100.0) -> None:
        """Run a (self-daemonizing) command as the holder's child, inside the host."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(list(argv)) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError as exc:
            raise LabError(f"host {self.host}: holder died; see {self.log_path}") from exc
        answer = self.read_line(timeout)
        if answer != "0":
            daemon_log = self.log_path.with_name("daemons.log")
            raise LabError(f"host {self.host}: `{shlex.join(argv)}` failed ({answer or 'no answer'}); "
                           f"see {daemon_log}:\n{tail(daemon_log)}")

    def release(self) -> None:
        """No more commands: the holder goes on reaping until it is killed."""
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def start_holder(cfg: LabConfig, host: HostSpec) -> Holder:
    """Start the host's holder: enter its network namespace, unshare fresh private mount and UTS
    namespaces, then `kvmlab_impl.py _hostinit` (see host_init) in them."""
    host_dir = cfg.host_dir(host.name)
    python = sys.executable or "/usr/bin/python3"
    cmd = ["nsenter", f"--net={cfg.host_ns_path(host.name)}", "--",
           "unshare", "--mount", "--uts", "--propagation", "private", "--",
           python, "-I", "-B", str(IMPL_PATH), "_hostinit", str(host_dir), host.name,
           cfg.holder_name(host.name)]
    log_path = host_dir / "holder.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                env=clean_env(), start_new_session=True, cwd="/")
    holder = Holder(host.name, proc, log_path)
    if holder.read_line(30) != "ready":
        if proc.poll() is None:
            proc.kill()
        holder.release()
        raise LabError(f"host {host.name}: holder setup failed; see {log_path}:\n{tail(log_path)}")
    (host_dir / "holder.pid").write_text(f"{proc.pid}\n")
    return holder


def libvirtd_answers(holder: int) -> bool:
    # `uri` connects without triggering the QEMU capabilities probe (`version` would).
    try:
        proc = subprocess.run(virsh_in_host(holder, "uri"), capture_output=True, text=True,
                              timeout=10, env=clean_env(), check=False)
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def boot_host(cfg: LabConfig, host: HostSpec, caps_gate: threading.Event | None = None,
              probe: bool = False) -> None:
    """Boot a host whose directory and network namespace exist: holder, sshd, libvirtd.

    caps_gate: wait for it before starting libvirtd (another host is probing QEMU).
    probe: this host probes QEMU capabilities and saves them to the lab's cache.
    """
    host_dir = cfg.host_dir(host.name)
    try:
        holder = start_holder(cfg, host)
        try:
            sshd_dir = host_dir / "sshd"
            holder.run(["/usr/sbin/sshd", "-f", str(sshd_dir / "sshd_config"),
                        "-E", str(sshd_dir / "sshd.log")])
            if caps_gate is not None and not probe:
                caps_gate.wait(timeout=180)
            seed_qemu_caps(cfg, host_dir)
            # libvirtd's default pid file is /run/libvirtd.pid, which all hosts would share.
            holder.run(["libvirtd", "--daemon", "--listen", "--pid-file", "/run/libvirt/libvirtd.pid"])
        finally:
            holder.release()
        wait_until(lambda: libvirtd_answers(holder.pid), 60, f"libvirtd on {host.name}", 0.1)
        if probe:
            run(virsh_in_host(holder.pid, "capabilities"), timeout=120)
            save_qemu_caps(cfg, host_dir)
    finally:
        if probe and caps_gate is not None:
            caps_gate.set()
    wait_until(lambda: tcp_listening(holder.pid, host.address, 22), 30, f"sshd on {host.name}")


def kill_processes(keys: set[tuple[int, int]], holders: set[int]) -> int:
    """Kill everything in the given network namespaces: first all but the holders, so the
    holders (subreapers) reap them, then the holders themselves."""
    count = kill_netns_processes(keys, spare=holders)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and zombie_children(holders):
        time.sleep(0.02)
    return count + kill_netns_processes(keys)


def zombie_children(parents: set[int]) -> list[int]:
    found = []
    for pid in all_pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z" and int(fields[1]) in parents:
            found.append(pid)
    return found


def kill_host(cfg: LabConfig, host: str) -> int:
    """Kill every process of a host: everything in its network namespace, plus a holder that
    somehow lost its namespace (found by its command line)."""
    keys = {key for key in (ns_key(cfg.host_ns_path(host)),) if key is not None}
    holders = set(find_holders(cfg, host))
    for pid in holders:
        key = ns_key(f"/proc/{pid}/ns/net")
        if key is not None:
            keys.add(key)
    return kill_processes(keys, holders)


def find_holders(cfg: LabConfig, host: str | None = None) -> list[int]:
    """PIDs of this lab's holders, by command line (all hosts, or one)."""
    pattern = re.compile(re.escape(cfg.name) + (r"-hv\d+" if host is None else "-" + re.escape(host)))
    found = []
    for pid in all_pids():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if len(argv) >= 8 and argv[4] == "_hostinit" and argv[3] == str(IMPL_PATH) \
                and argv[5].startswith(str(cfg.hosts_dir) + "/") and pattern.fullmatch(argv[7]):
            found.append(pid)
    return found


def clear_run_dir(cfg: LabConfig, host: str, which: str) -> None:
    """/run is a tmpfs on a real host: a reboot forgets running domains, pid files, sockets, schedules."""
    run_dir = cfg.host_dir(host) / which
    for entry in os.scandir(run_dir):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def stop_host_gracefully(cfg: LabConfig, host: str, grace: float) -> int:
    """What `systemctl reboot` does to a host's processes: SIGTERM to all of them at once (guests,
    libvirtd, sshd, sessions, stage runners and scripts, in no useful order), then up to GRACE seconds
    for them to end. Returns how many got the signal; the hard reset that follows kills the rest."""
    keys = {key for key in (ns_key(cfg.host_ns_path(host)),) if key is not None}
    holders = set(find_holders(cfg, host))
    pids = [pid for pid in pids_in_netns(keys) if pid not in holders]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and [pid for pid in pids_in_netns(keys) if pid not in holders]:
        time.sleep(0.05)
    return len(pids)


def reboot_host(cfg: LabConfig, host: HostSpec, grace: float | None = None) -> str:
    """Hard reset (or, with GRACE, a graceful reboot first): kill everything, new boot id, fresh mount
    namespace, daemons again."""
    if grace is not None:
        stop_host_gracefully(cfg, host.name, grace)
    kill_host(cfg, host.name)
    for which in ("run-libvirt", "run-systemd-shutdown"):
        clear_run_dir(cfg, host.name, which)
    boot_id = write_boot_id(cfg.host_dir(host.name))
    boot_host(cfg, host)
    return boot_id


# --------------------------------------------------------------------------------------------
# The power daemon: reboots a host asks for itself
# --------------------------------------------------------------------------------------------

def powerd_argv(cfg: LabConfig) -> list[str]:
    return [sys.executable or "/usr/bin/python3", "-I", "-B", str(IMPL_PATH), "_powerd", str(cfg.lab_dir)]


def powerd_pid(cfg: LabConfig) -> int | None:
    """The lab's power daemon, if it runs (its command line names this lab's directory)."""
    pid = read_pid(cfg.powerd_pid_file)
    if pid is None:
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return pid if argv[3:6] == powerd_argv(cfg)[3:6] and state not in ("Z", "X") else None


def start_powerd(cfg: LabConfig) -> None:
    """Start the power daemon in the machine's own namespaces, where a host's reboot cannot kill it."""
    with open(cfg.lab_dir / "powerd.log", "ab") as log:
        proc = subprocess.Popen(powerd_argv(cfg), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env={**clean_env(), **cfg.environment()}, start_new_session=True, cwd="/")
    cfg.powerd_pid_file.write_text(f"{proc.pid}\n")


def stop_powerd(cfg: LabConfig) -> None:
    pid = powerd_pid(cfg)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    cfg.powerd_pid_file.unlink(missing_ok=True)


def scheduled_reboot_due(cfg: LabConfig, host: str, now: float) -> bool:
    """Whether the host's scheduled shutdown (systemd's format: USEC=<epoch microseconds>) has fallen due."""
    try:
        fields = dict(line.split("=", 1) for line in
                      (cfg.host_dir(host) / "run-systemd-shutdown" / SCHEDULED_SHUTDOWN).read_text().splitlines()
                      if "=" in line)
    except OSError:
        return False
    usec = fields.get("USEC", "0").strip()
    return not usec.isdigit() or int(usec) / 1e6 <= now


def power_daemon(cfg: LabConfig) -> int:
    """`_powerd`: the hardware under `/run/kvmlab/reboot`. Reboots each host whose scheduled shutdown has
    fallen due, gracefully, through `kvmlab reboot HOST --graceful` (which clears the schedule, as a real
    reboot empties /run). Ends when the lab is gone."""
    lab = require_lab(cfg)
    while cfg.state_file.exists():
        for host in lab.hosts:
            if scheduled_reboot_due(cfg, host.name, time.time()):
                proc = subprocess.run([*powerd_argv(cfg)[:4], "reboot", host.name, "--graceful"],
                                      capture_output=True, text=True, env={**clean_env(), **cfg.environment()},
                                      check=False, timeout=300)
                print(f"{time.strftime('%H:%M:%S')} {host.name}: {(proc.stdout + proc.stderr).strip()}", flush=True)
                clear_run_dir(cfg, host.name, "run-systemd-shutdown")  # even if the reboot failed: once only
        time.sleep(0.1)
    return 0


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------

def guest_xml(name: str, memory_mib: int, vcpus: int, metadata_xml: str | None) -> str:
    """A tiny real guest: TCG, no disk, no NIC, no balloon, serial into the host's log dir."""
    metadata = f"  <metadata>\n{metadata_xml.strip()}\n  </metadata>\n" if metadata_xml else ""
    return f"""<domain type='qemu'>
  <name>{name}</name>
{metadata}  <memory unit='MiB'>{memory_mib}</memory>
  <currentMemory unit='MiB'>{memory_mib}</currentMemory>
  <vcpu placement='static'>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <boot dev='hd'/>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{QEMU_BINARY}</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='/var/log/libvirt/qemu/{name}.serial.log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def validate_guest_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
        raise LabError(f"invalid guest name {name!r} (letters, digits, '.', '_', '-')")


def define_guest(cfg: LabConfig, host: str, name: str, memory_mib: int = 64, vcpus: int = 1,
                 metadata_xml: str | None = None, start: bool = True) -> None:
    validate_guest_name(name)
    if memory_mib < 16 or vcpus < 1:
        raise LabError("need --memory-mib >= 16 and --vcpus >= 1")
    if metadata_xml:
        try:
            ElementTree.fromstring(f"<metadata>{metadata_xml}</metadata>")
        except ElementTree.ParseError as exc:
            raise LabError(f"metadata is not well-formed XML: {exc}") from exc
    holder = require_holder(cfg, host)
    # The lab dir is visible at the same path inside the host's mount namespace.
    xml_path = cfg.host_dir(host) / "guest-xml" / f"{name}.xml"
    xml_path.parent.mkdir(exist_ok=True)
    xml_path.write_text(guest_xml(name, memory_mib, vcpus, metadata_xml))
    run(virsh_in_host(holder, "define", str(xml_path)))
    if start:
        run(virsh_in_host(holder, "start", name))


def host_guests(cfg: LabConfig, host: str) -> list[dict[str, Any]]:
    """The host's domains as [{name, state, persistent}], or [{error}] when libvirtd is
    unreachable (the host is reported, never crashes the listing)."""
    holder = holder_pid(cfg, host)
    if holder is None:
        return [{"error": f"host {host} is not running"}]
    # One virsh process for both lists; its `echo` separates them (without a newline under -q).
    cmd = virsh_in_host(holder, f"list --all; echo {GUESTS_MARK}; list --all --persistent --name")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=15, env=clean_env(),
                              check=False)
    except subprocess.TimeoutExpired:
        return [{"error": f"libvirtd on {host} did not answer within 15s"}]
    if proc.returncode != 0:
        return [{"error": f"libvirtd on {host} unreachable: {proc.stderr.strip()}"}]
    table, _mark, persistent_part = proc.stdout.partition(GUESTS_MARK)
    persistent = {line.strip() for line in persistent_part.splitlines() if line.strip()}
    guests = []
    for line in table.splitlines():
        match = re.match(r"^\s*(\S+)\s+(\S+)\s+(\S.*?)\s*$", line)
        if match:
            guests.append({"name": match.group(2), "state": match.group(3),
                           "persistent": match.group(2) in persistent})
    return guests


# --------------------------------------------------------------------------------------------
# Lab lifecycle
# --------------------------------------------------------------------------------------------

class LabLock:
    """Serialise commands that change the lab (two `up`s at once would trip over each other)."""

    def __init__(self, cfg: LabConfig) -> None:
        self.path = cfg.lock_file
        self.fd = -1

    def __enter__(self) -> "LabLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def lab_is_healthy(lab: Lab) -> bool:
    cfg = lab.cfg
    if not link_exists(cfg.ctl_if) or not cfg.inventory_file.exists() or powerd_pid(cfg) is None:
        return False
    for host in lab.hosts:
        netns = ns_key(cfg.host_ns_path(host.name))
        host_dir = cfg.host_dir(host.name)
        if not (pid_alive_in(read_pid(host_dir / "holder.pid"), netns)
                and pid_alive_in(read_pid(host_dir / "sshd" / "sshd.pid"), netns)
                and pid_alive_in(read_pid(host_dir / "run-libvirt" / "libvirtd.pid"), netns)):
            return False
    return True


def write_inventory(lab: Lab) -> Path:
    cfg = lab.cfg
    out = [
        f"# Generated by `kvmlab up` for the lab in {cfg.lab_dir}; rewritten on every build.",
        "all:",
        "  vars:",
        "    ansible_user: root",
        f"    ansible_ssh_private_key_file: {cfg.key_file}",
        "    ansible_python_interpreter: /usr/bin/python3",
        f'    ansible_ssh_common_args: "{SSH_COMMON_ARGS}"',
        "    # Lab libvirtds listen on TCP without auth; a real fleet uses qemu+ssh or qemu+tls.",
        '    rm_migration_uri: "qemu+tcp://{{ ansible_host }}/system"',
        "    # Every lab host has the machine's 2 CPUs; KVM fleets commonly overcommit vCPUs.",
        "    rm_cpu_overcommit_ratio: 4",
        "  children:",
        "    kvm_hosts:",
        "      children:",
    ]
    for cluster_no in range(1, lab.clusters + 1):
        cluster = f"c{cluster_no}"
        out += [f"        {cluster}:", "          hosts:"]
        for host in lab.hosts:
            if host.cluster == cluster:
                out.append(f"            {host.name}: {{ansible_host: {host.address}, rm_zone: "
                           f"{host.zone}, rm_pod: {host.pod}, rm_cluster: {host.cluster}}}")
    cfg.inventory_file.write_text("\n".join(out) + "\n")
    return cfg.inventory_file


def lab_down(cfg: LabConfig, remove_files: bool = True) -> None:
    """Remove everything the lab made, found by name (so a half-built lab goes too); keeps the
    reusable caches (ssh/ and qemu-caps/)."""
    lab = None
    try:
        lab = load_lab(cfg)
    except LabError:
        pass
    subnet = lab.cfg.subnet if lab else cfg.subnet
    stop_powerd(cfg)
    close_controller_ssh(subnet)
    if cfg.subnet != subnet:
        close_controller_ssh(cfg.subnet)
    existing = list_netns()
    host_ns = sorted(ns for ns in existing if re.fullmatch(re.escape(cfg.name) + r"-hv\d+", ns))
    keys = {key for key in (ns_key(f"/run/netns/{ns}") for ns in host_ns + [cfg.lab_ns]) if key}
    holders = set(find_holders(cfg))
    for pid in holders:
        key = ns_key(f"/proc/{pid}/ns/net")
        if key is not None:
            keys.add(key)
    kill_processes(keys, holders)
    # Delete the links explicitly: even if something still pinned a namespace, no interface
    # (and so no route) of the lab survives.
    if link_exists(cfg.ctl_if):
        run(["ip", "link", "del", cfg.ctl_if])
    if cfg.lab_ns in existing:
        proc = run(["ip", "-n", cfg.lab_ns, "-j", "link", "show"], check=False)
        for link in json.loads(proc.stdout or "[]"):
            if link.get("ifname") not in ("lo", None):
                run(["ip", "-n", cfg.lab_ns, "link", "del", link["ifname"]], check=False)
    for ns in host_ns + ([cfg.lab_ns] if cfg.lab_ns in existing else []):
        run(["ip", "netns", "del", ns])
    for net in sorted({subnet, cfg.subnet}):
        proc = run(["ip", "-j", "-4", "route", "show", "exact", str(net)], check=False)
        for route in json.loads(proc.stdout or "[]"):
            if route.get("dev") == cfg.ctl_if:
                run(["ip", "route", "del", str(net), "dev", cfg.ctl_if], check=False)
    if remove_files:
        for path in (cfg.state_file, cfg.inventory_file, cfg.authorized_keys):
            path.unlink(missing_ok=True)
        unmount_under(cfg.hosts_dir)
        shutil.rmtree(cfg.hosts_dir, ignore_errors=True)
        shutil.rmtree(cfg.lab_dir / "qemu-caps.new", ignore_errors=True)


def lab_up(cfg: LabConfig, clusters: int, hosts_per_cluster: int, vms_per_host: int) -> str:
    """Build the lab (or leave a healthy one of the same shape alone). Returns a summary."""
    started = time.monotonic()
    planned = plan_lab(cfg, clusters, hosts_per_cluster, vms_per_host)
    try:
        current = load_lab(cfg)
    except LabError:
        current = None
    if current is not None and current.cfg.subnet == cfg.subnet \
            and current.same_shape(clusters, hosts_per_cluster, vms_per_host) and lab_is_healthy(current):
        for host in current.hosts:
            if link_is_up(cfg, host.name) is False:
                set_link(cfg, host.name, True)
        return f"lab already up ({len(current.hosts)} hosts); nothing to do"
    ensure_prerequisites()
    lab_down(cfg)
    check_subnet_free(cfg)
    cfg.lab_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(cfg.lab_dir, 0o755)
    ensure_controller_key(cfg)
    try:
        build_network(cfg, planned)
        parallel(lambda host: create_host_files(cfg, planned, host), planned.hosts)
        have_caps = (cfg.caps_dir / "qemu" / "capabilities").is_dir()
        gate = None if have_caps else threading.Event()
        parallel(lambda host: boot_host(cfg, host, caps_gate=gate,
                                        probe=gate is not None and host.index == 1), planned.hosts)
        parallel(lambda host: [define_guest(cfg, host.name, f"{host.name}-vm{number}")
                               for number in range(1, vms_per_host + 1)], planned.hosts)
        write_inventory(planned)
        cfg.state_file.write_text(json.dumps(planned.to_json(), indent=2) + "\n")
        start_powerd(cfg)
    except BaseException:
        # Leave no namespaces or daemons behind, but keep the host dirs' logs to look at.
        try:
            lab_down(cfg, remove_files=False)
        except LabError as exc:
            print(f"kvmlab: cleanup after failed up also failed: {exc}", file=sys.stderr)
        raise
    elapsed = time.monotonic() - started
    probe_note = "" if have_caps else " (including the one-time QEMU capabilities probe)"
    return (f"lab up: {len(planned.hosts)} hosts, {len(planned.hosts) * vms_per_host} guests "
            f"in {elapsed:.1f}s{probe_note}; inventory {cfg.inventory_file}")


def host_status(cfg: LabConfig, host: HostSpec) -> dict[str, Any]:
    host_dir = cfg.host_dir(host.name)
    netns = ns_key(cfg.host_ns_path(host.name))
    pids = {"holder": read_pid(host_dir / "holder.pid"),
            "sshd": read_pid(host_dir / "sshd" / "sshd.pid"),
            "libvirtd": read_pid(host_dir / "run-libvirt" / "libvirtd.pid")}
    alive = {name: pid_alive_in(pid, netns) for name, pid in pids.items()}
    try:
        boot_id = (host_dir / "boot_id").read_text().strip()
    except OSError:
        boot_id = None
    link = link_is_up(cfg, host.name)
    status: dict[str, Any] = {
        "address": host.address, "cluster": host.cluster, "pod": host.pod, "zone": host.zone,
        **alive, **{f"{name}_pid": (pid if alive[name] else None) for name, pid in pids.items()},
        "boot_id": boot_id, "link": {True: "up", False: "down", None: "missing"}[link],
    }
    guests = host_guests(cfg, host.name) if alive["libvirtd"] else [{"error": "libvirtd not running"}]
    if guests and "error" in guests[0]:
        status.update(guests=None, running=None, error=guests[0]["error"])
    else:
        status.update(guests=len(guests), running=sum(g["state"] == "running" for g in guests))
    return status


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------

def cmd_up(cfg: LabConfig, args: argparse.Namespace) -> int:
    with LabLock(cfg):
        print(lab_up(cfg, args.clusters, args.hosts_per_cluster, args.vms_per_host))
    return 0


def cmd_down(cfg: LabConfig, _args: argparse.Namespace) -> int:
    with LabLock(cfg):
        lab_down(cfg)
    print(f"lab {cfg.name} is down (kept caches: {cfg.ssh_dir}, {cfg.caps_dir})")
    return 0


def cmd_inventory(cfg: LabConfig, _args: argparse.Namespace) -> int:
    require_lab(cfg)
    if not cfg.inventory_file.exists():
        raise LabError(f"{cfg.inventory_file} is missing; run `kvmlab up`")
    print(cfg.inventory_file)
    return 0


def cmd_path(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    host = lab.host(args.host)
    base = cfg.host_dir(host.name)
    print(base / args.what if args.what else base)
    return 0


def cmd_status(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    statuses = parallel(lambda host: host_status(cfg, host), lab.hosts)
    report = {host.name: status for host, status in zip(lab.hosts, statuses)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    yes_no = {True: "yes", False: "NO"}
    print(f"{'HOST':<6} {'CLUSTER':<7} {'ADDRESS':<15} {'HOLDER':<6} {'SSHD':<5} {'LIBVIRTD':<8} "
          f"{'LINK':<5} {'GUESTS':<12} BOOT_ID")
    for name, st in report.items():
        guests = f"{st['running']}/{st['guests']} running" if st["guests"] is not None else "?"
        print(f"{name:<6} {st['cluster']:<7} {st['address']:<15} {yes_no[st['holder']]:<6} "
              f"{yes_no[st['sshd']]:<5} {yes_no[st['libvirtd']]:<8} {st['link']:<5} {guests:<12} "
              f"{st['boot_id']}")
    return 0


def cmd_guests(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    lists = parallel(lambda host: host_guests(cfg, host.name), lab.hosts)
    report = {host.name: guests for host, guests in zip(lab.hosts, lists)}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for host, guests in report.items():
        if not guests:
            print(f"{host:<6} (no guests)")
        for guest in guests:
            if "error" in guest:
                print(f"{host:<6} ERROR: {guest['error']}")
            else:
                kind = "persistent" if guest["persistent"] else "transient"
                print(f"{host:<6} {guest['name']:<24} {guest['state']:<10} {kind}")
    return 0


def cmd_guest(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    host = lab.host(args.host)
    metadata = None
    if args.metadata_xml:
        try:
            metadata = Path(args.metadata_xml).read_text()
        except OSError as exc:
            raise LabError(f"cannot read --metadata-xml: {exc}") from exc
    with LabLock(cfg):
        define_guest(cfg, host.name, args.name, args.memory_mib, args.vcpus, metadata,
                     start=not args.no_start)
    print(f"{host.name}: guest {args.name} defined" + ("" if args.no_start else " and started"))
    return 0


def cmd_exec(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    host = lab.host(args.host)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise LabError("usage: kvmlab exec HOST -- CMD [ARGS...]")
    holder = require_holder(cfg, host.name)
    sys.stdout.flush()
    # exec: stdin/stdout/stderr pass straight through and CMD's exit code becomes ours.
    argv = in_host(holder, command)
    os.execvpe(argv[0], argv, clean_env())
    return 127  # not reached


def cmd_reboot(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    host = lab.host(args.host)
    started = time.monotonic()
    with LabLock(cfg):
        boot_id = reboot_host(cfg, host, grace=args.grace if args.graceful else None)
    how = "gracefully " if args.graceful else ""
    print(f"{host.name} rebooted {how}in {time.monotonic() - started:.1f}s, boot id {boot_id}")
    return 0


def cmd_link(cfg: LabConfig, args: argparse.Namespace) -> int:
    lab = require_lab(cfg)
    host = lab.host(args.host)
    with LabLock(cfg):
        set_link(cfg, host.name, args.state == "up")
    print(f"{host.name}: link {args.state}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kvmlab", description="Simulated KVM hypervisors on this machine (see extensions/lab/README.md). "
        "Environment: KVMLAB_DIR (default /tmp/kvmlab), KVMLAB_NAME (default kvmlab), "
        "KVMLAB_SUBNET (default 10.213.47.0/24).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="build the lab (idempotent)")
    up.add_argument("--clusters", type=int, default=2)
    up.add_argument("--hosts-per-cluster", type=int, default=3)
    up.add_argument("--vms-per-host", type=int, default=2)
    up.set_defaults(func=cmd_up)

    sub.add_parser("down", help="remove everything the lab made").set_defaults(func=cmd_down)
    sub.add_parser("inventory", help="print the path of the Ansible inventory").set_defaults(
        func=cmd_inventory)

    status = sub.add_parser("status", help="hosts, daemons, boot ids, links, guest counts")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    guests = sub.add_parser("guests", help="every guest on every host")
    guests.add_argument("--json", action="store_true")
    guests.set_defaults(func=cmd_guests)

    guest = sub.add_parser("guest", help="define (and start) an extra guest on a host")
    guest.add_argument("host")
    guest.add_argument("name")
    guest.add_argument("--memory-mib", type=int, default=64)
    guest.add_argument("--vcpus", type=int, default=1)
    guest.add_argument("--metadata-xml", metavar="FILE",
                       help="XML inserted inside the domain's <metadata> element")
    guest.add_argument("--no-start", action="store_true")
    guest.set_defaults(func=cmd_guest)

    path = sub.add_parser("path", help="the on-disk directory of a host (or its hooks/state)")
    path.add_argument("host")
    path.add_argument("what", nargs="?", choices=["hooks", "state"])
    path.set_defaults(func=cmd_path)

    execp = sub.add_parser("exec", help="run a command inside a host: exec HOST -- CMD...")
    execp.add_argument("host")
    execp.add_argument("command", nargs=argparse.REMAINDER)
    execp.set_defaults(func=cmd_exec)

    reboot = sub.add_parser("reboot", help="hard-reset a host (new boot id, guests shut off), or reboot it "
                            "gracefully")
    reboot.add_argument("host")
    reboot.add_argument("--graceful", action="store_true",
                        help="first SIGTERM to every process of the host, as `systemctl reboot` sends, then "
                        "--grace seconds for them to end before the rest is killed")
    reboot.add_argument("--grace", type=float, default=DEFAULT_SHUTDOWN_GRACE, metavar="SECONDS")
    reboot.set_defaults(func=cmd_reboot)

    link = sub.add_parser("link", help="cut or restore a host's network")
    link.add_argument("host")
    link.add_argument("state", choices=["up", "down"])
    link.set_defaults(func=cmd_link)
    return parser


def main(argv: Sequence[str]) -> int:
    if argv and argv[0] == "_hostinit":  # internal: the holder's setup inside a new host
        return host_init(*argv[1:4])
    if argv and argv[0] == "_powerd":  # internal: the lab's power daemon (start_powerd)
        return power_daemon(LabConfig.from_env())
    args = build_parser().parse_args(list(argv))
    try:
        require_root()
        cfg = LabConfig.from_env()
        return int(args.func(cfg, args))
    except LabError as exc:
        print(f"kvmlab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("kvmlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
