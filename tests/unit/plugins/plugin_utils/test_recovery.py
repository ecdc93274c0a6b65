"""What a run does about what earlier runs left: refuse, repair, or resume."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ansible_collections.kvmops.rolling.plugins.plugin_utils._recovery import assess, record_is_final

CLUSTERS = {"c1": ["hv1", "hv2", "hv3"]}
HERE = {"host": "ctl", "boot_id": "boot-1"}
TIMEOUT = 900


def lock(run: str, age: float = 1.0, host: str = "ctl", boot_id: str = "boot-1", pid: int = 100) -> Dict[str, Any]:
    return {"run_id": run, "cluster": "c1", "started": "2026-11-24T22:00:00Z", "age": age,
            "controller": {"host": host, "boot_id": boot_id, "pid": pid, "pid_start_ticks": 5}}


def state(**fields: Any) -> Dict[str, Any]:
    return dict({"lock": None, "maintenance": None, "cluster_mark": None, "last_run": None, "running_jobs": []},
                **fields)


def decide(states: Dict[str, Optional[Dict[str, Any]]], resume: bool = False, alive: bool = True) -> Any:
    return assess(CLUSTERS, states, "new", resume, TIMEOUT, HERE, lambda _pid, _ticks: alive)


def test_nothing_left_behind() -> None:
    recovery = decide({host: state() for host in CLUSTERS["c1"]})
    assert recovery.run_id == "new" and not recovery.refusal and recovery.lines == []
    assert recovery.lock_hosts == ["hv1", "hv2", "hv3"] and recovery.takeover == {}


def test_a_live_holder_makes_the_run_refuse_naming_it() -> None:
    recovery = decide({"hv1": state(lock=lock("old", age=2)), "hv2": state(lock=lock("old", age=500)), "hv3": None})
    assert recovery.refusal.startswith("cluster c1 is being maintained by run old, started 2026-11-24T22:00:00Z on "
                                       "controller ctl (pid 100), last heard from 2 s ago")


def test_a_holder_whose_process_is_gone_is_taken_over_at_once() -> None:
    recovery = decide({"hv1": state(lock=lock("old")), "hv2": state(lock=lock("old")), "hv3": state()}, alive=False)
    assert not recovery.refusal and recovery.takeover == {"hv1": "old", "hv2": "old"}
    assert "its ansible-playbook process (pid 100 on ctl) is gone" in recovery.lines[0]


def test_a_holder_alive_on_this_controller_is_never_stale_whatever_its_age() -> None:
    # Its process runs (same pid, same start time): a lock that aged while one of its hosts rebooted stays its.
    old = decide({"hv1": state(lock=lock("old", age=10 * TIMEOUT)), "hv2": state(), "hv3": state()}, alive=True)
    assert old.refusal.startswith("cluster c1 is being maintained by run old")
    # After a reboot of the controller the pid means nothing: judged gone by the boot id.
    rebooted = decide({"hv1": state(lock=lock("old", age=2, boot_id="boot-0")), "hv2": state(), "hv3": state()})
    assert not rebooted.refusal and "has rebooted since" in rebooted.lines[0]


def test_a_holder_on_another_controller_is_gone_only_after_the_timeout() -> None:
    fresh = decide({"hv1": state(lock=lock("old", age=TIMEOUT, host="awx")), "hv2": state(), "hv3": state()},
                   alive=False)
    assert fresh.refusal
    stale = decide({"hv1": state(lock=lock("old", age=TIMEOUT + 1, host="awx")), "hv2": state(), "hv3": state()})
    assert not stale.refusal and "has not been heard from for 901 s" in stale.lines[0]


def test_a_controller_that_rebooted_is_gone() -> None:
    recovery = decide({"hv1": state(lock=lock("old", boot_id="boot-0")), "hv2": state(), "hv3": state()})
    assert not recovery.refusal and "has rebooted" in recovery.lines[0]


def test_what_a_gone_run_left_is_repaired() -> None:
    job = {"job_id": "old.Maintenance-stage.1", "run_id": "old", "label": "Maintenance stage", "elapsed": 100,
           "timeout": 1800}
    recovery = decide({
        "hv1": state(lock=lock("old"), cluster_mark={"run_id": "old", "cluster": "c1"}),
        "hv2": state(lock=lock("old"), cluster_mark={"run_id": "old", "cluster": "c1"},
                     maintenance={"run_id": "old"}, running_jobs=[job]),
        "hv3": state(lock=lock("old"), cluster_mark={"run_id": "old", "cluster": "c1"})}, alive=False)
    assert recovery.run_id == "new" and recovery.resumed_from == ""
    assert recovery.leave_maintenance == {"hv2": "old"} and recovery.enable_clusters == {"c1": "old"}
    assert recovery.wait_jobs == [dict(job, host="hv2", wait=1800 - 100 + 60)]


def test_marks_of_a_run_that_holds_no_lock_are_repaired_too() -> None:
    recovery = decide({"hv1": state(maintenance={"run_id": "older"}), "hv2": state(), "hv3": state()})
    assert recovery.leave_maintenance == {"hv1": "older"}


def test_resume_takes_up_the_interrupted_run_where_it_stopped() -> None:
    updated = {"status": "updated", "stages": {"PreFlight": {}, "Maintenance": {}}}
    going = {"status": "in_progress", "stages": {"PreFlight": {}, "PreMaintenance": {}}}
    recovery = decide({
        "hv1": state(lock=lock("old"), last_run={"run_id": "old", "record": updated},
                     cluster_mark={"run_id": "old", "cluster": "c1"}),
        "hv2": state(lock=lock("old"), last_run={"run_id": "old", "record": going}, maintenance={"run_id": "old"},
                     cluster_mark={"run_id": "old", "cluster": "c1"}),
        "hv3": state(lock=lock("old"), last_run={"run_id": "before", "record": updated})}, resume=True, alive=False)
    assert recovery.run_id == recovery.resumed_from == "old"
    assert recovery.resumed_records == {"hv1": updated, "hv2": going}
    assert recovery.disabled_clusters == ["c1"]
    assert recovery.leave_maintenance == {} and recovery.enable_clusters == {} and recovery.takeover == {}
    assert recovery.lines[-1] == "resuming run old: hv1 updated already; hv2 goes on after PreFlight, PreMaintenance"


def test_resume_follows_its_own_stages_but_waits_for_its_evacuation() -> None:
    stage = {"job_id": "old.M", "run_id": "old", "label": "Maintenance stage", "elapsed": 1, "timeout": 10}
    evacuation = {"job_id": "old.E", "run_id": "old", "label": "evacuation", "elapsed": 1, "timeout": 10}
    recovery = decide({"hv1": state(lock=lock("old"), running_jobs=[stage]),
                       "hv2": state(lock=lock("old"), running_jobs=[evacuation]), "hv3": state()},
                      resume=True, alive=False)
    assert [job["job_id"] for job in recovery.wait_jobs] == ["old.E"]


def test_resume_with_nothing_interrupted_starts_afresh() -> None:
    recovery = decide({host: state() for host in CLUSTERS["c1"]}, resume=True)
    assert recovery.run_id == "new" and "starts afresh" in recovery.lines[0]


def test_resume_refuses_to_guess_between_two_interrupted_runs() -> None:
    recovery = assess({"c1": ["hv1"], "c2": ["hv4"]}, {"hv1": state(lock=lock("a")), "hv4": state(lock=lock("b"))},
                      "new", True, TIMEOUT, HERE, lambda _pid, _ticks: False)
    assert recovery.refusal.startswith("rm_resume: several interrupted runs hold these clusters (a, b)")


def test_which_records_a_resumed_run_keeps() -> None:
    assert record_is_final({"status": "updated"})
    assert record_is_final({"status": "skipped", "kind": "skip"})
    assert not record_is_final({"status": "skipped", "kind": "failure"})
    assert not record_is_final({"status": "failed", "kind": "postfailure"})


def test_a_cluster_mark_counts_for_the_cluster_of_its_host_whatever_name_it_was_written_under() -> None:
    # Written as "c1" before a namesake appeared in another zone; the cluster is now z1/p1/c1.
    clusters = {"z1/p1/c1": ["hv1", "hv2"], "z2/p1/c1": ["hv7"]}
    states = {"hv1": state(cluster_mark={"run_id": "old", "cluster": "c1"}), "hv2": state(),
              "hv7": state(cluster_mark={"run_id": "old", "cluster": "c1"}, lock=lock("old"))}
    repaired = assess(clusters, states, "new", False, TIMEOUT, HERE, lambda _pid, _ticks: False)
    assert repaired.enable_clusters == {"z1/p1/c1": "old", "z2/p1/c1": "old"}
    resumed = assess(clusters, states, "new", True, TIMEOUT, HERE, lambda _pid, _ticks: False)
    assert resumed.run_id == "old" and resumed.disabled_clusters == ["z1/p1/c1", "z2/p1/c1"]


def test_a_new_run_with_the_id_of_a_finished_run_is_refused() -> None:
    # Its jobs' results would be adopted: a stage that succeeded in the old run would not run in this one.
    recovery = decide({"hv1": state(job_run_ids=["older", "new"]), "hv2": state(), "hv3": state()})
    assert recovery.refusal == ("rm_run_id: run new already ran on hv1; a new run needs an id of its own (leave "
                                "rm_run_id out), or take that run up with rm_resume; nothing was done")
    by_journal = decide({"hv1": state(), "hv2": state(last_run={"run_id": "new", "record": {"status": "updated"}}),
                         "hv3": state(job_run_ids=["new"])})
    assert "run new already ran on hv2, hv3;" in by_journal.refusal
    # rm_resume with no interrupted run to take up starts afresh under the id: refused alike.
    assert "already ran on hv1" in decide({"hv1": state(job_run_ids=["new"]), "hv2": state(), "hv3": state()},
                                          resume=True).refusal


def test_ids_of_other_runs_on_record_do_not_refuse() -> None:
    assert decide({host: state(job_run_ids=["older"]) for host in CLUSTERS["c1"]}).refusal == ""


def test_a_lock_is_judged_by_the_threshold_its_holder_recorded_never_by_the_judge() -> None:
    # The taker runs with rm_lock_timeout 3; the holder renews every 30 s and recorded 900 s.
    held = dict(lock("old", age=100, host="awx"), renew_interval=30, threshold=900)
    fresh = assess(CLUSTERS, {"hv1": state(lock=held), "hv2": state(), "hv3": state()}, "new", False, 3, HERE,
                   lambda _pid, _ticks: False)
    assert fresh.refusal.startswith("cluster c1 is being maintained by run old") and "(900 s)" in fresh.refusal
    stale = assess(CLUSTERS, {"hv1": state(lock=dict(held, age=901)), "hv2": state(), "hv3": state()}, "new", False,
                   3, HERE, lambda _pid, _ticks: False)
    assert not stale.refusal and "its threshold is 900 s" in stale.lines[0]
    # A lock that records no threshold (an older run's) is judged by the judge's own.
    unrecorded = decide({"hv1": state(lock=lock("old", age=TIMEOUT + 1, host="awx")), "hv2": state(), "hv3": state()})
    assert not unrecorded.refusal and "its threshold is 900 s" in unrecorded.lines[0]


def test_a_locked_cluster_with_a_host_that_cannot_be_read_is_not_taken_over_unless_named() -> None:
    # hv1, the host the holder works on, is rebooting: its lock there may be the fresh one.
    states = {"hv1": None, "hv2": state(lock=lock("old", age=5000, host="awx")),
              "hv3": state(lock=lock("old", age=5000, host="awx"))}
    refused = decide(states)
    assert refused.refusal.startswith("cluster c1 is locked by run old, and hv1 could not be read")
    assert "-e rm_take_over=old" in refused.refusal and refused.takeover == {}
    named = assess(CLUSTERS, states, "new", False, TIMEOUT, HERE, lambda _pid, _ticks: True, take_over="old")
    assert not named.refusal and named.takeover == {"hv2": "old", "hv3": "old"}
    # Naming a run never takes over a lock seen fresh.
    live = dict(states, hv2=state(lock=lock("old", age=5, host="awx")))
    assert assess(CLUSTERS, live, "new", False, TIMEOUT, HERE, lambda _pid, _ticks: True,
                  take_over="old").refusal.startswith("cluster c1 is being maintained by run old")
    # An unlocked cluster with a host down goes on (the host is reported unreachable).
    assert not decide({"hv1": None, "hv2": state(), "hv3": state()}).refusal


def test_a_takeover_carries_when_the_lock_was_renewed_as_judged() -> None:
    recovery = decide({"hv1": state(lock=dict(lock("old", age=5000, host="awx"), renewed_at=1795555000.5)),
                       "hv2": state(), "hv3": state()})
    assert recovery.takeover == {"hv1": "old"} and recovery.takeover_renewed_at == {"hv1": 1795555000.5}
