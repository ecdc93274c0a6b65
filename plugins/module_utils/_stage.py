# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stage script rules shared by the maintenance_stage module and its action plugin.

Pure and typed: the stage names, how a stage script is looked up and vetted, how the payload is
split into argv words, how an exit is classified, and the format of a stage result. Private to
the collection (leading underscore): not a public API.
"""

from __future__ import annotations

import binascii
import os
import re
import signal
import stat
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.kvmops.rolling.plugins.module_utils._errors import RollingError
from ansible_collections.kvmops.rolling.plugins.module_utils._timing import MAX_SECONDS

STAGES: Tuple[str, ...] = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")
SCRIPT_SUFFIXES: Tuple[str, ...] = ("", ".sh", ".py")
EXECUTORS: Tuple[str, ...] = ("service", "agent")

# Exit code a PreFlight or PreMaintenance script uses to say the host needs no maintenance.
EXIT_NO_MAINTENANCE = 70
STAGES_ALLOWING_NO_MAINTENANCE: Tuple[str, ...] = ("PreFlight", "PreMaintenance")

# Final statuses of a stage. "running" is only ever seen while polling.
STATUS_OK = "ok"
STATUS_NO_MAINTENANCE = "no_maintenance"
STATUS_SKIPPED = "skipped"
STATUS_FAILED = "failed"
STATUS_TIMEOUT = "timeout"
STATUS_REBOOTED = "rebooted"
STATUS_RUNNING = "running"
STATUS_WOULD_RUN = "would_run"

# Linux refuses a single argv word or environment string longer than MAX_ARG_STRLEN (128 KiB);
# stay well below it so the payload fits both argv and RM_PAYLOAD.
MAX_PAYLOAD_BYTES = 120 * 1024
# Quotes and substitutions nested deeper than this are refused (the splitter recurses on each level).
MAX_PAYLOAD_NESTING = 64


_BLANKS = " \t"
_OPERATOR_CHARS = ";&|<>()"
# Undecodable input bytes arrive as lone surrogates (Python's surrogateescape, or a JSON "\udcff" escape);
# UTF-8 cannot encode them and AnsibleModule crashes on them, so they are refused before anything runs.
_NOT_UTF8 = re.compile("[\ud800-\udfff]")


class PayloadError(RollingError, ValueError):
    """The payload cannot be turned into argv words without a shell's help."""


class ScriptLookupError(RollingError):
    """The hooks dir holds a stage script that must not be run, or several for one stage."""


def validate_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError("unknown stage %r: expected one of %s" % (stage, ", ".join(STAGES)))


def positive_int(name: str, value: Any, unit: str = "", maximum: int = MAX_SECONDS) -> int:
    """``value`` as a positive int (an int or a string of digits), or ValueError naming ``name``."""
    digits = ""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        # Past 30 digits only the length is told: str() of a huge int is slow, or refused by Python 3.11+.
        digits = str(value) if value < 10 ** 30 else "9" * 31
    elif isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        digits = value.strip().lstrip("0")
    if not digits:
        if isinstance(value, int) and not isinstance(value, bool) and value <= -10 ** 30:
            shown = "a huge negative number"
        else:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise ValueError("%s must be a positive integer%s, got %s" % (name, " of " + unit if unit else "", shown))
    if len(digits) > len(str(maximum)) or int(digits) > maximum:
        raise ValueError("%s is too large: at most %d%s, got %s" % (
            name, maximum, " " + unit if unit else "", digits if len(digits) <= 30 else "more than 30 digits"))
    return int(digits)


def validate_timing(timeout: Any, ping_interval: Any,
                    names: Tuple[str, str] = ("stage_timeout", "ping_interval")) -> Tuple[int, int]:
    """Return (timeout, ping_interval) as ints, or raise ValueError naming the problem (by ``names``)."""
    seconds = positive_int(names[0], timeout, "seconds"), positive_int(names[1], ping_interval, "seconds")
    if seconds[0] < seconds[1]:
        raise ValueError(
            "%s (%d s) is lower than %s (%d s): it could run out before the first status poll; raise the "
            "timeout or lower the interval" % (names[0], seconds[0], names[1], seconds[1]))
    return seconds


