# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""libvirt access shared by the collection's modules.

The libvirt Python binding is imported behind a guard, so that a module can fail with a message
that names the missing package instead of a traceback::

    if not HAS_LIBVIRT:
        module.fail_json(msg=missing_required_lib("libvirt-python (Debian: python3-libvirt)"),
                         exception=LIBVIRT_IMPORT_ERROR)

:func:`libvirt_error_message` turns a ``libvirt.libvirtError`` (or any other exception met while
talking to libvirt) into one message an operator can act on. It relies only on the exception's
methods, never on the binding's constants, so it works (and is testable) without libvirt.
Private to the collection (leading underscore): not a public API.
"""

from __future__ import annotations

import traceback
from typing import Any, Optional, Tuple

LIBVIRT_IMPORT_ERROR: Optional[str]
try:
    import libvirt
except ImportError:
    HAS_LIBVIRT = False
    LIBVIRT_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_LIBVIRT = True
    LIBVIRT_IMPORT_ERROR = None

LIBVIRT_REQUIREMENT = "libvirt-python (Debian: python3-libvirt)"
DEFAULT_URI = "qemu:///system"

# virErrorNumber values (libvirt's include/libvirt/virterror.h; stable ABI), by the hint they lead to.
VIR_ERR_NO_SUPPORT = 3
VIR_ERR_NO_CONNECT = 5
VIR_ERR_INVALID_CONN = 6
VIR_ERR_OPERATION_DENIED = 29
VIR_ERR_SYSTEM_ERROR = 38
VIR_ERR_RPC = 39
VIR_ERR_NO_DOMAIN = 42
VIR_ERR_AUTH_FAILED = 45
VIR_ERR_OPERATION_INVALID = 55
VIR_ERR_CONFIG_UNSUPPORTED = 67
VIR_ERR_OPERATION_TIMEOUT = 68
VIR_ERR_MIGRATE_PERSIST_FAILED = 69
VIR_ERR_HOOK_SCRIPT_FAILED = 70
VIR_ERR_ARGUMENT_UNSUPPORTED = 74
VIR_ERR_OPERATION_ABORTED = 78
VIR_ERR_AUTH_CANCELLED = 79
VIR_ERR_MIGRATE_UNSAFE = 81
VIR_ERR_OPERATION_UNSUPPORTED = 84
VIR_ERR_SSH = 85
VIR_ERR_AGENT_UNRESPONSIVE = 86
VIR_ERR_ACCESS_DENIED = 88
VIR_ERR_CPU_INCOMPATIBLE = 91
VIR_ERR_AUTH_UNAVAILABLE = 94
VIR_ERR_LIBSSH = 98

_ERROR_NAMES = {
    VIR_ERR_NO_SUPPORT: "VIR_ERR_NO_SUPPORT",
    VIR_ERR_NO_CONNECT: "VIR_ERR_NO_CONNECT",
    VIR_ERR_INVALID_CONN: "VIR_ERR_INVALID_CONN",
    VIR_ERR_OPERATION_DENIED: "VIR_ERR_OPERATION_DENIED",
    VIR_ERR_SYSTEM_ERROR: "VIR_ERR_SYSTEM_ERROR",
    VIR_ERR_RPC: "VIR_ERR_RPC",
    VIR_ERR_NO_DOMAIN: "VIR_ERR_NO_DOMAIN",
    VIR_ERR_AUTH_FAILED: "VIR_ERR_AUTH_FAILED",
    VIR_ERR_OPERATION_INVALID: "VIR_ERR_OPERATION_INVALID",
    VIR_ERR_CONFIG_UNSUPPORTED: "VIR_ERR_CONFIG_UNSUPPORTED",
    VIR_ERR_OPERATION_TIMEOUT: "VIR_ERR_OPERATION_TIMEOUT",
    VIR_ERR_MIGRATE_PERSIST_FAILED: "VIR_ERR_MIGRATE_PERSIST_FAILED",
    VIR_ERR_HOOK_SCRIPT_FAILED: "VIR_ERR_HOOK_SCRIPT_FAILED",
    VIR_ERR_ARGUMENT_UNSUPPORTED: "VIR_ERR_ARGUMENT_UNSUPPORTED",
    VIR_ERR_OPERATION_ABORTED: "VIR_ERR_OPERATION_ABORTED",
    VIR_ERR_AUTH_CANCELLED: "VIR_ERR_AUTH_CANCELLED",
    VIR_ERR_MIGRATE_UNSAFE: "VIR_ERR_MIGRATE_UNSAFE",
    VIR_ERR_OPERATION_UNSUPPORTED: "VIR_ERR_OPERATION_UNSUPPORTED",
    VIR_ERR_SSH: "VIR_ERR_SSH",
    VIR_ERR_AGENT_UNRESPONSIVE: "VIR_ERR_AGENT_UNRESPONSIVE",
    VIR_ERR_ACCESS_DENIED: "VIR_ERR_ACCESS_DENIED",
    VIR_ERR_CPU_INCOMPATIBLE: "VIR_ERR_CPU_INCOMPATIBLE",
    VIR_ERR_AUTH_UNAVAILABLE: "VIR_ERR_AUTH_UNAVAILABLE",
    VIR_ERR_LIBSSH: "VIR_ERR_LIBSSH",
}

HINT_DAEMON = ("libvirtd is not running or not reachable where the URI points: on the host check `systemctl "
               "status libvirtd` (or the modular virtqemud and its .socket units) and that /run/libvirt holds its "
               "socket; for a remote URI also the host name, the port and that the daemon listens (listen_tcp or "
               "virtproxyd-tcp.socket)")
HINT_PERMISSION = ("the connecting user may not use this libvirt socket: run the task as root (become: true) "
                   "or add the user to the libvirt group / grant it in polkit")
HINT_AUTH = ("authentication to libvirt failed: check the auth_* settings in libvirtd.conf, the SASL or "
             "polkit configuration, and for qemu+ssh:// the SSH key of the connecting user")
HINT_NO_DOMAIN = ("the domain is not (or no longer) defined on this host: it may have been migrated away, "
                  "undefined, or its name is misspelt; `virsh list --all` shows what exists")
HINT_TIMEOUT = ("libvirt gave up waiting: the host or its libvirtd may be overloaded or unreachable, or the "
                "domain is stuck in a job (`virsh domjobinfo DOMAIN`); retry, or raise the timeout")
HINT_NETWORK = ("the libvirt daemon could not be reached over the network: check the host name, that "
                "libvirtd listens (listen_tcp/listen_tls or virtproxyd-tcp.socket), firewalls, and for "
                "qemu+ssh:// that SSH works non-interactively")
HINT_MIGRATION = ("the migration was refused: the VM may have host devices or local disks (storage that is "
                  "not shared), a CPU model or machine type the target cannot provide, or the target may be "
                  "the source itself (same host_uuid) or unreachable for migration traffic (migration_address, "
                  "ports 49152-49215); `virsh domjobinfo` and the target's libvirtd log say more")
HINT_CONNECTION_LOST = ("a libvirt connection closed in the middle of the call: a libvirtd went away (this host's, or in a "
                        "migration the target's: it stopped, was restarted, or its host went down) or the network "
                        "between source and target broke; check both daemons (`systemctl status libvirtd`) and their "
                        "logs. Guests keep running while their libvirtd is down, and it finds them again when it starts")
HINT_HOOK = ("a libvirt hook script (/etc/libvirt/hooks/qemu or a script in /etc/libvirt/hooks/qemu.d) failed or was "
             "killed: in a migration it is the target's, run when the guest arrives, and a target going down kills it; "
             "run the script by hand with the arguments in the message and read the target's libvirtd log")
HINT_UNAVAILABLE = "the libvirt Python binding is not installed on the host: install libvirt-python (Debian: python3-libvirt)"


def _error_fields(exc: Exception) -> Tuple[Optional[int], str]:
    """Return libvirt's error code (None when unknown) and error text for any exception."""
    code: Optional[int] = None
    text = ""
    get_code = getattr(exc, "get_error_code", None)
    if callable(get_code):
        value = get_code()
        if isinstance(value, int):
            code = value
    get_text = getattr(exc, "get_error_message", None)
    if callable(get_text):
        text = str(get_text() or "")
    if not text:
        text = str(exc) or exc.__class__.__name__
    return code, " ".join(text.split())


