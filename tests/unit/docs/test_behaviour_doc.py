"""docs/behaviour.md: its report example is the report's own format, and its play output is what the report
prints for that JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

from ansible_collections.kvmops.rolling.plugins.module_utils._record import STAGE_SUMMARY_KEYS
from ansible_collections.kvmops.rolling.plugins.plugin_utils._report import build_report, report_lines

DOC = (Path(__file__).resolve().parents[3] / "docs" / "behaviour.md").read_text()
EXAMPLE: Dict[str, Any] = json.loads(re.search(r"```json\n(.*?)```", DOC, re.S).group(1))  # type: ignore[union-attr]
OUTPUT = re.search(r"```text\n(.*?)```", DOC, re.S).group(1).splitlines()  # type: ignore[union-attr]
RUN = {"run_id": "r1", "kind": "rm_clusters", "names": ["c1"], "hosts": ["hv1"]}


def test_the_example_has_every_field_of_a_report_and_no_other() -> None:
    real = build_report(RUN, [{"host": "hv1", "cluster": "c1", "status": "updated", "stages": {}}], {}, {})
    assert sorted(EXAMPLE) == sorted(real)


def test_the_example_hosts_and_stages_have_the_reports_fields() -> None:
    entries = EXAMPLE["hosts_updated"] + EXAMPLE["hosts_skipped"] + EXAMPLE["hosts_failed"]
    for entry in entries:
        assert {"host", "cluster", "start", "end", "stages"} <= set(entry), entry
        for stage in entry["stages"].values():
            assert set(stage) <= set(STAGE_SUMMARY_KEYS), stage
    assert all({"stage", "reason"} <= set(entry) for entry in EXAMPLE["hosts_skipped"] + EXAMPLE["hosts_failed"])
    [full] = EXAMPLE["hosts_updated"][0]["stages"].values()
    assert sorted(full) == sorted(STAGE_SUMMARY_KEYS)  # one stage shown with all its keys


def test_the_play_output_shown_is_the_one_of_the_example() -> None:
    assert OUTPUT[:-1] == report_lines(EXAMPLE)
    assert OUTPUT[-1].startswith("JSON report: ")