def split_payload(payload: str) -> List[str]:
    """Split ``payload`` into words the way a POSIX shell's tokenizer does, expanding nothing.

    Quotes are removed as a shell would (single quotes literal, double quotes honouring the
    backslash escapes of ``$`, "\\`` and newline), a backslash outside quotes escapes the next
    character, and ``$(...)``, ``$((...))``, ``${...}`` and backquoted text stay whole and literal
    inside their word, as the tokenizer sees them. Unquoted control operators, an unquoted newline
    inside the payload and a word starting with ``#`` are refused: a shell would not pass them on
    as arguments, so taking them literally would silently change what the operator meant. So are
    bytes that are not UTF-8 (lone surrogates), a NUL and a payload over MAX_PAYLOAD_BYTES.
    """
    not_utf8 = _NOT_UTF8.search(payload)
    if not_utf8:
        raise PayloadError(
            "payload is not UTF-8 text: it has %s at offset %d; module arguments reach the host as UTF-8 and "
            "Ansible cannot carry other bytes, so write the payload in UTF-8"
            % (_undecodable(not_utf8.group()), not_utf8.start()))
    encoded_size = len(payload.encode("utf-8"))
    if encoded_size > MAX_PAYLOAD_BYTES:
        raise PayloadError("payload is %d bytes long; at most %d are accepted" % (encoded_size, MAX_PAYLOAD_BYTES))
    if "\x00" in payload:
        raise PayloadError("payload contains a NUL byte, which cannot be passed as an argument")
    text = payload.strip(" \t\r\n")
    words: List[str] = []
    current: Optional[List[str]] = None
    i = 0
    while i < len(text):
        char = text[i]
        if char in _BLANKS:
            if current is not None:
                words.append("".join(current))
                current = None
            i += 1
            continue
        if char in "\r\n":
            raise PayloadError(
                "payload has an unquoted line break at offset %d, where a shell would start a new command; "
                "quote it to pass it as part of an argument" % i)
        if char in _OPERATOR_CHARS:
            raise PayloadError(
                "payload has an unquoted shell operator %r at offset %d; quote it (for example '%s') "
                "to pass it literally" % (char, i, char))
        if char == "#" and current is None:
            raise PayloadError(
                "payload has a word starting with an unquoted '#' at offset %d, which a shell reads as a "
                "comment; quote it to pass it literally" % i)
        if current is None:
            current = []
        if char == "\\":
            if i + 1 >= len(text):
                raise PayloadError("payload ends with a lone backslash")
            if text[i + 1] != "\n":  # backslash-newline is a line continuation: both vanish
                current.append(text[i + 1])
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise PayloadError("payload has an unterminated single quote at offset %d" % i)
            current.append(text[i + 1:end])
            i = end + 1
        elif char == '"':
            i = _read_double_quoted(text, i, current, 1)
        elif char == "$" and text.startswith(("$(", "${"), i) or char == "`":
            end = _end_of_substitution(text, i, 1)
            current.append(text[i:end])
            i = end
        else:
            current.append(char)
            i += 1
    if current is not None:
        words.append("".join(current))
    return words


def _undecodable(char: str) -> str:
    """How an operator recognises the offending input: the raw byte it came from when there was one."""
    if "\udc80" <= char <= "\udcff":
        return "the byte 0x%02x" % (ord(char) - 0xDC00)
    return "the lone surrogate U+%04X" % ord(char)


def _check_nesting(start: int, nesting: int) -> None:
    """Quotes and substitutions nest by recursion: past MAX_PAYLOAD_NESTING the payload is refused, not a traceback."""
    if nesting > MAX_PAYLOAD_NESTING:
        raise PayloadError(
            "payload nests quotes and substitutions more than %d deep (at offset %d); no stage script needs that, "
            "so it is refused rather than parsed" % (MAX_PAYLOAD_NESTING, start))


def _read_double_quoted(text: str, start: int, out: List[str], nesting: int) -> int:
    """Append the unquoted content of the double-quoted string at ``start``; return the index after it."""
    _check_nesting(start, nesting)
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == '"':
            return i + 1
        if char == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
            if text[i + 1] != "\n":
                out.append(text[i + 1])
            i += 2
        elif char == "$" and text.startswith(("$(", "${"), i) or char == "`":
            end = _end_of_substitution(text, i, nesting + 1)
            out.append(text[i:end])
            i = end
        else:
            out.append(char)
            i += 1
    raise PayloadError("payload has an unterminated double quote at offset %d" % start)


