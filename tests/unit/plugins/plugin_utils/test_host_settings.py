"""Per-host variables: checked before anything runs, numbers accepted as -e and AWX give them (strings)."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_settings import (
    DEFAULT_RESERVED_MEMORY_MIB,
    HostSettings,
    HostSettingsError,
    host_settings,
)


def test_unset_variables_take_the_defaults() -> None:
    assert host_settings("hv1", {}) == HostSettings(migration_uri="qemu+ssh://hv1/system")
    assert HostSettings().reserved_memory_mib == DEFAULT_RESERVED_MEMORY_MIB


@pytest.mark.parametrize(("variables", "migration_uri"), [
    ({}, "qemu+ssh://hv1/system"),
    ({"ansible_host": "10.0.0.12"}, "qemu+ssh://10.0.0.12/system"),
    ({"ansible_host": "hv1.example.org"}, "qemu+ssh://hv1.example.org/system"),
    ({"ansible_host": "fd00::12"}, "qemu+ssh://[fd00::12]/system"),
    ({"ansible_host": "hv1?x", "rm_migration_uri": "qemu+tls://hv1.example.org/system"},
     "qemu+tls://hv1.example.org/system"),  # given: ansible_host is not read for it
    ({"rm_migration_uri": "qemu+ssh://root@[fd00::12]:2222/system?keyfile=/root/.ssh/k"},
     "qemu+ssh://root@[fd00::12]:2222/system?keyfile=/root/.ssh/k"),
])
def test_the_migration_uri_is_given_or_built_from_the_address(variables: Dict[str, Any], migration_uri: str) -> None:
    assert host_settings("hv1", variables).migration_uri == migration_uri


def test_strings_holding_numbers_are_the_numbers() -> None:
    """`-e rm_reserved_host_memory_mib=2048` and survey answers arrive as strings."""
    settings = host_settings("hv1", {"rm_reserved_host_memory_mib": "2048", "rm_cpu_overcommit_ratio": " 4 ",
                                     "rm_memory_overcommit_ratio": 1.5, "rm_host_capacity": {"cpus": "16"},
                                     "rm_host_tags": "ssd, gpu", "rm_host_enabled": "no"})
    assert (settings.reserved_memory_mib, settings.cpu_overcommit, settings.memory_overcommit) == (2048, 4, 1.5)
    assert settings.capacity == {"cpus": 16} and settings.tags == ("ssd", "gpu") and settings.enabled is False


@pytest.mark.parametrize(("variables", "complaint"), [
    ({"rm_reserved_host_memory_mib": "abc"}, "rm_reserved_host_memory_mib must be a number >= 0, got 'abc'"),
    ({"rm_reserved_host_memory_mib": -1}, "rm_reserved_host_memory_mib must be a number >= 0, got -1"),
    ({"rm_reserved_host_memory_mib": True}, "rm_reserved_host_memory_mib must be a number >= 0, got True"),
    ({"rm_cpu_overcommit_ratio": "abc"}, "rm_cpu_overcommit_ratio must be a number > 0, got 'abc'"),
    ({"rm_memory_overcommit_ratio": 0}, "rm_memory_overcommit_ratio must be a number > 0, got 0"),
    ({"rm_cpu_overcommit_ratio": "nan"}, "rm_cpu_overcommit_ratio must be a number > 0, got 'nan'"),
    ({"rm_host_capacity": {"memory": 1}}, "rm_host_capacity: unknown key(s) memory (allowed: cpus, memory_mib)"),
    ({"rm_host_capacity": {"cpus": -2}}, "rm_host_capacity.cpus must be a number >= 0, got -2"),
    ({"rm_host_capacity": "8"}, "rm_host_capacity must be a mapping with cpus and/or memory_mib, got '8'"),
    ({"rm_host_tags": 7}, "rm_host_tags must be a list or a comma-separated string of tags, got 7"),
    ({"rm_host_tags": ["ssd", ""]}, "rm_host_tags: a tag must be a non-empty string without a comma, got ''"),
    ({"rm_host_enabled": "maybe"}, "rm_host_enabled must be true or false, got 'maybe'"),
    ({"rm_libvirt_uri": "qemu:///system extra"}, "rm_libvirt_uri must be a libvirt URI"),
    ({"rm_migration_uri": "hv2"}, "rm_migration_uri must be a libvirt URI"),
    ({"rm_migration_uri": "qemu+tcp://{{ ansible_host }}/system"},
     "rm_migration_uri holds a template that cannot be resolved for this host, got 'qemu+tcp://{{ ansible_host }}/system'"),
    # A host part that is not a host: libvirt would read what follows "?" as its own parameters.
    ({"rm_migration_uri": "qemu+tcp://hv2?netcat=x/system"},
     "rm_migration_uri must name its host as [user@]host[:port] (a host name or an IP address), got 'qemu+tcp://hv2?"),
    ({"rm_migration_uri": "qemu+ssh://a@b@hv2/system"}, "rm_migration_uri must name its host as [user@]host[:port]"),
    ({"rm_migration_uri": "qemu+tcp://hv2"}, "rm_migration_uri has no path after its host (qemu+ssh://HOST/system)"),
    ({"rm_migration_uri": "qemu+tcp://[hv2?x]/system"}, "rm_migration_uri must name its host as [user@]host[:port]"),
    ({"ansible_host": "hv2?netcat=x"}, "ansible_host must be a host name or an IP address to build the default "
     "rm_migration_uri (qemu+ssh://ADDRESS/system), got 'hv2?netcat=x'; fix it or set rm_migration_uri for this host"),
    ({"ansible_host": "root@hv2"}, "ansible_host must be a host name or an IP address"),
    ({"ansible_host": "hv 2"}, "ansible_host must be a host name or an IP address"),
    ({"rm_executor": "cron"}, "unknown rm_executor 'cron' (expected service or agent)"),
    ({"rm_hooks_dir": "hooks"}, "rm_hooks_dir must be an absolute path, got 'hooks'"),
    ({"rm_state_dir": "/var/lib/x\n"}, "rm_state_dir must be an absolute path"),
    ({"rm_shared_storage_paths": "/srv"}, "rm_shared_storage_paths must be a list of absolute paths, got '/srv'"),
    ({"rm_shared_storage_paths": ["/srv", "nfs"]}, "rm_shared_storage_paths[1] must be an absolute path, got 'nfs'"),
    ({"rm_cluster_enabled": "sometimes"}, "rm_cluster_enabled must be true or false, got 'sometimes'"),
])
def test_a_variable_of_the_wrong_type_or_range_is_named(variables: Dict[str, Any], complaint: str) -> None:
    with pytest.raises(HostSettingsError) as raised:
        host_settings("hv1", variables)
    assert str(raised.value).startswith("host hv1: ") and complaint in str(raised.value)


def test_every_problem_of_a_host_is_named_at_once() -> None:
    with pytest.raises(HostSettingsError) as raised:
        host_settings("hv1", {"rm_cpu_overcommit_ratio": "abc", "rm_reserved_host_memory_mib": -5})
    assert "rm_cpu_overcommit_ratio" in str(raised.value) and "rm_reserved_host_memory_mib" in str(raised.value)
