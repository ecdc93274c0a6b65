"""The progress callback's words: positions, stage and evacuation outcomes, records, the report in custom stats."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.kvmops.rolling.plugins.plugin_utils._progress import (
    MAINTENANCE_ACTION,
    REPORT_KEY,
    STAGE_ACTION,
    TONE_CHANGED,
    TONE_ERROR,
    TONE_OK,
    TONE_SKIP,
    Position,
    RecordTracker,
    Run,
    abort_words,
    canonical_action,
    cluster_words,
    done_words,
    find_report,
    is_job_action,
    job_label,
    label_from_result,
    line_tone,
    message_lines,
    outcome_words,
    plain_name,
    position_of,
    prefix,
    progress_line,
    refused_arguments,
    resolve_argument,
    shows_debug_message,
    simple_variable,
    summary_lines,
)

SCOPE_RESULT: Dict[str, Any] = {
    "run_id": "r1", "kind": "clusters", "names": ["c1", "c2"],
    "hosts": ["hv1", "hv2", "hv3", "hv4", "hv5", "hv6"], "clusters": ["c1", "c2"],
    "members": {"c1": ["hv1", "hv2", "hv3"], "c2": ["hv4", "hv5", "hv6"]},
    "cluster_of": {"hv1": "c1", "hv2": "c1", "hv3": "c1", "hv4": "c2", "hv5": "c2", "hv6": "c2"},
    "cluster_hosts": ["hv1", "hv2", "hv3", "hv4", "hv5", "hv6"], "changed": False, "msg": "6 host(s)",
}


def report(**changes: Any) -> Dict[str, Any]:
    base: Dict[str, Any] = {
        "success": True, "details": "1 updated, 1 skipped, 0 failed of 2 host(s)", "attention": [], "run_id": "r1",
        "hosts_updated": [{"host": "hv1", "cluster": "c1", "stages": {"PreFlight": {"status": "ok", "duration": 0.2}},
                           "evacuation": {"moves": [{"vm": "vm1", "target": "hv2", "status": "moved"}]}}],
        "hosts_skipped": [{"host": "hv2", "cluster": "c1", "stage": "PreFlight", "reason": "no maintenance"}],
        "hosts_failed": [],
    }
    base.update(changes)
    return base


@pytest.fixture
def run() -> Run:
    found = Run.from_result(SCOPE_RESULT)
    assert found is not None
    return found


def test_the_run_is_read_from_the_scope_result(run: Run) -> None:
    assert run.hosts == ("hv1", "hv2", "hv3", "hv4", "hv5", "hv6")
    assert run.clusters == ("c1", "c2")
    assert run.members["c2"] == ("hv4", "hv5", "hv6")
    assert run.cluster_of["hv5"] == "c2" and run.run_id == "r1"


def test_a_run_without_cluster_of_takes_it_from_the_members() -> None:
    found = Run.from_result({"hosts": ["a", "b"], "members": {"x": ["a"], "y": ["b"]}})
    assert found is not None and found.cluster_of == {"a": "x", "b": "y"} and found.clusters == ("x", "y")


@pytest.mark.parametrize("value", [None, "hv1", [], {"hosts": "hv1", "members": {}}, {"hosts": ["hv1"]}])
def test_anything_else_is_no_run(value: Any) -> None:
    assert Run.from_result(value) is None


def test_position_in_the_run(run: Run) -> None:
    assert position_of("hv2", run) == Position("c1", 2, 6)
    assert position_of("hv6", run, "ignored") == Position("c2", 6, 6)


def test_position_outside_the_run_uses_the_hosts_cluster(run: Run) -> None:
    assert position_of("localhost", run) == Position(None, 0, 0)
    assert position_of("hv9", run, "c9") == Position("c9", 0, 0)
    assert position_of("hv2", None, "c1") == Position("c1", 0, 0)
    assert position_of("hv2", None, "{{ pod }}") == Position(None, 0, 0)
    assert position_of(None, None) == Position()


@pytest.mark.parametrize(("position", "expected"), [
    (Position("c1", 2, 6), "[rolling c1 2/6]"),
    (Position("c1"), "[rolling c1]"),
    (Position(None, 3, 6), "[rolling 3/6]"),
    (Position(), "[rolling]"),
])
def test_prefix_leaves_out_what_is_unknown(position: Position, expected: str) -> None:
    assert prefix(position) == expected


def test_progress_line() -> None:
    assert progress_line(Position("c1", 2, 6), "hv2", "PreMaintenance stage started") == \
        "[rolling c1 2/6] hv2: PreMaintenance stage started"
    assert progress_line(Position("c1"), None, "cluster disabled") == "[rolling c1] cluster disabled"


def test_plain_names() -> None:
    assert plain_name(" c1 ") == "c1"
    assert plain_name("{{ rm_cluster }}") is None
    assert plain_name("{% if x %}a{% endif %}") is None
    assert plain_name("") is None and plain_name(None) is None and plain_name(3) is None


def test_actions() -> None:
    assert canonical_action("maintenance_stage", STAGE_ACTION) == STAGE_ACTION
    assert canonical_action(STAGE_ACTION, None) == STAGE_ACTION
    assert canonical_action(None, None) == ""
    assert is_job_action(STAGE_ACTION) and is_job_action(MAINTENANCE_ACTION)
    assert not is_job_action("kvmops.rolling.cluster_state") and not is_job_action("maintenance_stage")


def test_simple_variables() -> None:
    assert simple_variable("{{ rm_stage }}") == "rm_stage"
    assert simple_variable("{{-rm_stage-}}") == "rm_stage"
    assert simple_variable("{{ rm_stage | upper }}") is None
    assert simple_variable("PreFlight") is None and simple_variable(None) is None
    assert resolve_argument("{{ rm_stage }}", {"rm_stage": "Maintenance"}) == "Maintenance"
    assert resolve_argument("{{ rm_stage }}", {"rm_stage": "{{ other }}"}) is None
    assert resolve_argument("{{ rm_stage }}", None) is None
    assert resolve_argument("PreFlight", {}) == "PreFlight"


@pytest.mark.parametrize(("action", "args", "name", "variables", "expected"), [
    (STAGE_ACTION, {"stage": "PreFlight"}, None, None, "PreFlight stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "PreMaintenance stage", None, "PreMaintenance stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "rolling_maintenance : Maintenance stage", None, "Maintenance stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "rolling_maintenance : Stage Maintenance", None, "Maintenance stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "{{ rm_stage }} stage", {"rm_stage": "PostMaintenance"},
     "PostMaintenance stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "{{ rm_stage }} stage", None, "stage"),
    (STAGE_ACTION, {"stage": "{{ rm_stage }}"}, "run the stage", None, "stage"),
    (MAINTENANCE_ACTION, {"state": "present"}, "Enter maintenance", None, "evacuation"),
    (MAINTENANCE_ACTION, {"state": "absent"}, "Cancel maintenance", None, "leaving maintenance"),
    (MAINTENANCE_ACTION, {"state": "{{ wanted }}"}, None, None, "maintenance"),
    ("kvmops.rolling.cluster_state", {}, None, None, "cluster_state"),
])
def test_job_labels(action: str, args: Dict[str, Any], name: Any, variables: Any, expected: str) -> None:
    assert job_label(action, args, name, variables) == expected


def test_a_vague_label_is_made_precise_by_the_result() -> None:
    assert label_from_result(STAGE_ACTION, "stage", {"stage": "Maintenance"}) == "Maintenance stage"
    assert label_from_result(STAGE_ACTION, "PreFlight stage", {"stage": "Maintenance"}) == "PreFlight stage"
    assert label_from_result(MAINTENANCE_ACTION, "maintenance", {"moves": [], "moved": 0}) == "evacuation"
    assert label_from_result(MAINTENANCE_ACTION, "maintenance", {"status": "ok"}) == "leaving maintenance"


@pytest.mark.parametrize(("result", "seconds", "event", "expected", "tone"), [
    ({"status": "ok", "succeeded": True, "rc": 0}, 3.14, "ok", "PreMaintenance stage ok in 3.1 s", TONE_OK),
    # ansible-core 2.19+ takes rc 70 for a failure before the action concludes: the status says it.
    ({"status": "no_maintenance", "succeeded": False, "rc": 70}, 0.4, "ok",
     "PreMaintenance stage ok in 0.4 s: no maintenance needed (exit 70)", TONE_SKIP),
    ({"status": "skipped", "msg": "no PreMaintenance script in /x: stage skipped"}, 0.2, "ok",
     "PreMaintenance stage skipped: no script", TONE_SKIP),
    ({"status": "would_run", "msg": "check mode: would run /x"}, 0.2, "ok",
     "PreMaintenance stage would run (check mode)", TONE_CHANGED),
    ({"status": "failed", "succeeded": False, "rc": 3, "msg": "failed with exit code 3"}, 0.31, "ok",
     "PreMaintenance stage failed after 0.3 s: failed with exit code 3", TONE_ERROR),
    ({"status": "failed", "rc": 3, "msg": "failed with exit code 3"}, 0.31, "failed",
     "PreMaintenance stage failed after 0.3 s: failed with exit code 3", TONE_ERROR),
    ({"status": "timeout", "msg": "timed out after 5 s;\nits process group was killed"}, 35.0, "ok",
     "PreMaintenance stage timed out after 35.0 s: timed out after 5 s; its process group was killed", TONE_ERROR),
    ({"status": "rebooted", "succeeded": True}, 61.0, "ok", "PreMaintenance stage ok in 61.0 s: the host rebooted",
     TONE_OK),
    ({"status": "rebooted", "succeeded": False, "msg": "the host rebooted while the stage ran"}, 61.0, "ok",
     "PreMaintenance stage failed after 61.0 s: the host rebooted while the stage ran", TONE_ERROR),
    ({"msg": "value of stage must be one of: PreFlight"}, 0.0, "failed",
     "PreMaintenance stage failed after 0.0 s: value of stage must be one of: PreFlight", TONE_ERROR),
    ({"msg": "ssh: connect to host hv2 port 22: No route to host", "unreachable": True}, 5.0, "unreachable",
     "PreMaintenance stage: host unreachable after 5.0 s: ssh: connect to host hv2 port 22: No route to host",
     TONE_ERROR),
    ({"skipped": True, "skip_reason": "Conditional result was False"}, None, "skipped",
     "PreMaintenance stage skipped", TONE_SKIP),
    ({"changed": False}, None, "ok", "PreMaintenance stage done", TONE_OK),
])
def test_stage_outcomes(result: Dict[str, Any], seconds: Any, event: str, expected: str, tone: str) -> None:
    assert outcome_words(STAGE_ACTION, "PreMaintenance stage", result, seconds, event) == (expected, tone)


def test_a_maintenance_stage_that_left_maintenance_says_so() -> None:
    left = {"status": "ok", "in_maintenance": False, "msg": "the host left maintenance (it was in maintenance ...)"}
    assert outcome_words(STAGE_ACTION, "Maintenance stage", {"status": "ok", "left_maintenance": left}, 1.04) == \
        ("Maintenance stage ok in 1.0 s; the host left maintenance", TONE_OK)
    stuck = {"status": "failed", "in_maintenance": True, "msg": "the evacuation r.evacuation.1 still runs"}
    assert outcome_words(STAGE_ACTION, "Maintenance stage", {"status": "ok", "left_maintenance": stuck}, 1.04) == \
        ("Maintenance stage ok in 1.0 s; leaving maintenance failed: the evacuation r.evacuation.1 still runs",
         TONE_ERROR)


def test_a_long_message_stays_on_one_short_line() -> None:
    words, _tone = outcome_words(STAGE_ACTION, "Maintenance stage", {"status": "failed", "msg": "x" * 1000}, 1.0)
    assert "\n" not in words and len(words) < 400 and words.endswith("...")


@pytest.mark.parametrize(("label", "result", "event", "expected", "tone"), [
    ("evacuation", {"status": "ok", "moved": 3, "msg": "3 of 3 guests moved in 4.2 s",
                    "moves": [{"status": "moved"}] * 3}, "ok", "evacuation ok in 5.0 s: 3 of 3 guests moved", TONE_OK),
    ("evacuation", {"status": "ok", "moved": 1, "moves": [{"status": "moved"}]}, "ok",
     "evacuation ok in 5.0 s: 1 of 1 guest moved", TONE_OK),
    ("evacuation", {"status": "ok", "moved": 0, "moves": []}, "ok", "evacuation ok in 5.0 s: no guest to move",
     TONE_OK),
    ("evacuation", {"status": "timeout", "moved": 1, "moves": [{}, {}], "msg": "timed out; 1 of 2 guests moved"},
     "ok", "evacuation timed out after 5.0 s: timed out; 1 of 2 guests moved", TONE_ERROR),
    ("evacuation", {"status": "failed", "msg": "vm1: migration failed"}, "ok",
     "evacuation failed after 5.0 s: vm1: migration failed", TONE_ERROR),
    ("evacuation", {"status": "would_run", "msg": "check mode: would migrate 2 guest(s)"}, "ok",
     "evacuation would run (check mode): would migrate 2 guest(s)", TONE_CHANGED),
    ("leaving maintenance", {"status": "ok", "changed": True, "msg": "the host left maintenance (run r1)"}, "ok",
     "leaving maintenance ok in 5.0 s", TONE_OK),
    ("leaving maintenance", {"status": "ok", "changed": False, "msg": "the host was not in maintenance"}, "ok",
     "leaving maintenance ok in 5.0 s: the host was not in maintenance", TONE_OK),
])
def test_maintenance_outcomes(label: str, result: Dict[str, Any], event: str, expected: str, tone: str) -> None:
    assert outcome_words(MAINTENANCE_ACTION, label, result, 5.0, event) == (expected, tone)


def test_cluster_marks() -> None:
    marked = [{"item": host, "disabled": True} for host in ("hv1", "hv2", "hv3")]
    assert cluster_words("disabled", marked) == ("cluster disabled (marked on 3 of 3 hosts)", TONE_CHANGED)
    cleared = [{"item": "hv1", "disabled": False}, {"item": "hv2", "unreachable": True, "msg": "down"}]
    assert cluster_words("enabled", cleared) == ("cluster enabled again (mark cleared on 1 of 2 hosts)", TONE_ERROR)
    assert cluster_words("disabled", marked[:1], check_mode=True) == \
        ("cluster would be disabled (marked on 1 of 1 host) (check mode)", TONE_CHANGED)
    assert cluster_words("{{ state }}", marked) is None


def test_records_say_each_outcome_once() -> None:
    tracker = RecordTracker()
    assert tracker.update("hv1", {"status": "in_progress", "stage": ""}) is None
    assert not tracker.is_final("hv1")
    assert tracker.update("hv1", {"status": "updated", "stage": ""}) == ("updated", TONE_OK)
    assert tracker.is_final("hv1")
    assert tracker.update("hv1", {"status": "updated"}) is None
    assert tracker.update("hv2", {"status": "skipped", "stage": "PreFlight",
                                  "reason": "Pre-flight stage set to avoid maintenance"}) == \
        ("skipped at PreFlight: Pre-flight stage set to avoid maintenance", TONE_SKIP)
    assert tracker.update("hv3", {"status": "failed", "stage": "Maintenance", "reason": "exit 3"}) == \
        ("FAILED at Maintenance: exit 3", TONE_ERROR)
    assert tracker.update("hv4", "not a record") is None
    assert tracker.done() == 3
    # A second run in the same playbook opens the record again.
    assert tracker.update("hv1", {"status": "in_progress"}) is None and tracker.done() == 2


def test_done_words(run: Run) -> None:
    assert done_words(2, run) == " (2 of 6 hosts done)"
    assert done_words(1, Run(hosts=("hv1",))) == " (1 of 1 host done)"
    assert done_words(2, None) == ""


def test_abort_words() -> None:
    assert abort_words({"rm_aborted": True, "rm_abort_reason": "hv2: PreMaintenance: exit 3"}) == \
        "run aborted: hv2: PreMaintenance: exit 3"
    assert abort_words({"rm_aborted": "True"}) == "run aborted"
    assert abort_words({"rm_aborted": False, "rm_abort_reason": ""}) is None


def test_the_report_is_found_in_the_custom_stats_of_the_run() -> None:
    found = report()
    assert find_report({"_run": {REPORT_KEY: found, "other": 1}}) is found
    assert find_report({"localhost": {REPORT_KEY: found}}) is found  # set_stats with per_host true
    assert find_report({"_run": {REPORT_KEY: {"success": True}}}) is None  # not a report
    assert find_report({"_run": {"other": found}}) is None
    assert find_report({}) is None and find_report(None) is None and find_report([]) is None


def test_the_summary_is_the_report_lines_and_the_path() -> None:
    lines = summary_lines(report(), "/tmp/r.json")
    assert lines[0].startswith("Rolling maintenance r1: SUCCESS - 1 updated")
    assert lines[1].startswith("  updated  c1/hv1  [1 guest(s) moved: vm1->hv2]")
    assert lines[2] == "  skipped  c1/hv2  at PreFlight: no maintenance"
    assert lines[-1] == "JSON report: /tmp/r.json"
    assert summary_lines(report())[-1] == "  skipped  c1/hv2  at PreFlight: no maintenance"


def test_summary_tones() -> None:
    failed = report(success=False, details="aborted: x", attention=["host hv1 could not leave maintenance"],
                    hosts_failed=[{"host": "hv3", "cluster": "c1", "stage": "Maintenance", "reason": "exit 3"}])
    lines = summary_lines(failed)
    assert [line_tone(line) for line in lines] == ["error", "error", "plain", "skip", "error"]
    assert line_tone(summary_lines(report())[0]) == "ok"


def test_a_failed_argument_validation_is_shown_as_its_errors_on_one_line() -> None:
    result = {"failed": True, "changed": False, "msg": "Validation of arguments failed:\nargument 'a' is bad\nb is bad",
              "argument_errors": ["argument 'a' is bad", "b is bad"], "validate_args_context": {"name": "role"},
              "argument_spec_data": {"a": {"type": "int", "description": "x" * 4000}}}
    assert refused_arguments(result) == {"failed": True, "changed": False,
                                         "msg": "Validation of arguments failed: argument 'a' is bad; b is bad"}


def test_any_other_failure_is_shown_in_full() -> None:
    assert refused_arguments({"failed": True, "msg": "boom\ntrace", "rc": 1}) is None


def test_the_quiet_callback_shows_debug_messages_but_not_the_reports_lines_again() -> None:
    report = {"run_id": "r1", "success": True, "details": "0 updated, 0 skipped, 0 failed of 0 host(s)",
              "attention": [], "hosts_updated": [], "hosts_skipped": [], "hosts_failed": []}
    assert shows_debug_message("ansible.builtin.debug", ["c1/hv1: hv1-vm1 -> hv2"], report)
    assert shows_debug_message("ansible.builtin.debug", "hello", None)
    assert not shows_debug_message("ansible.builtin.debug", summary_lines(report), report)
    assert not shows_debug_message("ansible.builtin.set_fact", "hello", None)


def test_a_text_debug_message_is_printed_as_plain_lines_anything_else_as_is() -> None:
    assert message_lines("one\ntwo") == ["one", "two"]
    assert message_lines(["c1/hv1: a -> hv2", "c1/hv2: b -> hv1"]) == ["c1/hv1: a -> hv2", "c1/hv2: b -> hv1"]
    assert message_lines({"PreFlight": {"rc": 0}}) is None and message_lines(["x", 1]) is None
