"""Host order rules: grouping by cluster, serial refusal, and the guard against going back to a cluster."""

from __future__ import annotations

import pytest

from ansible_collections.kvmops.rolling.plugins.plugin_utils._cluster_order import (
    CLUSTER_SERIAL,
    LINEAR,
    ClusterSequence,
    cluster_identity,
    cluster_names,
    group_by_cluster,
    host_play_strategy,
    serial_refusal,
)

CLUSTERS = {"a1": "c2", "b1": "c1", "a2": "c2", "b2": "c1", "c1h": "c3"}


def test_group_by_cluster_keeps_inventory_order_inside_and_first_appearance_across() -> None:
    assert group_by_cluster(["a1", "b1", "a2", "c1h", "b2"], CLUSTERS.__getitem__) == ["a1", "a2", "b1", "b2", "c1h"]


def test_a_cluster_is_its_zone_pod_and_name_together() -> None:
    assert cluster_identity({"rm_zone": "z1", "rm_pod": "p1", "rm_cluster": "c1"}) == ("z1", "p1", "c1")
    assert cluster_identity({"rm_cluster": "c1"}) == ("", "", "c1")


def test_a_cluster_is_named_alone_unless_another_zone_or_pod_has_a_namesake() -> None:
    names = cluster_names({"a": ("z1", "p1", "c1"), "b": ("z2", "p1", "c1"), "c": ("z1", "p1", "c1"),
                           "d": ("z1", "p2", "c2"), "e": ("z1", "p2", "c2"), "f": ("z1", "p3", "c1"), "g": ("", "", "")})
    assert names == {"a": "z1/p1/c1", "b": "z2/p1/c1", "c": "z1/p1/c1", "d": "c2", "e": "c2", "f": "z1/p3/c1", "g": ""}


def test_namesake_clusters_are_grouped_apart() -> None:
    names = cluster_names({"a1": ("z1", "p1", "c1"), "b1": ("z2", "p1", "c1"), "a2": ("z1", "p1", "c1")})
    assert group_by_cluster(["a1", "b1", "a2"], names.__getitem__) == ["a1", "a2", "b1"]


@pytest.mark.parametrize("serial", [[], [1], ["1"], [1, 1]])
def test_serial_one_or_none_is_accepted(serial: list) -> None:
    assert serial_refusal(serial) is None


@pytest.mark.parametrize("serial", [[2], ["50%"], [1, 5], [0]])
def test_other_serial_is_refused_with_the_value(serial: list) -> None:
    message = serial_refusal(serial)
    assert message is not None and "one host at a time" in message and str(serial[-1]) in message


def test_going_back_to_a_cluster_is_refused() -> None:
    sequence = ClusterSequence()
    assert sequence.enter("b1", "c1") is None
    assert sequence.enter("b2", "c1") is None
    assert sequence.enter("a1", "c2") is None
    message = sequence.enter("b3", "c1")
    assert message is not None and "host b3 of cluster c1 comes after cluster c2 was begun" in message


@pytest.mark.parametrize("chosen, version, expected", [
    ("", "2.16.14", CLUSTER_SERIAL),
    ("", "2.18.0", CLUSTER_SERIAL),
    ("", "2.19.0", LINEAR),
    ("", "2.21.0rc1", LINEAR),
    ("", "3.0.0", LINEAR),
    ("ansible.builtin.linear", "2.16.14", LINEAR),
    ("kvmops.rolling.cluster_serial", "2.21.0", CLUSTER_SERIAL),
])
def test_the_host_play_runs_linear_where_strategies_from_collections_are_deprecated(
        chosen: str, version: str, expected: str) -> None:
    assert host_play_strategy(chosen, version) == expected
