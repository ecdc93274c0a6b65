"""Hostile input through the real rolling maintenance run: each case is refused, naming the problem, before
any stage runs, or it reaches the stage script as literal argv words. docs/hostile-input.md has the table."""

from __future__ import annotations

import json
import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Set, Tuple, Union

import pytest

from labtools import Lab
from runtools import ALL, C1, Run

pytestmark = pytest.mark.lab
HOOKS = "/etc/kvm-rolling-maintenance/hooks"
MARK = "@MARK@"  # replaced by a file path a shell would create if it ever ran the input
# Who refuses a case, and what its message starts with.
SCOPE = "invalid input, nothing was touched: "  # the rolling_scope action (the collection's own check)
ARGUMENT_SPECS = "Validation of arguments failed:"  # the role's argument_specs (Ansible checks the types)
ANSIBLE_CORE = "ERROR! "  # ansible-playbook itself, before any play ("[ERROR]: " since ansible-core 2.19)

# How a case hands its input to ansible-playbook: a dict is written to a JSON vars file (-e @file), a
# (name, bytes) pair is written as it is to a vars file of that name, a list is passed as argv words.
Source = Union[Dict[str, Any], Tuple[str, bytes], List[str]]


def _marked(value: Any, mark: str) -> Any:
    if isinstance(value, str):
        return value.replace(MARK, mark)
    if isinstance(value, bytes):
        return value.replace(MARK.encode(), mark.encode())
    if isinstance(value, list):
        return [_marked(item, mark) for item in value]
    if isinstance(value, tuple):
        return tuple(_marked(item, mark) for item in value)
    if isinstance(value, dict):
        return {key: _marked(item, mark) for key, item in value.items()}
    return value


def playbook_args(run: Run, source: Source, mark: str) -> List[str]:
    source = _marked(source, mark)
    if isinstance(source, list):
        return source
    if isinstance(source, dict):
        name, content = "vars-%s.json" % uuid.uuid4().hex[:8], json.dumps(source).encode()
    else:
        name, content = source
    path = run.dir / name
    path.write_bytes(content)
    return ["-e", "@%s" % path]


def job_dirs(state_dirs: Dict[str, Path]) -> Set[str]:
    """Every job a host has on record: a stage or an evacuation that started leaves one."""
    return {"%s/%s" % (host, entry.name) for host, state in state_dirs.items()
            if (state / "jobs").is_dir() for entry in (state / "jobs").iterdir()}


def assert_not_run_anywhere(lab: Lab, mark: str) -> None:
    assert not os.path.exists(mark), "%s was created: the input ran in a shell" % mark
    assert lab.exec("hv1", "test", "-e", mark, check=False).returncode == 1


def refusal(output: str) -> str:
    """The message of the task that refused the run, or ansible-playbook's own error."""
    for line in output.splitlines():
        if line.startswith("fatal: [localhost]: FAILED! => "):
            return str(json.loads(line.split(" => ", 1)[1])["msg"])
    errors = [ANSIBLE_CORE + line[len("[ERROR]: "):] if line.startswith("[ERROR]: ") else line
              for line in output.splitlines() if line.startswith((ANSIBLE_CORE, "[ERROR]: "))]
    return errors[0] if errors else ""


def recap_hosts(output: str) -> List[str]:
    """The hosts of the play recap: a host that any play reached has its line there (none without a recap)."""
    if "PLAY RECAP" not in output:
        return []
    recap = output.split("PLAY RECAP", 1)[1].split("ROLLING MAINTENANCE REPORT", 1)[0]
    return [line.split()[0] for line in recap.splitlines()[1:] if " : ok=" in line]


def expected_argv(words: List[str]) -> bytes:
    """What the hook's ``printf '%s\\0' "$@"`` writes for these words."""
    return b"".join(word.encode() + b"\0" for word in words)


# --- Refused on the controller, in the scope step: no host is even contacted. ---------------------------------

