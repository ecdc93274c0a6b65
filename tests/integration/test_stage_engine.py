"""The stage engine end to end: ansible-playbook over SSH to simulated KVM hosts running real stage scripts."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from labtools import Lab, sleep_marker, wait_until
from runtools import wait_for_file

pytestmark = pytest.mark.lab
HOST = "hv1"


@pytest.mark.parametrize(("stage", "body", "status", "rc", "signal", "failed"), [
    ("Maintenance", "echo patched; exit 0", "ok", 0, None, False),
    ("PreFlight", "echo 'nothing to do'; exit 70", "no_maintenance", 70, None, False),
    ("PostMaintenance", "exit 70", "ok", 70, None, False),
    ("PreMaintenance", "echo 'disk full' >&2; exit 1", "failed", 1, None, True),
    ("Maintenance", "kill -SEGV $$", "failed", None, "SIGSEGV", True),
])
def test_exit_paths(lab: Lab, clean_hooks: list, tmp_path: Path, stage: str, body: str, status: str,
                    rc: int, signal: str, failed: bool) -> None:
    lab.write_hook(HOST, stage + ".sh", body)
    result = lab.run_stage(tmp_path, HOST, stage=stage, ping_interval=2, stage_timeout=30)
    # ansible-core 2.19+ leaves a null rc out of a task result: the summary keeps it on every version.
    outcome = (result["status"], result["summary"]["rc"], result["signal"], result["failed"])
    assert outcome == (status, rc, signal, failed), result
    assert result["script"] == "/etc/kvm-rolling-maintenance/hooks/%s.sh" % stage


def test_timeout_kills_the_script_and_everything_it_started(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    marker = sleep_marker()
    lab.write_hook(HOST, "Maintenance", "trap '' TERM\nsleep %s &\nsetsid sleep %s &\necho started\nsleep %s"
                   % (marker, marker, marker))
    result = lab.run_stage(tmp_path, HOST, stage="Maintenance", ping_interval=1, stage_timeout=3)
    assert result["status"] == "timeout" and result["failed"], result
    assert result["signal"] == "SIGKILL" and result["summary"]["rc"] is None  # it ignored SIGTERM
    assert "timed out after 3 s" in result["msg"] and result["stdout_tail"] == "started\n"
    assert lab.processes_matching(HOST, marker) == ""


def test_payload_reaches_the_script_as_words_and_no_shell_runs_it(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    pwned = Path("/tmp/pwned")
    pwned.unlink(missing_ok=True)
    lab.exec(HOST, "rm", "-f", str(pwned))
    lab.write_hook(HOST, "PreFlight.py", "#!/usr/bin/python3\nimport json, os, sys\n"
                   "print(json.dumps({'argv': sys.argv[1:], 'env': {k: v for k, v in os.environ.items() "
                   "if k.startswith('RM_')}, 'stdin': sys.stdin.read()}))\n")
    payload = "a=1 \"b c\" 'd;e' $(touch /tmp/pwned)"
    result = lab.run_stage(tmp_path, HOST, stage="PreFlight", payload=payload, cluster="c1", run_id="run42")
    seen = json.loads(result["stdout_tail"])
    assert seen["argv"] == ["a=1", "b c", "d;e", "$(touch /tmp/pwned)"]
    assert seen["env"]["RM_PAYLOAD"] == payload
    assert (seen["env"]["RM_STAGE"], seen["env"]["RM_HOST"], seen["env"]["RM_CLUSTER"], seen["env"]["RM_RUN_ID"]) \
        == ("PreFlight", HOST, "c1", "run42")
    assert seen["stdin"] == ""
    assert not pwned.exists()
    assert lab.exec(HOST, "test", "-e", str(pwned), check=False).returncode == 1


def test_a_payload_a_shell_would_misread_is_refused_before_anything_runs(
        lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    ran = "/tmp/ran-%s" % uuid.uuid4().hex
    lab.write_hook(HOST, "PreFlight", "touch %s" % ran)
    result = lab.run_stage(tmp_path, HOST, stage="PreFlight", payload="a; reboot")
    assert result["failed"] and "unquoted shell operator ';'" in result["msg"] and "nothing was done" in result["msg"]
    assert not os.path.exists(ran)


def test_two_scripts_for_a_stage_is_an_error_naming_both(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    lab.write_hook(HOST, "Maintenance", "exit 0")
    lab.write_hook(HOST, "Maintenance.sh", "exit 0")
    result = lab.run_stage(tmp_path, HOST, stage="Maintenance")
    assert result["failed"] and "one script per stage" in result["msg"]
    assert "Maintenance, Maintenance.sh" in result["msg"]


def test_a_world_writable_script_is_refused(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    ran = "/tmp/ran-%s" % uuid.uuid4().hex
    lab.write_hook(HOST, "PreMaintenance", "touch %s" % ran, mode=0o777)
    result = lab.run_stage(tmp_path, HOST, stage="PreMaintenance")
    assert result["failed"] and "writable by group or others" in result["msg"]
    assert not os.path.exists(ran)


def test_no_script_is_a_skipped_success(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    result = lab.run_stage(tmp_path, HOST, stage="PostMaintenance")
    assert (result["status"], result["failed"], result["changed"]) == ("skipped", False, False)


def test_a_script_printing_without_end_is_capped_on_disk_keeping_its_start_and_end(
        lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    # It prints for 6 s as fast as it can (hundreds of MiB unchecked), watching its own log on the host's disk
    # shrink as the runner trims it meanwhile, then prints its last line.
    lab.write_hook(HOST, "Maintenance", "\n".join([
        "echo FIRST-LINE", "end=$(( $(date +%s) + 6 )); prev=0; trimmed=no",
        "while [ $(date +%s) -lt $end ]; do",
        "  seq 1 100000; size=$(stat -L -c %s /proc/$$/fd/1)",
        "  [ $size -lt $prev ] && trimmed=yes; prev=$size",
        "done", "echo trimmed-while-running=$trimmed >&2", "echo LAST-LINE"]))
    result = lab.run_stage(tmp_path, HOST, stage="Maintenance", ping_interval=2)
    assert result["status"] == "ok", result
    assert result["stdout_tail"].endswith("LAST-LINE\n") and len(result["stdout_tail"]) <= 8192
    assert result["stderr_tail"] == "trimmed-while-running=yes\n"
    head = lab.exec(HOST, "head", "-c", "11", result["stdout_log"]).stdout
    size = int(lab.exec(HOST, "stat", "-c", "%s", result["stdout_log"]).stdout.strip())
    marker = lab.exec(HOST, "grep", "-a", "-o", "kvmops.rolling: [0-9]* bytes of output dropped here",
                      result["stdout_log"]).stdout
    assert head == "FIRST-LINE\n" and size <= 4 * 1024 * 1024 + 200, size
    assert result["output_dropped"]["stdout"] == int(marker.split()[1]) > 8 * 1024 * 1024, result["output_dropped"]


def test_completion_is_noticed_at_once_not_at_the_next_poll(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    lab.write_hook(HOST, "PreFlight", "sleep 1")
    result = lab.run_stage(tmp_path, HOST, stage="PreFlight", ping_interval=5, stage_timeout=60)
    assert result["status"] == "ok"
    # Seen done well before the first 5 s poll interval ran out (bench/ measures the figure itself).
    assert 1.0 <= result["elapsed"] < 5.0, result["elapsed"]


def test_a_link_down_for_ten_seconds_is_survived(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    """The script runs on through a 10 s outage (longer than ssh's 9 s of unanswered keepalives) and ends once the
    link is back: the controller reconnects and reads its result."""
    started, resumed = tmp_path / "started", tmp_path / "resumed"
    lab.write_hook(HOST, "Maintenance", "echo begin\ntouch %s\n%s\necho end" % (started, wait_for_file(resumed)))

    def outage() -> None:
        wait_until(started.exists, "the Maintenance script")
        lab.kvmlab("link", HOST, "down")
        time.sleep(10)  # the outage itself is what is tested: its length, not a guess at when something happens
        lab.kvmlab("link", HOST, "up")
        resumed.touch()

    cut = threading.Thread(target=outage)
    cut.start()
    try:
        result = lab.run_stage(tmp_path, HOST, stage="Maintenance", ping_interval=2, stage_timeout=120)
    finally:
        cut.join()
        lab.kvmlab("link", HOST, "up")
    assert result["status"] == "ok" and result["rc"] == 0, result
    assert result["stdout_tail"] == "begin\nend\n"  # "end" comes after the link is back: it ran through the outage


@pytest.mark.parametrize(("stage", "failed"), [("Maintenance", False), ("PreMaintenance", True)])
@pytest.mark.parametrize("executor", ["service", "agent"])
@pytest.mark.parametrize("how", ["graceful", "hard"])
def test_a_reboot_during_a_stage_ends_it_as_rebooted(lab: Lab, clean_hooks: list, tmp_path: Path,
                                                     stage: str, failed: bool, executor: str, how: str) -> None:
    """Gracefully (the script runs the lab's `systemctl reboot`: SIGTERM to every process first) or by a hard
    reset once the script runs; with the runner detached (service) or attached to the connection (agent)."""
    host = "hv2"
    started = tmp_path / "started"
    reboot = "/run/kvmlab/reboot" if how == "graceful" else "touch %s" % started
    lab.write_hook(host, stage, "echo patching\n%s\nsleep %s" % (reboot, sleep_marker()))
    before = lab.boot_id(host)
    rebooter = threading.Thread(target=lambda: (wait_until(started.exists, "the %s script" % stage),
                                                lab.kvmlab("reboot", host)))
    if how == "hard":
        rebooter.start()
    result = lab.run_stage(tmp_path, host, stage=stage, ping_interval=2, stage_timeout=120, executor=executor)
    if how == "hard":
        rebooter.join()
    after = lab.boot_id(host)
    assert before != after
    assert result["status"] == "rebooted" and result["failed"] is failed, result
    assert result["boot_id"] == after  # seen through the new boot id, not as a vanished runner
    assert "rebooted while the %s stage ran (boot id %s, now %s)" % (stage, before, after) in result["msg"]


def test_the_agent_executor_runs_attached(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    lab.write_hook(HOST, "Maintenance", "echo attached; exit 0")
    result = lab.run_stage(tmp_path, HOST, stage="Maintenance", executor="agent")
    assert (result["status"], result["stdout_tail"]) == ("ok", "attached\n")


def test_the_agent_executor_stops_the_script_when_its_connection_goes(
        lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    """The session the stage runs attached to ends (sshd's session process dies, as with `loginctl
    terminate-session`): the script's whole tree is stopped on the host, never left running unsupervised, and
    the stage fails naming the lost connection."""
    marker, started = sleep_marker(), tmp_path / "started"
    lab.write_hook(HOST, "Maintenance", "touch %s\nsetsid sleep %s &\nsleep %s" % (started, marker, marker))

    def end_the_sessions() -> None:
        wait_until(started.exists, "the Maintenance script")
        for pid in lab.ssh_sessions(HOST):
            os.kill(pid, 15)

    cutter = threading.Thread(target=end_the_sessions)
    cutter.start()
    result = lab.run_stage(tmp_path, HOST, stage="Maintenance", executor="agent", ping_interval=1, stage_timeout=120)
    cutter.join()
    assert result["status"] == "failed" and result["failed"], result
    assert result["msg"].startswith("the connection was lost while the Maintenance stage ran attached to it (agent "
                                    "executor): "), result["msg"]
    assert "the script's process tree was stopped with SIG" in result["msg"], result["msg"]
    assert lab.processes_matching(HOST, marker) == ""


def test_check_mode_runs_nothing_and_says_what_would_run(lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    ran = "/tmp/ran-%s" % uuid.uuid4().hex
    lab.write_hook(HOST, "Maintenance", "touch %s" % ran)
    result = lab.run_stage(tmp_path, HOST, check_mode=True, stage="Maintenance", payload="x 'y z'")
    assert result["status"] == "would_run" and not result["failed"]
    assert result["argv"] == ["/etc/kvm-rolling-maintenance/hooks/Maintenance", "x", "y z"]
    assert not os.path.exists(ran)


def test_timeout_below_ping_interval_is_refused_before_anything_runs(
        lab: Lab, clean_hooks: list, tmp_path: Path) -> None:
    ran = "/tmp/ran-%s" % uuid.uuid4().hex
    lab.write_hook(HOST, "PreFlight", "touch %s" % ran)
    result = lab.run_stage(tmp_path, HOST, stage="PreFlight", stage_timeout=5, ping_interval=10)
    assert result["failed"] and "lower than ping_interval" in result["msg"]
    assert not os.path.exists(ran)
