# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host variables a run reads, checked before anything touches a host and read the same way after.

They come from inventory and group_vars, but also from ``-e`` and AWX surveys, where every value is a
string: ``-e rm_reserved_host_memory_mib=2048`` is the number 2048, ``abc`` or ``-5`` is an error that
names the host and the variable. The scope check (rolling_scope) reports every problem at once; the
planner reads the values through the same function. Pure; private to the collection.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._stage import (
    DEFAULT_HOOKS_DIR,
    DEFAULT_STATE_DIR,
    EXECUTORS,
)

DEFAULT_RESERVED_MEMORY_MIB = 1024
DEFAULT_LIBVIRT_URI = "qemu:///system"
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\x00-\x1f\x7f]*")
# What may stand between "://" and the path: [user@]host[:port], the host a name, an IPv4 or a bracketed IPv6.
_HOST_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9._-]+@)?(?:(?P<name>[^\[\]:@]+)|\[(?P<ipv6>[^\]]+)\])(?::[0-9]{1,5})?")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


class HostSettingsError(RollingError, ValueError):
    """A host variable of the wrong type or range; the message names every one of the host's problems."""


@dataclass(frozen=True)
class HostSettings:
    """What the run reads of one host's variables, as checked values."""

    cpu_overcommit: float = 1.0
    memory_overcommit: float = 1.0
    reserved_memory_mib: float = float(DEFAULT_RESERVED_MEMORY_MIB)
    capacity: Dict[str, float] = field(default_factory=dict)
    tags: Tuple[str, ...] = ()
    enabled: bool = True
    libvirt_uri: str = DEFAULT_LIBVIRT_URI
    migration_uri: str = ""
    executor: str = "service"
    hooks_dir: str = DEFAULT_HOOKS_DIR
    state_dir: str = DEFAULT_STATE_DIR
    shared_storage_paths: Tuple[str, ...] = ()
    cluster_enabled: bool = True


def number(name: str, value: Any, minimum: float, strict: bool) -> float:
    """A finite number (an int, a float, or a string holding one) above ``minimum`` (or at it, unless strict)."""
    parsed: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = float(value)
    elif isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            parsed = None
    if parsed is None or not math.isfinite(parsed) or parsed < minimum or (strict and parsed == minimum):
        raise ValueError("%s must be a number %s %g, got %r" % (name, ">" if strict else ">=", minimum, value))
    return parsed


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("%s must be true or false, got %r" % (name, value))


def tag_names(name: str, value: Any) -> Tuple[str, ...]:
    """Tags from a list of strings or a comma-separated string; blanks dropped."""
    if isinstance(value, str):
        items: List[Any] = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ValueError("%s must be a list or a comma-separated string of tags, got %r" % (name, value))
    tags = []
    for item in items:
        listed = not isinstance(value, str)
        if not isinstance(item, str) or "," in item or (listed and not item.strip()):
            raise ValueError("%s: a tag must be a non-empty string without a comma, got %r" % (name, item))
        if item.strip():
            tags.append(item.strip())
    return tuple(tags)


def uri(name: str, value: Any) -> str:
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        # e.g. "qemu+tcp://{{ ansible_host }}/system" for a host that has no ansible_host (a local connection)
        raise ValueError("%s holds a template that cannot be resolved for this host, got %r" % (name, value))
    if not isinstance(value, str) or not _URI.fullmatch(value):
        raise ValueError("%s must be a libvirt URI such as qemu:///system or qemu+ssh://HOST/system (no blanks "
                         "or control characters), got %r" % (name, value))
    authority, slash, _rest = value.split("://", 1)[1].partition("/")
    # e.g. "qemu+tcp://{{ ansible_host }}/system" templated with ansible_host "hv2?netcat=x": libvirt would read
    # the rest as its query parameters, so the URI would no longer say which host it reaches.
    if not (authority == "" or _authority_is_a_host(authority)):
        raise ValueError("%s must name its host as [user@]host[:port] (a host name or an IP address), got %r"
                         % (name, value))
    if not slash:
        raise ValueError("%s has no path after its host (qemu+ssh://HOST/system), got %r" % (name, value))
    return value


