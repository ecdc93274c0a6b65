"""The report: where each host lands, what comes first, when the run counts as a success."""

from __future__ import annotations

from typing import Any, Dict

from ansible_collections.kvmops.rolling.plugins.plugin_utils._report import build_report, report_lines, standing_cancel_failures

RUN = {"run_id": "r1", "kind": "rm_clusters", "names": ["c1"], "hosts": ["hv1", "hv2", "hv3"]}
STAGE = {"status": "ok", "rc": 0, "duration": 1.5, "stdout_tail": "done\n", "stderr_tail": ""}


def record(host: str, status: str, **extra: Any) -> Dict[str, Any]:
    return dict({"host": host, "cluster": "c1", "status": status, "start": "s", "end": "e",
                 "stages": {"PreFlight": STAGE}}, **extra)


def test_hosts_are_sorted_into_updated_skipped_and_failed() -> None:
    report = build_report(RUN, [record("hv1", "updated"), record("hv2", "skipped", stage="PreFlight", reason="70"),
                                record("hv3", "failed", stage="PostMaintenance", reason="exit 6")],
                          {"lines": ["c1/hv1: a -> hv2"]}, {"forced": True})
    assert [entry["host"] for entry in report["hosts_updated"]] == ["hv1"]
    assert report["hosts_skipped"][0]["stage"] == "PreFlight" and report["hosts_skipped"][0]["reason"] == "70"
    assert report["hosts_failed"][0]["stage"] == "PostMaintenance"
    assert not report["success"] and report["details"] == "1 updated, 1 skipped, 1 failed of 3 host(s)"
    assert report["hosts_updated"][0]["stages"]["PreFlight"]["rc"] == 0
    assert set(report) >= {"success", "details", "plan", "hosts_updated", "hosts_skipped", "hosts_failed"}


def test_hosts_after_an_abort_are_reported_not_started() -> None:
    report = build_report(RUN, [record("hv1", "failed", stage="PreMaintenance", reason="exit 4"),
                                record("hv2", "in_progress"), {"host": "hv3", "cluster": "c1"}],
                          {}, {"aborted": True, "abort_reason": "hv1: PreMaintenance: exit 4"})
    assert [(entry["host"], entry["stage"]) for entry in report["hosts_skipped"]] == [
        ("hv2", "not started"), ("hv3", "not started")]
    assert report["details"].startswith("aborted: hv1: PreMaintenance: exit 4")
    assert not report["success"]


def test_anything_left_behind_comes_first() -> None:
    report = build_report(RUN, [record("hv1", "updated")], {},
                          {"cancel_failures": ["hv1 (libvirt unreachable)"], "clusters_left_disabled": ["c1"]})
    lines = report_lines(report)
    assert lines[0] == ("ATTENTION: host hv1 (libvirt unreachable) could not leave maintenance; "
                        "cluster c1 is still disabled by this run")
    assert not report["success"] and lines[1].startswith("Rolling maintenance r1: FAILED")


def test_a_clean_run_succeeds_and_reads_well() -> None:
    evacuation = {"moves": [{"vm": "web", "target": "hv2", "status": "moved"}]}
    report = build_report(RUN, [record("hv1", "updated", evacuation=evacuation)], {}, {})
    assert report["success"]
    assert report_lines(report) == [
        "Rolling maintenance r1: SUCCESS - 1 updated, 0 skipped, 0 failed of 3 host(s)",
        "  updated  c1/hv1  [1 guest(s) moved: web->hv2]  PreFlight ok 1.5s"]


def test_check_mode_lists_hosts_as_planned_never_as_updated() -> None:
    would_run = {"status": "would_run", "rc": None}
    report = build_report(RUN, [record("hv1", "planned", stages={"PreFlight": would_run})], {}, {"check_mode": True})
    assert report["hosts_updated"] == [] and [entry["host"] for entry in report["hosts_planned"]] == ["hv1"]
    assert report["success"]
    assert report_lines(report) == [
        "Rolling maintenance r1: SUCCESS - 1 planned, 0 skipped, 0 failed of 3 host(s) (check mode: no script ran, "
        "nothing was migrated or disabled)",
        "  planned  c1/hv1  PreFlight would_run"]


