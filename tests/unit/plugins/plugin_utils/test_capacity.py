"""From inventory variables and hypervisor facts to plans: scope order, targets, URIs, blocked clusters."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible_collections.kvmops.rolling.plugins.plugin_utils._capacity import (
    NO_MAINTENANCE_SCRIPT,
    PREFLIGHT_NO_MAINTENANCE,
    expected_skip,
    members_to_read_again,
    plan_recheck,
    recheck_first_reads,
    plan_scope,
)


def domain(name: str, memory: int = 512, **extra: Any) -> Dict[str, Any]:
    return dict({"name": name, "uuid": "uuid-" + name, "state": "running", "state_reason": "booted", "active": True,
                 "transitional": False, "persistent": True, "vcpus": 1, "memory_mib": memory, "host_tags": [],
                 "anti_affinity_groups": [], "migration_blockers": [], "notes": []}, **extra)


def facts(*domains: Dict[str, Any]) -> Dict[str, Any]:
    return {"hostname": "x", "uri": "qemu:///system", "node": {"cpus": 8, "memory_mib": 8192},
            "maintenance": None, "domains": list(domains)}


HOSTS: Dict[str, Dict[str, Any]] = {
    "a1": {"rm_cluster": "ca", "ansible_host": "10.0.0.1"},
    "b1": {"rm_cluster": "cb", "rm_migration_uri": "qemu+tls://b1.example/system"},
    "a2": {"rm_cluster": "ca", "ansible_host": "10.0.0.2"},
    "b2": {"rm_cluster": "cb"},
}
FACTS: Dict[str, Optional[Dict[str, Any]]] = {
    "a1": facts(domain("web1")), "a2": facts(), "b1": facts(), "b2": facts(domain("db1")),
}


def plan(scope: List[str], host_vars: Optional[Dict[str, Dict[str, Any]]] = None,
         host_facts: Optional[Dict[str, Optional[Dict[str, Any]]]] = None) -> Dict[str, Any]:
    host_vars = host_vars or HOSTS
    return plan_scope(scope, list(host_vars), host_vars.__getitem__, (host_facts or FACTS).get)


def test_scope_is_planned_cluster_by_cluster_with_each_targets_migration_uri() -> None:
    result = plan(["b2", "a1", "b1"])
    assert result["order"] == ["b2", "b1", "a1"] and result["feasible"]
    assert [cluster["cluster"] for cluster in result["clusters"]] == ["cb", "ca"]
    assert result["moves"]["b2"] == [{"vm": "db1", "uuid": "uuid-db1", "target": "b1",
                                      "target_uri": "qemu+tls://b1.example/system"}]
    assert result["moves"]["a1"] == [{"vm": "web1", "uuid": "uuid-web1", "target": "a2",
                                      "target_uri": "qemu+ssh://10.0.0.2/system"}]


def test_guests_never_move_to_a_namesake_cluster_in_another_zone() -> None:
    host_vars = {"a1": {"rm_zone": "z1", "rm_cluster": "c1"}, "b1": {"rm_zone": "z2", "rm_cluster": "c1"},
                 "a2": {"rm_zone": "z1", "rm_cluster": "c1"}}
    result = plan(["a1"], host_vars, {"a1": facts(domain("web1")), "a2": facts(), "b1": facts()})
    assert [cluster["cluster"] for cluster in result["clusters"]] == ["z1//c1"]
    assert result["moves"]["a1"][0]["target"] == "a2"
    assert result["lines"][0].startswith("z1//c1/a1")
    lone = plan(["b1"], host_vars, {"a1": facts(), "a2": facts(), "b1": facts(domain("db1"))})
    assert lone["problems"] == {"b1": "1 VM of b1 cannot move: db1: cluster z2//c1 has no other host"}


def test_a_transitional_guest_blocks_its_cluster_only() -> None:
    host_facts = dict(FACTS, a2=facts(domain("mig", transitional=True, state="paused", state_reason="migration")))
    result = plan(["a1", "b2"], host_facts=host_facts)
    assert result["problems"] == {"a1": "cluster ca has guests in a transitional or error state: "
                                        "mig on a2 (paused: migration)"}
    assert not result["feasible"] and result["moves"]["b2"][0]["target"] == "b1"


def test_a_disabled_or_unreachable_host_is_no_target() -> None:
    host_vars = dict(HOSTS, a2=dict(HOSTS["a2"], rm_host_enabled=False))
    assert "web1" in plan(["a1"], host_vars=host_vars)["problems"]["a1"]
    assert "web1" in plan(["a1"], host_facts=dict(FACTS, a2=None))["problems"]["a1"]


def test_reserved_memory_and_overcommit_come_from_the_inventory() -> None:
    big = dict(FACTS, a1=facts(domain("big", memory=7500)))
    assert "needs 7500 MiB" in plan(["a1"], host_facts=big)["problems"]["a1"]  # 8192 - 1024 reserved
    generous = {name: dict(values, rm_reserved_host_memory_mib=0) for name, values in HOSTS.items()}
    assert plan(["a1"], host_vars=generous, host_facts=big)["feasible"]


def test_a_host_expected_to_be_skipped_is_not_evacuated_and_stays_a_target() -> None:
    """SPEC: a host that will be skipped keeps its guests, counts as a target, and the plan says so."""
    host_vars = dict(HOSTS, a3={"rm_cluster": "ca"})
    full = dict(FACTS, a2=facts(domain("big", memory=7000)), a3=facts())
    # a2 skipped: its 7000 MiB guest stays put, and a1's guest may still go to a2 or a3.
    result = plan_scope(["a1", "a2", "a3"], list(host_vars), host_vars.__getitem__, full.get,
                        skips={"a2": NO_MAINTENANCE_SCRIPT})
    assert result["feasible"] and result["skips"] == {"a2": NO_MAINTENANCE_SCRIPT}
    assert "a2" not in result["moves"] and [move["target"] for move in result["moves"]["a1"]] == ["a3"]
    assert result["lines"] == ["ca/a1: web1 -> a3",
                               "ca/a2: expected to be skipped (%s): not evacuated, stays a target"
                               % NO_MAINTENANCE_SCRIPT,
                               "ca/a3: web1 -> a1"]  # web1 came to a3; a1 is done by then
    # Without the skip, a2's big guest must move while a1's guest sits on a3 or a1: the plan is the whole sequence.
    assert plan_scope(["a1", "a2", "a3"], list(host_vars), host_vars.__getitem__, full.get)["moves"]["a2"]


def test_expected_skips_come_from_the_scripts_and_preflight() -> None:
    assert expected_skip({"Maintenance": "skipped"}, None) == NO_MAINTENANCE_SCRIPT
    assert expected_skip({"Maintenance": "would_run"}, {"stages": {"PreFlight": {"status": "no_maintenance"}}}) \
        == PREFLIGHT_NO_MAINTENANCE
    assert expected_skip({"Maintenance": "would_run"}, {"stages": {"PreFlight": {"status": "ok"}}}) == ""
    assert expected_skip(None, None) == ""


RECHECK_HOSTS: Dict[str, Dict[str, Any]] = {name: {"rm_cluster": "ca"} for name in ("a1", "a2", "a3")}
RECHECK_HOSTS["b1"] = {"rm_cluster": "cb"}


def recheck(fresh: List[str], host_facts: Dict[str, Optional[Dict[str, Any]]]) -> Dict[str, Any]:
    return plan_recheck("a1", fresh, list(RECHECK_HOSTS), RECHECK_HOSTS.__getitem__, host_facts.get)


def test_a_recheck_plans_on_the_hosts_read_again_alone_and_reads_no_more_when_they_are_enough() -> None:
    # a3 looks emptier, but its facts are old (not read again): only a2, the planned target, is one.
    result = recheck(["a1", "a2"], {"a1": facts(domain("web1")), "a2": facts(domain("x", 6000)), "a3": facts()})
    assert result["feasible"] and [move["target"] for move in result["moves"]["a1"]] == ["a2"]
    assert result["read_again"] == []


def test_a_recheck_reads_the_rest_of_the_cluster_when_the_hosts_read_are_not_enough() -> None:
    full = facts(domain("x", 8000))
    result = recheck(["a1", "a2"], {"a1": facts(domain("web1", 2048)), "a2": full, "a3": facts(), "b1": facts()})
    assert "a1" in result["problems"]
    assert result["read_again"] == ["a3"]  # the other cluster's b1 is never a target
    again = recheck(["a1", "a2", "a3"], {"a1": facts(domain("web1", 2048)), "a2": full, "a3": facts()})
    assert again["feasible"] and again["moves"]["a1"][0]["target"] == "a3" and again["read_again"] == []


def test_a_host_without_running_guests_is_rechecked_on_itself_alone() -> None:
    result = recheck(["a1"], {"a1": facts(), "a2": facts(), "a3": facts()})
    assert result["feasible"] and result["moves"]["a1"] == [] and result["read_again"] == []


def test_a_host_still_failing_once_every_member_was_read_reads_nothing_more() -> None:
    assert members_to_read_again("a1", {"problems": {"a1": "no room"}}, ["a1", "a2", "a3"], list(RECHECK_HOSTS),
                                 RECHECK_HOSTS.__getitem__) == []


def test_the_recheck_reads_the_planned_targets_first_and_the_host_unless_premaintenance_read_it() -> None:
    moves = [{"vm": "web1", "target": "a3"}, {"vm": "db1", "target": "a2"}, {"vm": "web2", "target": "a3"}]
    assert recheck_first_reads("a1", moves, host_read=False) == ["a1", "a3", "a2"]
    assert recheck_first_reads("a1", moves, host_read=True) == ["a3", "a2"]
    assert recheck_first_reads("a1", [], host_read=True) == []


def test_the_host_itself_is_fresh_in_its_recheck_when_its_stage_read_it() -> None:
    # PreMaintenance read a1 (not in the list of hosts read): its fresh guest web1 still goes to a2.
    result = recheck(["a2"], {"a1": facts(domain("web1")), "a2": facts(), "a3": facts(domain("x", 6000))})
    assert result["feasible"] and [move["target"] for move in result["moves"]["a1"]] == ["a2"]