def _authority_is_a_host(authority: str) -> bool:
    found = _AUTHORITY.fullmatch(authority)
    if not found:
        return False
    return _is_host_name(found.group("name")) if found.group("ipv6") is None else _is_ipv6(found.group("ipv6"))


def _is_host_name(address: str) -> bool:
    """A DNS name or an IPv4 address (a name's shape covers dotted digits)."""
    return len(address) <= 253 and bool(_HOST_NAME.fullmatch(address))


def _is_ipv6(address: str) -> bool:
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


def default_migration_uri(host: str, address: Any) -> str:
    """qemu+ssh://ADDRESS/system, ADDRESS the host's ansible_host (or its inventory name), refused unless a host."""
    source, target = ("ansible_host", address) if address not in (None, "") else ("the inventory name", host)
    if isinstance(target, str) and _is_ipv6(target):
        return "qemu+ssh://[%s]/system" % target
    if not isinstance(target, str) or not _is_host_name(target):
        raise ValueError("%s must be a host name or an IP address to build the default rm_migration_uri "
                         "(qemu+ssh://ADDRESS/system), got %r; fix it or set rm_migration_uri for this host"
                         % (source, target))
    return "qemu+ssh://%s/system" % target


def absolute_path(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith("/") or re.search(r"[\x00-\x1f]", value):
        raise ValueError("%s must be an absolute path, got %r" % (name, value))
    return value


def absolute_paths(name: str, value: Any) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError("%s must be a list of absolute paths, got %r" % (name, value))
    return tuple(absolute_path("%s[%d]" % (name, index), item) for index, item in enumerate(value))


def capacity_override(name: str, value: Any) -> Dict[str, float]:
    if value in (None, "", {}):
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("%s must be a mapping with cpus and/or memory_mib, got %r" % (name, value))
    extra = sorted(str(key) for key in value if key not in ("cpus", "memory_mib"))
    if extra:
        raise ValueError("%s: unknown key(s) %s (allowed: cpus, memory_mib)" % (name, ", ".join(extra)))
    return {str(key): number("%s.%s" % (name, key), item, 0, strict=False) for key, item in value.items()}


def executor(name: str, value: Any) -> str:
    if value not in EXECUTORS:
        raise ValueError("unknown %s %r (expected %s)" % (name, value, " or ".join(EXECUTORS)))
    return str(value)


# Each setting of HostSettings: the host variable it is read from, and its check.
HOST_VARIABLES: Dict[str, Tuple[str, Callable[[str, Any], Any]]] = {
    "cpu_overcommit": ("rm_cpu_overcommit_ratio", lambda n, v: number(n, v, 0, strict=True)),
    "memory_overcommit": ("rm_memory_overcommit_ratio", lambda n, v: number(n, v, 0, strict=True)),
    "reserved_memory_mib": ("rm_reserved_host_memory_mib", lambda n, v: number(n, v, 0, strict=False)),
    "capacity": ("rm_host_capacity", capacity_override),
    "tags": ("rm_host_tags", tag_names),
    "enabled": ("rm_host_enabled", boolean),
    "libvirt_uri": ("rm_libvirt_uri", uri),
    "migration_uri": ("rm_migration_uri", uri),
    "executor": ("rm_executor", executor),
    "hooks_dir": ("rm_hooks_dir", absolute_path),
    "state_dir": ("rm_state_dir", absolute_path),
    "shared_storage_paths": ("rm_shared_storage_paths", absolute_paths),
    "cluster_enabled": ("rm_cluster_enabled", boolean),
}


def host_settings(host: str, variables: Mapping[str, Any]) -> HostSettings:
    """HOST's settings from its variables (unset ones take their defaults); raise HostSettingsError naming
    every variable of the host that is of the wrong type or range."""
    values: Dict[str, Any] = {}
    problems: List[str] = []
    for attribute, (variable, check) in HOST_VARIABLES.items():
        value = variables.get(variable)
        if value is None or (value == "" and attribute == "migration_uri"):
            continue
        try:
            values[attribute] = check(variable, value)
        except ValueError as exc:
            problems.append(str(exc))
    if "migration_uri" not in values and not problems:
        try:
            values["migration_uri"] = default_migration_uri(host, variables.get("ansible_host"))
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise HostSettingsError("host %s: %s" % (host, "; ".join(problems)))
    return HostSettings(**values)