def test_a_run_where_no_host_has_a_maintenance_script_says_so_first() -> None:
    skipped = [record(host, "skipped", stage="Maintenance", reason="There is no maintenance script on the host")
               for host in ("hv1", "hv2", "hv3")]
    scripts = {host: {"found": False, "hooks_dir": "/etc/kvm-rolling-maintenace/hooks"} for host in ("hv1", "hv2", "hv3")}
    lines = report_lines(build_report(RUN, skipped, {}, {"maintenance_scripts": scripts}))
    assert lines[0] == ("Rolling maintenance r1: SUCCESS - no host in scope has a Maintenance script (looked in "
                        "/etc/kvm-rolling-maintenace/hooks): nothing was maintained; is rm_hooks_dir right?; "
                        "0 updated, 3 skipped, 0 failed of 3 host(s)")
    scripts["hv2"]["found"] = True  # one host has one: nothing to say
    assert "Maintenance script" not in build_report(RUN, skipped, {}, {"maintenance_scripts": scripts})["details"]


def test_a_host_the_finish_took_out_of_maintenance_has_no_attention_line() -> None:
    failures = ["hv1 (unreachable)", "hv2 (libvirt: connection refused)"]
    assert standing_cancel_failures(failures, ["hv1"]) == ["hv2 (libvirt: connection refused)"]
    assert standing_cancel_failures(failures, []) == failures


def test_a_guest_running_on_two_hosts_heads_the_report() -> None:
    evacuation = {"status": "failed", "on_both": ["web (here and on hv2)"], "moves": []}
    report = build_report(RUN, [record("hv1", "failed", stage="maintenance mode", reason="x", evacuation=evacuation)],
                          {}, {"cancel_failures": ["hv3 (unreachable)"]})
    assert report_lines(report)[0] == (
        "ATTENTION: guest web (here and on hv2) runs on two hosts, left untouched on both: keep one, destroy the "
        "other; host hv3 (unreachable) could not leave maintenance")
    assert not report["success"]


def test_an_unexpected_error_heads_the_report() -> None:
    error = 'unexpected error on hv2 at "Plan this host\'s evacuation again": boom'
    report = build_report(RUN, [record("hv1", "updated"), record("hv2", "failed", stage="unexpected error", reason=error)],
                          {}, {"aborted": True, "abort_reason": error, "unexpected_errors": [error]})
    lines = report_lines(report)
    assert lines[0] == "ATTENTION: " + error and not report["success"]
    assert report["details"].startswith("aborted: " + error)


def test_a_failed_host_says_what_its_script_said_last() -> None:
    failed = dict(STAGE, status="failed", rc=100, stdout_tail="upgrading\n", stderr_tail="E: could not get lock\n\n")
    silent = dict(STAGE, status="failed", rc=3, stdout_tail="", stderr_tail="")
    chatty = dict(STAGE, status="failed", rc=1, stdout_tail="x" * 500 + "\n", stderr_tail="")
    report = build_report(RUN, [record("hv1", "failed", stage="Maintenance", reason="failed with exit code 100",
                                       stages={"Maintenance": failed}),
                                record("hv2", "failed", stage="PreFlight", reason="failed with exit code 3",
                                       stages={"PreFlight": silent}),
                                record("hv3", "failed", stage="PreFlight", reason="failed with exit code 1",
                                       stages={"PreFlight": chatty})], {}, {"forced": True})
    assert report_lines(report)[1:] == [
        "  FAILED   c1/hv1  at Maintenance: failed with exit code 100; it said: E: could not get lock",
        "  FAILED   c1/hv2  at PreFlight: failed with exit code 3",
        "  FAILED   c1/hv3  at PreFlight: failed with exit code 1; it said: " + "x" * 200 + "..."]