TOO_LONG = 200 * 1024
REFUSED_BEFORE_ANY_HOST = [
    # rm_payload
    ("payload-semicolon", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a; touch @MARK@"},
     "rm_payload: payload has an unquoted shell operator ';' at offset 1"),
    ("payload-pipe", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a | touch @MARK@"},
     "rm_payload: payload has an unquoted shell operator '|' at offset 2"),
    ("payload-redirect", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a > @MARK@"},
     "rm_payload: payload has an unquoted shell operator '>' at offset 2"),
    ("payload-background", SCOPE, {"rm_hosts": "hv1", "rm_payload": "touch @MARK@ &"},
     "rm_payload: payload has an unquoted shell operator '&'"),
    ("payload-newline", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a\ntouch @MARK@"},
     "rm_payload: payload has an unquoted line break at offset 1, where a shell would start a new command"),
    ("payload-carriage-return", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a\rtouch @MARK@"},
     "rm_payload: payload has an unquoted line break at offset 1"),
    ("payload-comment", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a #b"},
     "rm_payload: payload has a word starting with an unquoted '#' at offset 2"),
    ("payload-unterminated-quote", SCOPE, {"rm_hosts": "hv1", "rm_payload": "'a b"},
     "rm_payload: payload has an unterminated single quote at offset 0"),
    ("payload-unterminated-substitution", SCOPE, {"rm_hosts": "hv1", "rm_payload": "$(touch @MARK@"},
     "rm_payload: payload has an unterminated $( at offset 0"),
    ("payload-unterminated-backquote", SCOPE, {"rm_hosts": "hv1", "rm_payload": "`touch @MARK@"},
     "rm_payload: payload has an unterminated backquote at offset 0"),
    ("payload-1000-nested-substitutions", SCOPE, {"rm_hosts": "hv1", "rm_payload": '"$(' * 1000 + "touch @MARK@"},
     "rm_payload: payload nests quotes and substitutions more than 64 deep (at offset 96)"),
    ("payload-nul", SCOPE, {"rm_hosts": "hv1", "rm_payload": "a\x00b"},
     "rm_payload: payload contains a NUL byte, which cannot be passed as an argument"),
    ("payload-200KiB", SCOPE, {"rm_hosts": "hv1", "rm_payload": "x" * TOO_LONG},
     "rm_payload: payload is %d bytes long; at most 122880 are accepted" % TOO_LONG),
    ("payload-not-a-string", SCOPE, {"rm_hosts": "hv1", "rm_payload": ["a", "b"]},
     "rm_payload must be a string, got ['a', 'b']"),
    ("payload-not-utf8-json-escape", SCOPE, {"rm_hosts": "hv1", "rm_payload": "caf\u00e9 \udcff"},
     "rm_payload: payload is not UTF-8 text: it has the byte 0xff at offset 5"),
    ("payload-not-utf8-raw-json", SCOPE, ("raw.json", b'{"rm_hosts": "hv1", "rm_payload": "caf\xc3\xa9 \xff"}'),
     "rm_payload: payload is not UTF-8 text: it has the byte 0xff at offset 5"),
    # subprocess passes the lone surrogate to ansible-playbook as the raw byte 0xff in its argv.
    ("payload-not-utf8-argv", SCOPE, ["-e", "rm_hosts=hv1", "-e", "rm_payload=caf\udcff"],
     "rm_payload: payload is not UTF-8 text: it has the byte 0xff at offset 3"),
    # ansible-core itself cannot load a YAML file with such a byte: its own error, still before anything runs.
    ("payload-not-utf8-raw-yaml", ANSIBLE_CORE, ("raw.yml", b'rm_hosts: hv1\nrm_payload: "caf\xff"\n'),
     "can't encode character '\\udcff'"),
    ("payload-blank-in-key-value", SCOPE, ["-e", "rm_hosts=hv1", "-e", "rm_payload=a touch @MARK@"],
     "extra vars have words that are not NAME=VALUE: 'touch @MARK@'"),
    # timings
    ("stage-timeout-0", SCOPE, {"rm_hosts": "hv1", "rm_stage_timeout": 0},
     "rm_stage_timeout must be a positive integer of seconds, got 0"),
    ("stage-timeout-negative", SCOPE, {"rm_hosts": "hv1", "rm_stage_timeout": -1},
     "rm_stage_timeout must be a positive integer of seconds, got -1"),
    ("stage-timeout-abc", ARGUMENT_SPECS, {"rm_hosts": "hv1", "rm_stage_timeout": "abc"},
     "argument 'rm_stage_timeout' is of type"),  # then "<class 'str'>" (2.16) or "str" (2.21)
    ("stage-timeout-10e12", SCOPE, {"rm_hosts": "hv1", "rm_stage_timeout": 10 ** 12},
     "rm_stage_timeout is too large: at most 999999999 seconds, got 1000000000000"),
    ("stage-timeout-key-value-negative", SCOPE, ["-e", "rm_hosts=hv1", "-e", "rm_stage_timeout=-1"],
     "rm_stage_timeout must be a positive integer of seconds, got '-1'"),
    ("ping-interval-0", SCOPE, {"rm_hosts": "hv1", "rm_ping_interval": 0},
     "rm_ping_interval must be a positive integer of seconds, got 0"),
    ("wait-timeout-10e12", SCOPE, {"rm_hosts": "hv1", "rm_wait_maintenance_timeout": 10 ** 12},
     "rm_wait_maintenance_timeout is too large: at most 999999999 seconds, got 1000000000000"),
    ("lock-timeout-10e12", SCOPE, {"rm_hosts": "hv1", "rm_lock_timeout": 10 ** 12},
     "rm_lock_timeout is too large: at most 999999999 seconds, got 1000000000000"),
    # per-host variables (extra vars here, so they hold for every host; inventory values are checked alike)
    ("reserved-memory-abc", SCOPE, ["-e", "rm_hosts=hv1", "-e", "rm_reserved_host_memory_mib=abc"],
     "host hv1: rm_reserved_host_memory_mib must be a number >= 0, got 'abc'"),
    ("reserved-memory-negative", SCOPE, {"rm_hosts": "hv1", "rm_reserved_host_memory_mib": -512},
     "host hv1: rm_reserved_host_memory_mib must be a number >= 0, got -512"),
    ("cpu-ratio-abc", SCOPE, {"rm_hosts": "hv1", "rm_cpu_overcommit_ratio": "abc"},
     "host hv1: rm_cpu_overcommit_ratio must be a number > 0, got 'abc'"),
    ("memory-ratio-zero", SCOPE, {"rm_hosts": "hv1", "rm_memory_overcommit_ratio": 0},
     "host hv1: rm_memory_overcommit_ratio must be a number > 0, got 0"),
    ("host-capacity-unknown-key", SCOPE, {"rm_hosts": "hv1", "rm_host_capacity": {"ram": 4096}},
     "host hv1: rm_host_capacity: unknown key(s) ram (allowed: cpus, memory_mib)"),
    ("host-tags-number", SCOPE, {"rm_hosts": "hv1", "rm_host_tags": 5},
     "host hv1: rm_host_tags must be a list or a comma-separated string of tags, got 5"),
    ("libvirt-uri-command", SCOPE, {"rm_hosts": "hv1", "rm_libvirt_uri": "qemu:///system; touch @MARK@"},
     "host hv1: rm_libvirt_uri must be a libvirt URI"),
    # A libvirt URI from inventory: a host part that is not a host (libvirt reads what follows "?" as its options).
    ("migration-uri-query-in-host", SCOPE, {"rm_hosts": "hv1", "rm_migration_uri": "qemu+tcp://hv2?netcat=x/system"},
     "host hv1: rm_migration_uri must name its host as [user@]host[:port] (a host name or an IP address)"),
    # The lab's rm_migration_uri is "qemu+tcp://{{ ansible_host }}/system": a hostile ansible_host reaches it.
    ("ansible-host-query", SCOPE, {"rm_hosts": "hv1", "ansible_host": "hv1?netcat=touch%20@MARK@"},
     "host hv1: rm_migration_uri must name its host as [user@]host[:port] (a host name or an IP address), got "
     "'qemu+tcp://hv1?netcat=touch%20@MARK@/system'"),
    ("ansible-host-blank", SCOPE, {"rm_hosts": "hv1", "ansible_host": "hv1 -oProxyCommand=touch"},
     "host hv1: rm_migration_uri must be a libvirt URI such as qemu:///system or qemu+ssh://HOST/system (no blanks"),
    ("executor-unknown", SCOPE, {"rm_hosts": "hv1", "rm_executor": "cron"},
     "host hv1: unknown rm_executor 'cron' (expected service or agent)"),
    ("hooks-dir-relative", SCOPE, {"rm_hosts": "hv1", "rm_hooks_dir": "hooks"},
     "host hv1: rm_hooks_dir must be an absolute path, got 'hooks'"),
    # the scope
    ("hosts-semicolon", SCOPE, {"rm_hosts": "hv1;touch @MARK@"},
     "rm_hosts: no inventory host is named 'hv1;touch @MARK@'"),
    ("hosts-space", SCOPE, {"rm_hosts": "hv1 hv2"}, "rm_hosts: no inventory host is named 'hv1 hv2'"),
    ("hosts-substitution", SCOPE, {"rm_hosts": ["$(touch @MARK@)"]},
     "rm_hosts: no inventory host is named '$(touch @MARK@)'"),
    ("hosts-backquote", SCOPE, {"rm_hosts": "`touch @MARK@`"}, "rm_hosts: no inventory host is named '`touch @MARK@`'"),
    ("hosts-glob", SCOPE, {"rm_hosts": "hv*"}, "rm_hosts: no inventory host is named 'hv*'"),
    ("hosts-patterns", SCOPE, {"rm_hosts": ["all", "localhost", "c1"]},
     "rm_hosts: no inventory host is named 'all', 'localhost', 'c1'"),
    ("hosts-newline", SCOPE, {"rm_hosts": "hv1\nhv2"}, "rm_hosts: no inventory host is named 'hv1\\nhv2'"),
    ("clusters-semicolon", SCOPE, {"rm_clusters": "c1;touch @MARK@"},
     "rm_clusters: no inventory host has rm_cluster = 'c1;touch @MARK@'"),
    # -e "k=v" splits at blanks: without the check, hv2 would silently be left out and hv1 maintained.
    ("hosts-space-key-value", SCOPE, ["-e", "rm_hosts=hv1 hv2"],
     "extra vars have words that are not NAME=VALUE: 'hv2'"),
    ("hosts-comma-space-key-value", SCOPE, ["-e", "rm_hosts=hv1, hv2"],
     "extra vars have words that are not NAME=VALUE: 'hv2'"),
    ("hosts-semicolon-key-value", SCOPE, ["-e", "rm_hosts=hv1;touch @MARK@"],
     "extra vars have words that are not NAME=VALUE: '@MARK@'; -e splits NAME=VALUE pairs at blanks, so quote a "
     "value that has blanks (-e \"rm_payload='a b'\"), give a list comma-separated (rm_hosts=hv1,hv2) or use JSON "
     "(-e '{\"rm_hosts\": [\"hv1\", \"hv2\"]}'); rm_hosts: no inventory host is named 'hv1;touch'"),
]


