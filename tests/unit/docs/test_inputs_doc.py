"""docs/inputs.md lists every input of the run with its type, default and meaning, as meta/argument_specs.yml
defines them. To write it again after a change of the argument specs:
.venv/bin/python tests/unit/docs/test_inputs_doc.py"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Dict, List

import yaml

TOP = Path(__file__).resolve().parents[3]
SPECS = TOP / "roles" / "rolling_maintenance" / "meta" / "argument_specs.yml"
DOC = TOP / "docs" / "inputs.md"
# Ansible's documentation markup: C(code), O(option), V(value), I(italic), M(module), P(plugin), U(url), L(text,url).
MARKUP = re.compile(r"\b([COVIMPU])\(([^()]*)\)")
LINK = re.compile(r"\bL\(([^,()]*),\s*([^()]*)\)")

HEADER = """# Inputs

Every input of a rolling maintenance run, as `roles/rolling_maintenance/meta/argument_specs.yml` defines it (this
file is written from it, and a test keeps the two the same). Each works as an extra var (`-e name=value`), in a
vars file and as an AWX survey answer. Ansible checks the types when the run starts; `kvmops.rolling.rolling_scope`
then checks what types cannot say (exactly one scope, names that exist, a stage timeout not below the ping interval)
before any host is touched, and a refused input is reported with the reason.

The variables each host may carry (`rm_hooks_dir`, `rm_executor`, `rm_libvirt_uri`, `rm_zone`, `rm_pod`,
`rm_cluster`, `rm_host_tags`, capacity and overcommit settings) are in `docs/real-hosts.md` and
`docs/placement-metadata.md`; they are checked per host before any host is touched, too.

| input | type | default | meaning |
|---|---|---|---|
"""


def plain(text: str) -> str:
    text = LINK.sub(lambda match: "%s (%s)" % (match.group(1), match.group(2)), text)
    text = MARKUP.sub(lambda match: match.group(2) if match.group(1) in "IU" else "`%s`" % match.group(2), text)
    return " ".join(text.split()).replace("|", "\\|")


def type_words(option: Dict[str, Any]) -> str:
    kind = option.get("type", "str")
    return "list of %s" % option["elements"] if kind == "list" and "elements" in option else kind


def default_words(option: Dict[str, Any]) -> str:
    if "default" not in option:
        return "(none)"
    value = option["default"]
    if value in ("", [], {}):
        return "`%s`" % ('""' if value == "" else "[]" if value == [] else "{}")
    if isinstance(value, bool):
        return "`%s`" % str(value).lower()
    return "`%s`" % (value,)


def rendered() -> str:
    options: Dict[str, Dict[str, Any]] = yaml.safe_load(SPECS.read_text())["argument_specs"]["scope"]["options"]
    rows: List[str] = []
    for name, option in options.items():
        description = option.get("description", "")
        text = " ".join(description) if isinstance(description, list) else str(description)
        if "choices" in option:
            text += " One of: %s." % ", ".join("`%s`" % choice for choice in option["choices"])
        rows.append("| `%s` | %s | %s | %s |" % (name, type_words(option), default_words(option), plain(text)))
    return HEADER + "\n".join(rows) + "\n"


def test_docs_inputs_lists_every_input_of_the_argument_specs() -> None:
    assert DOC.read_text() == rendered(), "docs/inputs.md is out of date: run %s" % Path(__file__).relative_to(TOP)


if __name__ == "__main__":
    DOC.write_text(rendered())
    sys.stdout.write("wrote %s\n" % DOC)
