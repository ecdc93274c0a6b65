"""Every module says what it supports (attributes: check_mode, diff_mode, platform), where to read on (seealso),
and what every dict it returns contains (or, for one keyed by names, what its keys and values are)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import yaml

PLUGINS = Path(__file__).resolve().parents[4] / "plugins"
MODULES = sorted((PLUGINS / "modules").glob("*.py"))
FRAGMENTS = PLUGINS / "doc_fragments" / "rolling.py"


def doc_string(path: Path, name: str) -> Dict[str, Any]:
    for node in ast.walk(ast.parse(path.read_text())):  # module level, or a fragment class's body
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == name for target in node.targets):
            return yaml.safe_load(ast.literal_eval(node.value)) or {}
    raise AssertionError("%s has no %s" % (path.name, name))


def attributes_of(documentation: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The module's attributes as ansible-doc shows them: those of the collection's fragments it extends, in
    order, then its own, each key merged (ansible.builtin's fragments only add descriptions)."""
    merged: Dict[str, Dict[str, Any]] = {}
    sources = [doc_string(FRAGMENTS, name.split(".")[3].upper() if name.count(".") == 3 else "DOCUMENTATION")
               for name in documentation.get("extends_documentation_fragment", [])
               if name.split(".")[:3] == ["kvmops", "rolling", "rolling"]]
    for source in sources + [documentation]:
        for key, value in (source.get("attributes") or {}).items():
            merged.setdefault(key, {}).update(value)
    return merged


def keyed_by_names(value: Dict[str, Any]) -> bool:
    """A dict keyed by host, cluster or stage names says what its keys and values are in its description (a key
    like <host> under contains is refused by ansible-test: it cannot be reached with dot notation)."""
    description = value.get("description")
    lines = description if isinstance(description, list) else [description]
    return any(str(line).startswith("Each key is ") for line in lines)


def same_as_elsewhere(value: Dict[str, Any]) -> bool:
    """A dict of the same keys as another module's return value points to it (RV(kvmops.rolling.MODULE#module:KEY))
    rather than saying it all again."""
    description = value.get("description")
    lines = description if isinstance(description, list) else [description]
    return any("are those of RV(kvmops.rolling." in str(line) for line in lines)


def dicts_without_contains(returned: Dict[str, Any], where: str = "") -> Iterator[str]:
    for key, value in returned.items():
        if value.get("type") == "dict" and "contains" not in value and not keyed_by_names(value) \
                and not same_as_elsewhere(value):
            yield where + key
        if "contains" in value:
            yield from dicts_without_contains(value["contains"], where + key + ".")


@pytest.mark.parametrize("path", MODULES, ids=[path.stem for path in MODULES])
def test_a_module_documents_its_attributes_seealso_and_every_dict_it_returns(path: Path) -> None:
    documentation = doc_string(path, "DOCUMENTATION")
    attributes = attributes_of(documentation)
    assert {"check_mode", "diff_mode", "platform"} <= set(attributes), sorted(attributes)
    assert attributes["check_mode"]["support"] in ("full", "partial", "none") and attributes["platform"]["platforms"]
    if (PLUGINS / "action" / path.name).exists():  # driven by an action plugin of the same name
        assert attributes["action"]["support"] == "full", attributes
    assert "ansible.builtin.action_common_attributes" in documentation.get("extends_documentation_fragment", [])
    assert documentation.get("seealso"), "no seealso"
    missing: List[str] = list(dicts_without_contains(doc_string(path, "RETURN")))
    assert missing == [], missing