# Texts of a libvirt connection that closed under a call (the peer's daemon went away).
_CONNECTION_LOST_MARKERS = ("client socket is closed", "end of file while reading data", "cannot recv data",
                            "connection reset by peer")


def _is_local_uri(uri: Optional[str]) -> bool:
    """A URI with no host part (qemu:///system): the daemon on this host, where a broken connection is no network
    problem."""
    return uri is not None and uri.partition("://")[2].startswith("/")


def _hint(code: Optional[int], text: str, doing: str, uri: Optional[str] = None) -> Optional[str]:
    """The likely cause of an error and what to do about it, or None when there is no good guess."""
    lowered = text.lower()
    if code == VIR_ERR_NO_DOMAIN or "domain not found" in lowered:
        return HINT_NO_DOMAIN
    if code in (VIR_ERR_AUTH_FAILED, VIR_ERR_AUTH_CANCELLED, VIR_ERR_AUTH_UNAVAILABLE) or "authentication" in lowered:
        return HINT_AUTH
    if code == VIR_ERR_ACCESS_DENIED or "permission denied" in lowered or "access denied" in lowered:
        return HINT_PERMISSION
    if code == VIR_ERR_OPERATION_TIMEOUT or "timed out" in lowered or "timeout" in lowered:
        return HINT_TIMEOUT
    if code in (VIR_ERR_NO_CONNECT, VIR_ERR_INVALID_CONN) or "failed to connect socket" in lowered \
            or "connection refused" in lowered:
        return HINT_DAEMON
    if code == VIR_ERR_HOOK_SCRIPT_FAILED or "hook script execution failed" in lowered:
        return HINT_HOOK
    if any(marker in lowered for marker in _CONNECTION_LOST_MARKERS) and (
            _is_local_uri(uri) or "migrat" in doing.lower()):
        return HINT_CONNECTION_LOST
    if code in (VIR_ERR_SSH, VIR_ERR_LIBSSH, VIR_ERR_RPC) or any(
            marker in lowered for marker in ("no route to host", "name or service not known", "name resolution",
                                             "unable to resolve address", "cannot recv data",
                                             "end of file while reading data", "unable to connect to server")):
        return HINT_NETWORK
    if code in (VIR_ERR_MIGRATE_UNSAFE, VIR_ERR_MIGRATE_PERSIST_FAILED, VIR_ERR_CPU_INCOMPATIBLE) \
            or "migrat" in lowered or "migrat" in doing.lower():
        return HINT_MIGRATION
    return None