class TestRefusedBeforeAnyHost:
    """Fast cases: the run stops in its scope step. One set of logging hooks serves them all (a class, so
    their check afterwards covers these cases alone: no guest moved, no host left marked)."""

    @pytest.fixture(scope="class")
    def logging_run(self, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
        """Every lab host has hooks that log, so a stage that ran would show."""
        run = Run(lab, tmp_path_factory.mktemp("refused"))
        run.hooks(ALL)
        before = lab.running_guests()
        yield run
        for host in ALL:
            lab.clear_hooks(host)
        assert lab.running_guests() == before
        assert not lab.marks_left(ALL), "left behind: %s" % lab.marks_left(ALL)

    @pytest.fixture(scope="class")
    def state_dirs(self, lab: Lab) -> Dict[str, Path]:
        return {host: lab.state_dir(host) for host in ALL}

    @pytest.mark.parametrize(("refuser", "source", "complaint"), [case[1:] for case in REFUSED_BEFORE_ANY_HOST],
                             ids=[case[0] for case in REFUSED_BEFORE_ANY_HOST])
    def test_input_is_refused_before_any_host_is_touched(self, lab: Lab, logging_run: Run,
                                                         state_dirs: Dict[str, Path], refuser: str, source: Source,
                                                         complaint: str) -> None:
        mark = str(logging_run.dir / ("pwned-%s" % uuid.uuid4().hex[:8]))
        logging_run.log.write_text("")  # a case that wrongly ran must not make the next ones fail too
        jobs_before = job_dirs(state_dirs)
        logging_run.report_path.unlink(missing_ok=True)
        report = logging_run.play(*playbook_args(logging_run, source, mark))
        assert logging_run.completed.returncode != 0, logging_run.output
        message = refusal(logging_run.output)
        assert message.startswith(refuser) and _marked(complaint, mark) in message, logging_run.output[-3000:]
        if refuser == SCOPE:  # the collection's own check names the problem first
            assert message.startswith(SCOPE + _marked(complaint, mark)), message
        if refuser == ANSIBLE_CORE:  # ansible-playbook stopped before the first play: no report
            assert report == {}
        else:  # a refused run has its report too, so the report path never shows an earlier run's
            assert not report["success"] and not report["hosts_updated"] + report["hosts_skipped"] + report["hosts_failed"]
            assert report["details"].startswith("aborted: %s" % SCOPE) and _marked(complaint, mark) in report["details"]
        # The scope play failed, so no later play started: no gather, no stage, no cluster disabled.
        assert set(recap_hosts(logging_run.output)) <= {"localhost"}, logging_run.output
        assert logging_run.events() == []
        assert job_dirs(state_dirs) == jobs_before
        assert_not_run_anywhere(lab, mark)


# --- Unfit stage scripts: found when the hosts are gathered, so fail-fast refuses to start. -------------------

def _symlink_out(hooks: Path, stage: str, outside: Path) -> str:
    outside.write_text("#!/bin/sh\ntouch %s.ran\n" % outside)
    outside.chmod(0o755)
    (hooks / stage).symlink_to(outside)
    return "%s/%s is a link to %s, outside the hooks dir %s; stage scripts must live in the hooks dir" % (
        HOOKS, stage, outside, HOOKS)


def _foreign_owner(hooks: Path, stage: str, _outside: Path) -> str:
    os.chown(hooks / stage, 65534, 65534)
    return "%s/%s is owned by uid 65534; a stage script must be owned by root or the connecting user (uid 0)" % (
        HOOKS, stage)


def _group_writable(hooks: Path, stage: str, _outside: Path) -> str:
    (hooks / stage).chmod(0o775)
    return "%s/%s is writable by group or others (mode 0775), so anyone could change what runs as root" % (
        HOOKS, stage)


def _fifo(hooks: Path, stage: str, _outside: Path) -> str:
    os.mkfifo(hooks / stage, 0o755)
    return "%s/%s is not a regular file (a FIFO)" % (HOOKS, stage)


def _not_executable(hooks: Path, stage: str, _outside: Path) -> str:
    (hooks / stage).chmod(0o644)
    return "%s/%s is not executable (mode 0644); chmod 0755 it" % (HOOKS, stage)


def _two_scripts(hooks: Path, stage: str, _outside: Path) -> str:
    (hooks / (stage + ".py")).write_text("#!/usr/bin/python3\n")
    (hooks / (stage + ".py")).chmod(0o755)
    return "one script per stage: %s has 2 scripts for %s: %s, %s.py" % (HOOKS, stage, stage, stage)


def _hooks_dir_world_writable(hooks: Path, _stage: str, _outside: Path) -> str:
    hooks.chmod(0o777)
    return ("the hooks dir %s is writable by group or others (mode 0777), so anyone could swap a stage script that "
            "runs as root; chmod go-w it" % HOOKS)


def _hooks_dir_foreign_owner(hooks: Path, _stage: str, _outside: Path) -> str:
    os.chown(hooks, 65534, 65534)
    return ("the hooks dir %s is owned by uid 65534: the hooks dir and every directory above it must be owned by "
            "root or the connecting user (uid 0)" % HOOKS)


# Each unfit script replaces the logging hook of one stage; the others stay, so a stage that ran would log.
UNFIT_SCRIPTS = {
    "symlink-outside-hooks-dir": ("PreFlight", _symlink_out),
    "foreign-owner": ("PostMaintenance", _foreign_owner),
    "group-writable": ("Maintenance", _group_writable),
    "fifo-named-Maintenance": ("Maintenance", _fifo),
    "not-executable": ("PreMaintenance", _not_executable),
    "two-scripts-one-stage": ("Maintenance", _two_scripts),
    "hooks-dir-0777": ("Maintenance", _hooks_dir_world_writable),
    "hooks-dir-owned-by-nobody": ("Maintenance", _hooks_dir_foreign_owner),
}


def _unfit_hooks(scenario: Run, case: str, host: str) -> str:
    """Logging hooks on HOST with one stage's script made unfit; return the refusal expected for it."""
    stage, make_unfit = UNFIT_SCRIPTS[case]
    scenario.hooks([host])
    hooks = scenario.lab.hooks_dir(host)
    if make_unfit in (_symlink_out, _fifo):
        (hooks / stage).unlink()
    return make_unfit(hooks, stage, scenario.dir / "outside.sh")


@pytest.fixture
def hv1_hooks_dir_kept(lab: Lab) -> Iterator[None]:
    """hv1's hooks dir as it was (owner and mode), after a test that made it unfit."""
    hooks = lab.hooks_dir("hv1")
    info = hooks.stat()
    yield
    os.chown(hooks, info.st_uid, info.st_gid)
    hooks.chmod(stat.S_IMODE(info.st_mode))


@pytest.mark.parametrize("case", list(UNFIT_SCRIPTS))
def test_an_unfit_stage_script_refuses_the_run_before_anything_runs(
        scenario: Run, case: str, hv1_hooks_dir_kept: None) -> None:
    expected = _unfit_hooks(scenario, case, "hv1")
    before = scenario.lab.running_guests()
    report = scenario.play("-e", "rm_hosts=hv1")
    assert scenario.completed.returncode != 0, scenario.output
    assert report["details"].startswith("aborted: refused to start, nothing was done: hv1: could not be gathered: "
                                        + expected), report["details"]
    assert scenario.events() == []  # not even PreFlight ran, nor was the cluster disabled
    assert scenario.lab.running_guests() == before
    assert not (scenario.dir / "outside.sh.ran").exists()


def test_forced_fails_the_host_with_an_unfit_script_and_maintains_the_others(scenario: Run) -> None:
    expected = _unfit_hooks(scenario, "group-writable", "hv1")
    scenario.hooks(["hv2"])
    report = scenario.play("-e", "rm_hosts=hv1,hv2", "-e", "rm_forced=true")
    assert scenario.completed.returncode == 2, scenario.output
    assert scenario.statuses() == {"hv1": ("failed", "capacity"), "hv2": ("updated", "")}
    assert report["hosts_failed"][0]["reason"] == "could not be gathered: " + expected + "; chmod go-w it"
    assert scenario.stages_run("hv1") == []
    assert scenario.stages_run("hv2") == ["PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance"]


# --- Accepted input: the payload reaches the script as literal argv words, nothing is expanded or run. ------

METACHARACTERS = ("a=1 \"b c\" 'd;e' $(touch @MARK@) `touch @MARK@` ${IFS} $HOME * ~ "
                  "'it'\\''s' \"say \\\"hi\\\"\" '' c\\;d 'line1\nline2' caf\u00e9 \u2603")
METACHARACTER_WORDS = ["a=1", "b c", "d;e", "$(touch @MARK@)", "`touch @MARK@`", "${IFS}", "$HOME", "*", "~",
                       "it's", 'say "hi"', "", "c;d", "line1\nline2", "caf\u00e9", "\u2603"]
UNSAFE_JINJA = "'{{ lookup(\"pipe\", \"touch @MARK@\") }}' x"
# A case: (how the input is given, the payload as the script's RM_PAYLOAD shows it, the argv words it must get).
LiteralCase = Tuple[Source, str, List[str]]


def _big_word_case(mark: str) -> LiteralCase:
    """One 100 KiB word full of what a shell would act on (argv and environment take 128 KiB per string)."""
    word = ("x;$(touch %s) `touch %s` | & > \"d\" " % (mark, mark) * 3000)[:100 * 1024]
    payload = "'%s' end" % word
    return {"rm_payload": payload}, payload, [word, "end"]


LITERAL_PAYLOADS: Dict[str, Callable[[str], LiteralCase]] = {
    "metacharacters-quotes-newline-utf8":
        lambda _mark: ({"rm_payload": METACHARACTERS}, METACHARACTERS, METACHARACTER_WORDS),
    "100KiB-word": _big_word_case,
    # Marked unsafe (as AWX does with survey answers by default): nothing templates it, the lookup never runs.
    "jinja-unsafe":
        lambda _mark: (("unsafe.yml", ("rm_payload: !unsafe %s\n" % json.dumps(UNSAFE_JINJA)).encode()),
                       UNSAFE_JINJA, ['{{ lookup("pipe", "touch @MARK@") }}', "x"]),
    # A plain extra var is Ansible's to template before the collection sees it, like any variable.
    "jinja-extra-var": lambda _mark: (["-e", "rm_payload={{ 6 * 7 }}"], "42", ["42"]),
}


@pytest.mark.parametrize("case", list(LITERAL_PAYLOADS))
def test_the_payload_reaches_the_script_as_literal_words(scenario: Run, case: str) -> None:
    mark = str(scenario.dir / "pwned")
    source, payload, words = _marked(LITERAL_PAYLOADS[case](mark), mark)
    argv_file, env_file = scenario.dir / "argv.bin", scenario.dir / "payload.bin"
    # PreFlight keeps what it got and says the host needs no maintenance: nothing else runs, nothing moves.
    keep_and_skip = "printf '%%s\\0' \"$@\" > %s\nprintf '%%s' \"$RM_PAYLOAD\" > %s\nexit 70" % (argv_file, env_file)
    scenario.hooks(["hv1"], {("hv1", "PreFlight"): keep_and_skip})
    report = scenario.play("-e", "rm_hosts=hv1", *playbook_args(scenario, source, mark))
    assert scenario.completed.returncode == 0, scenario.output
    assert scenario.statuses() == {"hv1": ("skipped", "PreFlight")}, report
    assert argv_file.read_bytes() == expected_argv(words)
    assert env_file.read_bytes() == payload.encode()
    assert_not_run_anywhere(lab=scenario.lab, mark=mark)


def test_the_largest_timeouts_run_a_whole_host_cycle(scenario: Run) -> None:
    """999999999 s (about 31 years) for every timing, through a whole host cycle: nothing overflows in a wait or a
    sleep, and completion is still seen at once."""
    scenario.hooks(["hv1"])
    scenario.lab.add_guest("hv1", "t-maxwait")
    largest = "999999999"
    report = scenario.play("-e", "rm_hosts=hv1", *[argument for name in (
        "rm_stage_timeout", "rm_wait_maintenance_timeout", "rm_ping_interval", "rm_lock_timeout")
        for argument in ("-e", "%s=%s" % (name, largest))])
    assert scenario.completed.returncode == 0, scenario.output
    assert scenario.statuses() == {"hv1": ("updated", "")}, report
    assert scenario.stages_run("hv1") == ["PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance"]
    assert report["hosts_updated"][0]["evacuation"]["moved"] >= 1
    assert scenario.lab.guest_host("t-maxwait") != "hv1"


# --- The state dir: one that someone else planted or controls is refused, nothing written through it ------------

def _planted_symlink(planted: Path, elsewhere: Path) -> str:
    planted.symlink_to(elsewhere)
    return "is a symbolic link (to %s)" % elsewhere


def _owned_by_nobody(planted: Path, _elsewhere: Path) -> str:
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    return "is owned by uid 65534, not by the connecting user (uid 0)"


def _world_writable(planted: Path, _elsewhere: Path) -> str:
    planted.mkdir()
    planted.chmod(0o777)
    return "is writable by group or others (mode 0777)"


UNSAFE_STATE_DIRS = {"symlink": _planted_symlink, "owned-by-nobody": _owned_by_nobody,
                     "world-writable": _world_writable}


@pytest.mark.parametrize("case", list(UNSAFE_STATE_DIRS))
def test_an_unsafe_state_dir_is_refused_and_nothing_is_written_through_it(scenario: Run, case: str) -> None:
    scenario.hooks(C1)
    name = "planted-%s" % uuid.uuid4().hex[:8]
    planted, elsewhere = scenario.lab.state_dir("hv2") / name, scenario.dir / "elsewhere"
    elsewhere.mkdir()
    problem = UNSAFE_STATE_DIRS[case](planted, elsewhere)
    state_dir = "/var/lib/kvm-rolling-maintenance/%s" % name  # hv2's own path for it
    try:
        report = scenario.play("-e", "rm_clusters=c1", "-e", "rm_state_dir=%s" % state_dir)
        assert scenario.completed.returncode != 0 and not report["success"], scenario.output[-3000:]
        assert "the state dir %s %s: anyone who controls it can forge job results; remove it" % (
            state_dir, problem) in scenario.output, scenario.output[-3000:]
        assert report["hosts_updated"] == [] and scenario.events() == [], report["details"]
        # hv2 refused its lock: the run refused to start, and the finish released the locks of hv1 and hv3.
        assert report["details"].startswith("aborted: refused to start, nothing was done: hv2: the state dir %s %s"
                                            % (state_dir, problem)), report["details"]
        assert all(not (scenario.lab.state_dir(host) / name / "lock.json").exists() for host in ("hv1", "hv3"))
        # No lock, no job, no record in it (for the symlink: where it points).
        assert list(planted.iterdir()) == [] and list(elsewhere.iterdir()) == []
    finally:
        for host in C1:
            target = scenario.lab.state_dir(host) / name
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)