def _end_of_substitution(text: str, start: int, nesting: int) -> int:
    """Index just after the ``$(...)``, ``${...}`` or backquoted unit starting at ``start``."""
    _check_nesting(start, nesting)
    if text[start] == "`":
        i = start + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
            elif text[i] == "`":
                return i + 1
            else:
                i += 1
        raise PayloadError("payload has an unterminated backquote at offset %d" % start)
    opener = text[start + 1]
    closer = ")" if opener == "(" else "}"
    depth = 0
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "'" and closer == ")":
            end = text.find("'", i + 1)
            if end < 0:
                break
            i = end + 1
            continue
        if char == '"':
            i = _read_double_quoted(text, i, [], nesting + 1)
            continue
        if char == opener:
            depth += 1
        elif char == closer:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise PayloadError("payload has an unterminated %s at offset %d" % (text[start:start + 2], start))


def vet_hooks_dir(hooks_dir: str, allowed_owners: Sequence[int]) -> Optional[str]:
    """The hooks dir with its links resolved, or None when there is none. ScriptLookupError when it or a directory
    above it is owned by someone other than root or the connecting user, or writable by group or others (a parent
    owned by root with the sticky bit, such as /tmp, excepted: nobody else can rename what is in it): whoever could
    change one of them could swap a stage script, which runs as root, between its check and its run."""
    real = os.path.realpath(hooks_dir)
    if not os.path.isdir(real):
        return None
    path = real
    while True:
        info = os.lstat(path)
        what = "the hooks dir %s" % real if path == real else "%s, above the hooks dir %s," % (path, real)
        if info.st_uid not in allowed_owners:
            raise ScriptLookupError(
                "%s is owned by uid %d: the hooks dir and every directory above it must be owned by root or the "
                "connecting user (uid %s), or anyone could swap a stage script that runs as root"
                % (what, info.st_uid, ", ".join(str(uid) for uid in sorted(set(allowed_owners)))))
        sticky_parent = path != real and info.st_uid == 0 and info.st_mode & stat.S_ISVTX
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not sticky_parent:
            raise ScriptLookupError(
                "%s is writable by group or others (mode %04o), so anyone could swap a stage script that runs as "
                "root; chmod go-w it" % (what, stat.S_IMODE(info.st_mode)))
        parent = os.path.dirname(path)
        if parent == path:
            return real
        path = parent