def libvirt_error_message(exc: Exception, doing: str, uri: Optional[str] = None,
                          domain: Optional[str] = None) -> str:
    """Turn an exception met while talking to libvirt into one line an operator can act on.

    ``doing`` says what was being attempted ("connecting", "listing domains", "migrating to hv2").
    The message names it, the URI and the domain when given, libvirt's own text with its error
    code, and a hint for the common causes. Works for any exception; libvirt's are recognised by
    their ``get_error_code()``/``get_error_message()`` methods.
    """
    code, text = _error_fields(exc)
    where = []
    if domain:
        where.append("domain %s" % domain)
    if uri:
        where.append("URI %s" % uri)
    head = "%s%s failed" % (doing, (" (%s)" % ", ".join(where)) if where else "")
    if code is not None:
        detail = "%s [libvirt error %d%s]" % (text, code, ", %s" % _ERROR_NAMES[code] if code in _ERROR_NAMES else "")
    else:
        detail = text
    message = "%s: %s" % (head, detail)
    hint = _hint(code, text, doing, uri)
    if hint:
        message = "%s. Hint: %s" % (message, hint)
    return message


def open_connection(uri: str = DEFAULT_URI, readonly: bool = False) -> Any:
    """Open a libvirt connection; raises libvirt.libvirtError (or RuntimeError without the binding).

    libvirt's default error handler, which prints every error to stderr, is silenced: errors reach
    the caller as exceptions and are reported through :func:`libvirt_error_message`.
    """
    if not HAS_LIBVIRT:
        raise RuntimeError(HINT_UNAVAILABLE)
    libvirt.registerErrorHandler(_ignore_error, None)
    if readonly:
        conn = libvirt.openReadOnly(uri)
    else:
        conn = libvirt.open(uri)
    if conn is None:  # very old bindings returned None instead of raising
        raise RuntimeError("libvirt returned no connection for %s" % uri)
    return conn


def _ignore_error(_context: Any, _error: Any) -> None:
    return None
