"""The role's inputs have one default each: argument_specs, defaults/main.yml and the per-host checks agree."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict

import yaml

from ansible_collections.kvmops.rolling.plugins.plugin_utils._host_settings import HOST_VARIABLES, HostSettings

ROLE = Path(__file__).resolve().parents[3] / "roles" / "rolling_maintenance"


def load(relative: str) -> Dict[str, Any]:
    with open(ROLE / relative) as handle:
        return yaml.safe_load(handle)


SPEC_OPTIONS: Dict[str, Dict[str, Any]] = load("meta/argument_specs.yml")["argument_specs"]["scope"]["options"]
DEFAULTS = load("defaults/main.yml")


def test_every_default_of_the_argument_specs_is_the_roles_default() -> None:
    # A play keyword (rm_strategy) is templated before the role's defaults exist: its default is the playbook's.
    playbook = (ROLE.parents[1] / "playbooks" / "rolling_maintenance.yml").read_text()
    disagreeing = {name: (option["default"], DEFAULTS.get(name, "(none)")) for name, option in SPEC_OPTIONS.items()
                   if "default" in option and DEFAULTS.get(name, option["default"]) != option["default"]}
    assert disagreeing == {}
    in_playbook = {name: option["default"] for name, option in SPEC_OPTIONS.items()
                   if "default" in option and name not in DEFAULTS}
    assert {name: "%s | default('%s')" % (name, value) in playbook for name, value in in_playbook.items()} == \
        dict.fromkeys(in_playbook, True)


def test_every_role_default_is_declared_in_the_argument_specs_or_checked_per_host() -> None:
    per_host = {variable for variable, _check in HOST_VARIABLES.values()}
    undeclared = [name for name in DEFAULTS if name not in SPEC_OPTIONS and name not in per_host]
    assert undeclared == []


def test_a_per_host_default_of_the_role_is_the_one_its_check_assumes_when_unset() -> None:
    assumed = {variable: getattr(HostSettings(), attribute) for attribute, (variable, _check) in HOST_VARIABLES.items()}
    disagreeing = {}
    for name, value in DEFAULTS.items():
        if name in assumed:
            checked = dataclasses.replace(HostSettings(), **{attribute: check(name, value)
                                                             for attribute, (variable, check) in HOST_VARIABLES.items()
                                                             if variable == name})
            if checked != HostSettings():
                disagreeing[name] = (value, assumed[name])
    assert disagreeing == {}