def open_stage_script(hooks_dir: str, stage: str, allowed_owners: Sequence[int]) -> Optional[Tuple[str, int]]:
    """The stage's script in ``hooks_dir`` as (its path, a file descriptor open on it), or None when the stage has
    none. The script is vetted through that descriptor, so the file vetted is the one a runner executes from it
    (never a file swapped in under its name since).

    Raises ScriptLookupError when the hooks dir or a directory above it could be changed by someone else, when
    there is more than one candidate, or when the one found is not a regular executable file inside the hooks dir,
    not owned by an allowed user, or writable by group or others: such a file could have been planted, and it would
    run as root.
    """
    validate_stage(stage)
    real_dir = vet_hooks_dir(hooks_dir, allowed_owners)
    if real_dir is None:
        return None
    found = [os.path.join(hooks_dir, stage + suffix) for suffix in SCRIPT_SUFFIXES
             if os.path.lexists(os.path.join(hooks_dir, stage + suffix))]
    if not found:
        return None
    if len(found) > 1:
        raise ScriptLookupError(
            "one script per stage: %s has %d scripts for %s: %s"
            % (hooks_dir, len(found), stage, ", ".join(os.path.basename(path) for path in found)))
    path = found[0]
    real_path = os.path.realpath(path)
    if os.path.dirname(real_path) != real_dir:
        raise ScriptLookupError(
            "%s is a link to %s, outside the hooks dir %s; stage scripts must live in the hooks dir"
            % (path, real_path, real_dir))
    try:
        examined = os.lstat(real_path)
        if not stat.S_ISREG(examined.st_mode):  # never opened: a FIFO would block, a device could act
            raise ScriptLookupError("%s is not a regular file (%s)" % (path, _file_kind(examined.st_mode)))
        fd = os.open(real_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ScriptLookupError("%s cannot be examined: %s" % (path, exc.strerror))
    try:
        _vet_script(path, os.fstat(fd), allowed_owners)
    except ScriptLookupError:
        os.close(fd)
        raise
    return path, fd


def _vet_script(path: str, info: os.stat_result, allowed_owners: Sequence[int]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise ScriptLookupError("%s is not a regular file (%s)" % (path, _file_kind(info.st_mode)))
    if not info.st_mode & stat.S_IXUSR:
        raise ScriptLookupError("%s is not executable (mode %04o); chmod 0755 it" % (path, stat.S_IMODE(info.st_mode)))
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ScriptLookupError(
            "%s is writable by group or others (mode %04o), so anyone could change what runs as root; "
            "chmod go-w it" % (path, stat.S_IMODE(info.st_mode)))
    if info.st_uid not in allowed_owners:
        raise ScriptLookupError(
            "%s is owned by uid %d; a stage script must be owned by root or the connecting user (uid %s)"
            % (path, info.st_uid, ", ".join(str(uid) for uid in sorted(set(allowed_owners)))))


def allowed_script_owners() -> List[int]:
    """Who may own a stage script and the dirs above it: root, the connecting user (the sudo caller too)."""
    owners = [0, os.getuid(), os.geteuid()]
    sudo_uid = os.environ.get("SUDO_UID", "")
    if sudo_uid.isdigit():
        owners.append(int(sudo_uid))
    return sorted(set(owners))


def stage_scripts(hooks_dir: str) -> Tuple[Dict[str, str], List[str]]:
    """What the gather learns of a host's stage scripts, nothing run: each stage's status (``would_run``,
    ``skipped`` when it has none, ``failed`` when its script must not run) and why each refused one must not."""
    statuses: Dict[str, str] = {}
    problems: List[str] = []
    for stage in STAGES:
        try:
            statuses[stage] = STATUS_SKIPPED if find_stage_script(hooks_dir, stage, allowed_script_owners()) \
                is None else STATUS_WOULD_RUN
        except ScriptLookupError as exc:
            statuses[stage] = STATUS_FAILED
            if str(exc) not in problems:  # an unfit hooks dir refuses every stage for one reason
                problems.append(str(exc))
    return statuses, problems


def find_stage_script(hooks_dir: str, stage: str, allowed_owners: Sequence[int]) -> Optional[str]:
    """The path of the stage's script, vetted as open_stage_script does; None when the stage has none."""
    opened = open_stage_script(hooks_dir, stage, allowed_owners)
    if opened is None:
        return None
    os.close(opened[1])
    return opened[0]


def _file_kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "mode %o" % mode


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


def classify_exit(stage: str, rc: Optional[int], signal_number: Optional[int]) -> str:
    """Status of a stage script that ended by itself with exit code ``rc`` or by a signal."""
    if signal_number is not None:
        return STATUS_FAILED
    if rc == 0:
        return STATUS_OK
    if rc == EXIT_NO_MAINTENANCE:
        return STATUS_NO_MAINTENANCE if stage in STAGES_ALLOWING_NO_MAINTENANCE else STATUS_OK
    return STATUS_FAILED


def describe_outcome(status: str, rc: Optional[int], signal_number: Optional[int], timeout: Optional[int] = None) -> str:
    """One line an operator reads in the report."""
    if status == STATUS_OK:
        return "completed (exit %s)" % rc
    if status == STATUS_NO_MAINTENANCE:
        return "exit %d: the script says this host needs no maintenance" % EXIT_NO_MAINTENANCE
    if status == STATUS_SKIPPED:
        return "no script for this stage"
    if status == STATUS_TIMEOUT:
        return "timed out after %s s; its process group was killed" % timeout
    if status == STATUS_REBOOTED:
        return "the host rebooted while the stage ran"
    if signal_number is not None:
        return "killed by %s" % signal_name(signal_number)
    return "failed with exit code %s" % rc


def stage_succeeded(status: str, stage: str, rebooted_ok: Optional[bool] = None) -> bool:
    """Whether a final status lets the run go on with this host.

    A reboot is the normal end of a patch-and-reboot Maintenance stage and a failure of any
    other stage, unless ``rebooted_ok`` says otherwise.
    """
    if status == STATUS_REBOOTED:
        return stage == "Maintenance" if rebooted_ok is None else rebooted_ok
    return status in (STATUS_OK, STATUS_NO_MAINTENANCE, STATUS_SKIPPED, STATUS_WOULD_RUN)


@dataclass
class StageResult:
    """How a stage script run ended: written atomically as result.json in its job dir."""

    job_id: str
    run_id: str
    stage: str
    status: str
    script: Optional[str] = None
    rc: Optional[int] = None
    signal: Optional[str] = None
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    duration: Optional[float] = None
    boot_id: Optional[str] = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    msg: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> Dict[str, Any]:
        """The result as written to result.json and returned by the module: ``extra`` merged in."""
        fields = asdict(self)
        fields.update(fields.pop("extra"))
        return fields


def read_tail(path: str, max_bytes: int) -> str:
    """The last ``max_bytes`` of a file as text (undecodable bytes replaced), '' if it is missing."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read(max_bytes)
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", "replace")
    if size > max_bytes:
        # Drop the partial first line so the tail starts on a line boundary when it can.
        newline = text.find("\n")
        if 0 <= newline < len(text) - 1:
            text = text[newline + 1:]
    return text


def write_atomic(path: str, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the whole new one, never a part.

    The temporary file has an unpredictable name and is created with O_EXCL | O_NOFOLLOW: a file or symlink
    planted under a name someone guessed makes the open fail instead of letting root write through it."""
    directory = os.path.dirname(path) or "."
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    unguessable = binascii.hexlify(os.urandom(8)).decode()
    temporary = os.path.join(directory, ".%s.%s.tmp" % (os.path.basename(path), unguessable))
    fd = os.open(temporary, flags, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask must not narrow what the caller asked for
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


DEFAULT_HOOKS_DIR = "/etc/kvm-rolling-maintenance/hooks"
DEFAULT_STATE_DIR = "/var/lib/kvm-rolling-maintenance"

# The options of the maintenance_stage module, shared with its action plugin so both validate alike.
STAGE_ARGUMENT_SPEC: Dict[str, Dict[str, Any]] = {
    "stage": {"type": "str", "required": True, "choices": list(STAGES)},
    "payload": {"type": "str", "default": ""},
    "hooks_dir": {"type": "path", "default": DEFAULT_HOOKS_DIR},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
    "executor": {"type": "str", "default": "service", "choices": list(EXECUTORS)},
    "stage_timeout": {"type": "int", "default": 1800},
    "ping_interval": {"type": "int", "default": 10},
    "run_id": {"type": "str"},
    "host_name": {"type": "str"},
    "cluster": {"type": "str", "default": ""},
    "rebooted_ok": {"type": "bool"},
    "holds_lock": {"type": "bool", "default": False},
    "secret_env": {"type": "dict", "default": {}, "no_log": True},
}


# What a secret value is replaced with wherever it would leave the host (output tails, messages).
SECRET_MASK = "********"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def checked_secret_env(value: Any) -> Dict[str, str]:
    """rm_secret_env as the stage scripts get it: environment variable names, not RM_* (the stage sets those),
    to strings (numbers are taken as their text); ValueError naming the variable, never showing its value."""
    if value is None or value == "":
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("rm_secret_env must be a mapping of environment variable names to values, got a %s"
                         % type(value).__name__)
    checked: Dict[str, str] = {}
    for name, secret in value.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise ValueError("rm_secret_env: %r is not an environment variable name (letters, digits and '_', not "
                             "starting with a digit)" % (name,))
        if name.startswith("RM_"):
            raise ValueError("rm_secret_env: %s: names starting with RM_ are the stage's own (RM_STAGE, RM_HOST, ...)"
                             % name)
        if isinstance(secret, (int, float)) and not isinstance(secret, bool):
            secret = str(secret)
        if not isinstance(secret, str):
            raise ValueError("rm_secret_env: the value of %s must be a string, got a %s" % (name, type(secret).__name__))
        if "\0" in secret:
            raise ValueError("rm_secret_env: the value of %s holds a NUL byte, which no environment can carry" % name)
        checked[name] = secret
    return checked


def mask_secrets(text: str, secrets: Sequence[str]) -> str:
    """TEXT with every secret value in it replaced by SECRET_MASK (longest first, so a secret inside another is
    never half shown)."""
    for secret in sorted((value for value in secrets if value), key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return text


def stage_environment(base: Mapping[str, str], stage: str, run_id: str, host: str, cluster: str,
                      payload: str, job_id: str, secret_env: Optional[Mapping[str, str]] = None,
                      script: str = "") -> Dict[str, str]:
    """The script's environment. RM_SCRIPT is its path: it runs from the file the stage vetted (/proc/self/fd/N),
    so $0 of a script with an interpreter line is that descriptor's path, not its own."""
    env = dict(base)
    env.update(secret_env or {})
    env.update({"RM_STAGE": stage, "RM_RUN_ID": run_id, "RM_HOST": host, "RM_CLUSTER": cluster,
                "RM_PAYLOAD": payload, "RM_JOB_ID": job_id, "RM_SCRIPT": script})
    return env
