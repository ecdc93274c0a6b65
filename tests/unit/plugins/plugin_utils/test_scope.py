"""The run's inputs: exactly one scope, names that exist, sane timings; hosts in cluster order."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.kvmops.rolling.plugins.filter.locks import lock_renewal_due as due_filter
from ansible_collections.kvmops.rolling.plugins.plugin_utils._scope import (
    ScopeError,
    lock_renewal_due,
    names_of,
    resolve,
)

INVENTORY: Dict[str, Dict[str, Any]] = {
    "hv1": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z1"},
    "hv4": {"rm_cluster": "c2", "rm_pod": "p2", "rm_zone": "z1"},
    "hv2": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z1"},
    "hv5": {"rm_cluster": "c2", "rm_pod": "p2", "rm_zone": "z1"},
    "hv9": {"rm_cluster": "c9", "rm_pod": "p9", "rm_zone": "z2", "rm_executor": "agent"},
}
DEFAULTS = {"rm_stage_timeout": 1800, "rm_ping_interval": 10, "rm_wait_maintenance_timeout": 1800,
            "rm_max_parallel_migrations": 2, "rm_payload": "", "rm_run_id": "run1"}


def scope(**run_vars: Any) -> Any:
    return resolve(dict(DEFAULTS, **run_vars), list(INVENTORY), INVENTORY.__getitem__)


@pytest.mark.parametrize("payload", [42, 0, 1.5, None])
def test_a_payload_that_templated_to_a_number_or_nothing_is_accepted(payload: Any) -> None:
    # ansible-core 2.19+ hands -e rm_payload={{ 6 * 7 }} over as the int 42; the stage gets the text.
    assert scope(rm_hosts="hv1", rm_payload=payload).hosts == ["hv1"]


@pytest.mark.parametrize(("run_vars", "hosts"), [
    ({"rm_hosts": "hv2,hv1"}, ["hv1", "hv2"]),
    ({"rm_hosts": ["hv5", "hv1"]}, ["hv1", "hv5"]),
    ({"rm_clusters": "c2"}, ["hv4", "hv5"]),
    ({"rm_pods": ["p1", "p2"]}, ["hv1", "hv2", "hv4", "hv5"]),
    ({"rm_zones": "z1"}, ["hv1", "hv2", "hv4", "hv5"]),
    ({"rm_zones": " z2 , "}, ["hv9"]),
])
def test_scope_resolves_to_hosts_grouped_by_cluster_in_inventory_order(run_vars: Dict[str, Any], hosts: list) -> None:
    assert scope(**run_vars).hosts == hosts


def test_scope_knows_every_member_of_the_clusters_concerned() -> None:
    resolved = scope(rm_hosts="hv5")
    assert resolved.members == {"c2": ["hv4", "hv5"]}
    assert resolved.as_dict()["cluster_hosts"] == ["hv4", "hv5"]


NAMESAKES: Dict[str, Dict[str, Any]] = {
    "a1": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z1"},
    "b1": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z2"},
    "a2": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z1"},
    "b2": {"rm_cluster": "c1", "rm_pod": "p1", "rm_zone": "z2"},
    "x1": {"rm_cluster": "c3", "rm_pod": "p1", "rm_zone": "z2"},
}


@pytest.mark.parametrize(("clusters", "hosts"), [
    ("c1", ["a1", "a2", "b1", "b2"]),
    ("z2/p1/c1", ["b1", "b2"]),
    ("z2/p1/c1,c3", ["b1", "b2", "x1"]),
])
def test_clusters_of_the_same_name_in_two_zones_are_two_clusters(clusters: str, hosts: list) -> None:
    resolved = resolve(dict(DEFAULTS, rm_clusters=clusters), list(NAMESAKES), NAMESAKES.__getitem__)
    assert resolved.hosts == hosts
    assert resolved.members == {key: members for key, members in {
        "z1/p1/c1": ["a1", "a2"], "z2/p1/c1": ["b1", "b2"], "c3": ["x1"]}.items()
        if set(members) & set(hosts)}
    assert resolved.identity["c3" if "x1" in hosts else "z2/p1/c1"] == (
        {"zone": "z2", "pod": "p1", "cluster": "c3" if "x1" in hosts else "c1"})
    assert {resolved.cluster_of[host] for host in ("b1", "b2")} == {"z2/p1/c1"}


def test_a_cluster_key_that_matches_nothing_is_refused() -> None:
    with pytest.raises(ScopeError, match="rm_clusters: no inventory host has rm_cluster = 'z9/p1/c1'"):
        resolve(dict(DEFAULTS, rm_clusters="z9/p1/c1"), list(NAMESAKES), NAMESAKES.__getitem__)


@pytest.mark.parametrize(("run_vars", "complaint"), [
    ({}, "no scope: set exactly one of rm_hosts, rm_clusters, rm_pods, rm_zones"),
    ({"rm_hosts": " , "}, "no scope"),
    ({"rm_hosts": "hv1", "rm_clusters": "c1"}, "more than one scope (rm_hosts, rm_clusters)"),
    ({"rm_clusters": "c1,c7"}, "rm_clusters: no inventory host has rm_cluster = 'c7'"),
    ({"rm_hosts": "hv1; reboot"}, "rm_hosts: no inventory host is named 'hv1; reboot'"),
    ({"rm_hosts": "hv1", "rm_stage_timeout": 5, "rm_ping_interval": 10},
     "rm_stage_timeout (5 s) is lower than rm_ping_interval (10 s)"),
    ({"rm_hosts": "hv1", "rm_stage_timeout": 0}, "rm_stage_timeout must be a positive integer"),
    ({"rm_hosts": "hv1", "rm_stage_timeout": -1}, "rm_stage_timeout must be a positive integer"),
    ({"rm_hosts": "hv1", "rm_stage_timeout": "abc"}, "rm_stage_timeout must be a positive integer"),
    ({"rm_hosts": "hv1", "rm_stage_timeout": 10 ** 12},
     "rm_stage_timeout is too large: at most 999999999 seconds, got 1000000000000"),
    ({"rm_hosts": "hv1", "rm_wait_maintenance_timeout": "-5"},
     "rm_wait_maintenance_timeout must be a positive integer of seconds, got '-5'"),
    ({"rm_hosts": "hv1", "rm_payload": "caf\u00e9 \udcff"}, "rm_payload: payload is not UTF-8 text"),
    ({"rm_hosts": "hv1", "rm_payload": ["a"]}, "rm_payload must be a string, got ['a']"),
    ({"rm_hosts": "hv1", "rm_payload": True}, "rm_payload must be a string, got True"),
    ({"rm_hosts": "hv1 hv2"}, "rm_hosts: no inventory host is named 'hv1 hv2'"),
    ({"rm_hosts": ["hv*", "all", "$(id)"]}, "rm_hosts: no inventory host is named 'hv*', 'all', '$(id)'"),
    ({"rm_hosts": "hv1", "_raw_params": "hv2"}, "extra vars have words that are not NAME=VALUE: 'hv2'"),
    ({"rm_hosts": "hv1", "rm_wait_maintenance_timeout": 3}, "rm_wait_maintenance_timeout (3 s) is lower"),
    ({"rm_hosts": "hv1", "rm_max_parallel_migrations": 0}, "rm_max_parallel_migrations must be a positive integer"),
    ({"rm_hosts": "hv1", "rm_payload": "a; b"}, "rm_payload: payload has an unquoted shell operator ';'"),
    ({"rm_hosts": "hv1", "rm_run_id": "../x"}, "rm_run_id '../x'"),
    ({"rm_hosts": "hv1", "rm_run_id": "run1\n"}, "rm_run_id 'run1\\n'"),
    ({"rm_hosts": "hv1", "rm_lock_timeout": "abc"}, "rm_lock_timeout must be a positive integer"),
    ({"rm_hosts": "hv1", "rm_take_over": "old run"}, "rm_take_over 'old run': name the run to take over by its id"),
])
def test_bad_input_is_refused_naming_the_problem(run_vars: Dict[str, Any], complaint: str) -> None:
    with pytest.raises(ScopeError) as caught:
        scope(**run_vars)
    assert complaint in str(caught.value)


def test_every_problem_is_named_at_once_unknown_names_included() -> None:
    # -e "rm_hosts=hv1;reboot now": Ansible sets rm_hosts to 'hv1;reboot' and leaves 'now' stray.
    with pytest.raises(ScopeError) as caught:
        scope(rm_hosts="hv1;reboot", _raw_params="now", rm_stage_timeout=0)
    problems = str(caught.value).split("; ")
    assert problems[0].startswith("extra vars have words that are not NAME=VALUE: 'now'")
    assert "rm_stage_timeout must be a positive integer of seconds, got 0" in problems
    assert problems[-1] == "rm_hosts: no inventory host is named 'hv1;reboot'"


def test_no_stray_words_is_no_problem() -> None:
    assert scope(rm_hosts="hv1", _raw_params=None).hosts == ["hv1"]
    assert scope(rm_hosts="hv1", _raw_params="").hosts == ["hv1"]


def test_equal_timeout_and_interval_is_accepted() -> None:
    assert scope(rm_hosts="hv1", rm_stage_timeout=10, rm_ping_interval=10).settings["rm_stage_timeout"] == 10


def test_the_lock_threshold_covers_the_longest_step_on_top_of_the_lock_timeout_never_under_three_polls() -> None:
    # A host the run is not working on is renewed between steps: it may wait a whole step for it.
    settings = scope(rm_hosts="hv1", rm_lock_timeout=900).settings
    assert settings["rm_lock_threshold"] == 900 + 1800 and settings["rm_lock_renewal_interval"] == 300
    settings = scope(rm_hosts="hv1", rm_lock_timeout=3, rm_ping_interval=10, rm_stage_timeout=60,
                     rm_wait_maintenance_timeout=20).settings
    assert settings["rm_lock_threshold"] == 30 + 60 and settings["rm_lock_renewal_interval"] == 10


def test_the_run_to_take_over_is_kept() -> None:
    assert scope(rm_hosts="hv1", rm_take_over="20261125T010000Z-77").take_over == "20261125T010000Z-77"
    assert scope(rm_hosts="hv1").as_dict()["take_over"] == ""


def test_an_unknown_executor_is_refused() -> None:
    inventory = dict(INVENTORY, hv9=dict(INVENTORY["hv9"], rm_executor="systemd"))
    with pytest.raises(ScopeError, match="host hv9: unknown rm_executor 'systemd'"):
        resolve(dict(DEFAULTS, rm_hosts="hv9"), list(inventory), inventory.__getitem__)


def test_names_of() -> None:
    assert names_of("a, b,,c ") == ["a", "b", "c"]
    assert names_of(None) == []
    with pytest.raises(ScopeError):
        names_of({"a": 1})


def test_the_locks_are_due_for_renewal_once_the_interval_has_passed_never_in_check_mode() -> None:
    assert not lock_renewal_due(1000.0, 300, now=1299.0, check_mode=False)
    assert lock_renewal_due(1000.0, 300, now=1300.0, check_mode=False)
    assert not lock_renewal_due(1000.0, 300, now=5000.0, check_mode=True)
    assert not lock_renewal_due(None, 300, now=5000.0, check_mode=False)  # not taken yet


def test_the_filter_takes_the_timestamp_a_fact_keeps_as_text() -> None:
    assert due_filter("1000.5", "1", "false") and not due_filter("", 1) and not due_filter(None, 1)
    assert not due_filter("1000.5", 1, True)
