# -*- coding: utf-8 -*-
# Copyright: kvmops.rolling engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rolling maintenance report: what was done to every host, built from the run's records. Pure."""

from __future__ import annotations

from typing import Any, Collection, Dict, List, Mapping, Sequence

SUMMARY_STAGES = ("PreFlight", "PreMaintenance", "Maintenance", "PostMaintenance")


def build_report(run: Mapping[str, Any], records: Sequence[Mapping[str, Any]], plan: Mapping[str, Any],
                 state: Mapping[str, Any]) -> Dict[str, Any]:
    """The report of the run.

    ``run``: the resolved scope (run_id, hosts, ...); ``records``: each host's record (host, cluster,
    status, stage, reason, start, end, stages, evacuation), in the order of the run; ``plan``: what
    capacity_plan returned; ``state``: aborted, abort_reason, forced, check_mode, started, ended,
    cancel_failures (hosts that could not leave maintenance), clusters_left_disabled, enable_failures,
    unexpected_errors (tasks that failed where nothing may: the run aborted there),
    resumed_from (the interrupted run this one took up), found (what earlier runs left, and what was done),
    maintenance_scripts (host -> found, hooks_dir, for the hosts whose scripts were looked up).
    """
    updated: List[Dict[str, Any]] = []
    planned: List[Dict[str, Any]] = []  # check mode: every step would run, none did
    skipped: List[Dict[str, Any]] = []
    failed: List[Dict[str, Any]] = []
    for record in records:
        entry = {"host": record["host"], "cluster": record.get("cluster", ""), "start": record.get("start", ""),
                 "end": record.get("end", ""), "stages": dict(record.get("stages") or {})}
        if record.get("evacuation"):
            entry["evacuation"] = record["evacuation"]
        status = record.get("status")
        if status == "updated":
            updated.append(entry)
        elif status == "planned":
            planned.append(entry)
        elif status == "failed":
            failed.append(dict(entry, stage=record.get("stage", ""), reason=record.get("reason", "")))
        elif status == "skipped":
            skipped.append(dict(entry, stage=record.get("stage", ""), reason=record.get("reason", "")))
        else:  # never reached: the run stopped before this host
            skipped.append(dict(entry, stage="not started", reason="the run was aborted before this host: %s"
                                % (state.get("abort_reason") or "unknown reason")))
    leftovers = ["guest %s runs on two hosts, left untouched on both: keep one, destroy the other" % guest
                 for guest in guests_on_two_hosts(records)]
    leftovers += list(state.get("unexpected_errors") or ())
    leftovers += ["host %s could not leave maintenance" % item for item in state.get("cancel_failures") or ()]
    leftovers += ["cluster %s is still disabled by this run" % item for item in state.get("clusters_left_disabled") or ()]
    leftovers += ["enabling cluster %s" % item for item in state.get("enable_failures") or ()]
    aborted = bool(state.get("aborted"))
    success = not aborted and not failed and not leftovers
    details = _details(run, aborted, state, updated, planned, skipped, failed)
    missing = missing_maintenance_scripts(state.get("maintenance_scripts") or {})
    if missing:
        details = "%s; %s" % (missing, details)
    return {
        "success": success,
        "details": details,
        "attention": leftovers,
        "run_id": run.get("run_id", ""),
        "scope": {"kind": run.get("kind", ""), "names": list(run.get("names") or [])},
        "forced": bool(state.get("forced")),
        "check_mode": bool(state.get("check_mode")),
        "started": state.get("started", ""),
        "ended": state.get("ended", ""),
        "resumed_from": state.get("resumed_from") or "",
        "found": list(state.get("found") or ()),
        "plan": {"clusters": list(plan.get("clusters") or []), "lines": list(plan.get("lines") or []),
                 "problems": dict(plan.get("problems") or {}), "skips": dict(plan.get("skips") or {})},
        "hosts_updated": updated,
        "hosts_planned": planned,
        "hosts_skipped": skipped,
        "hosts_failed": failed,
    }


def guests_on_two_hosts(records: Sequence[Mapping[str, Any]]) -> List[str]:
    """The guests an evacuation left running on its host and on its target: they head the report."""
    return [guest for record in records for guest in (record.get("evacuation") or {}).get("on_both") or ()]


def standing_cancel_failures(failures: Sequence[str], left_on_retry: Collection[str]) -> List[str]:
    """The failures to leave maintenance ("HOST (why)") that still stand: the finish retries leaving, and a host
    it took out of maintenance has nothing left to report."""
    return [failure for failure in failures if failure.split(" (", 1)[0] not in left_on_retry]


def missing_maintenance_scripts(scripts: Mapping[str, Mapping[str, Any]]) -> str:
    """SPEC: a run in which no host in scope has a Maintenance script (most often a mistyped rm_hooks_dir)
    says so first, naming where it looked; empty when some host has one."""
    if not scripts or any(item.get("found") for item in scripts.values()):
        return ""
    where = ", ".join(sorted({str(item.get("hooks_dir") or "?") for item in scripts.values()}))
    return "no host in scope has a Maintenance script (looked in %s): nothing was maintained; is rm_hooks_dir " \
           "right?" % where


def _details(run: Mapping[str, Any], aborted: bool, state: Mapping[str, Any], updated: Sequence[Any],
             planned: Sequence[Any], skipped: Sequence[Any], failed: Sequence[Any]) -> str:
    done = "%d planned" % len(planned) if state.get("check_mode") else "%d updated" % len(updated)
    counts = "%s, %d skipped, %d failed of %d host(s)" % (done, len(skipped), len(failed), len(run.get("hosts") or ()))
    if state.get("check_mode"):
        counts += " (check mode: no script ran, nothing was migrated or disabled)"
    if aborted:
        return "aborted: %s; %s" % (state.get("abort_reason") or "unknown reason", counts)
    return counts


def report_lines(report: Mapping[str, Any]) -> List[str]:
    """The report as the play output shows it; the first line says whether anything was left behind."""
    lines = []
    if report["attention"]:
        lines.append("ATTENTION: %s" % "; ".join(report["attention"]))
    lines.append("Rolling maintenance %s: %s - %s" % (
        report["run_id"], "SUCCESS" if report["success"] else "FAILED", report["details"]))
    lines.extend("  found    %s" % line for line in report.get("found") or ())
    for entry in report["hosts_updated"]:
        lines.append("  updated  %s/%s  %s  %s" % (
            entry["cluster"], entry["host"], _evacuation_words(entry), _stage_words(entry["stages"])))
    for entry in report.get("hosts_planned") or ():
        lines.append("  planned  %s/%s  %s" % (entry["cluster"], entry["host"], _stage_words(entry["stages"])))
    for entry in report["hosts_skipped"]:
        lines.append("  skipped  %s/%s  at %s: %s" % (entry["cluster"], entry["host"], entry["stage"], entry["reason"]))
    for entry in report["hosts_failed"]:
        lines.append("  FAILED   %s/%s  at %s: %s%s" % (
            entry["cluster"], entry["host"], entry["stage"], entry["reason"], _last_words(entry)))
    return lines


# Enough of a failed script's last line to say why, on the host's line of the report.
LAST_WORDS_CHARACTERS = 200


def _last_words(entry: Mapping[str, Any]) -> str:
    """What the failed stage's script said last: its last line on stderr, else on stdout ('' when silent)."""
    stage = (entry.get("stages") or {}).get(entry.get("stage")) or {}
    for tail in (stage.get("stderr_tail"), stage.get("stdout_tail")):
        said = [line.strip() for line in str(tail or "").splitlines() if line.strip()]
        if said:
            last = said[-1]
            if len(last) > LAST_WORDS_CHARACTERS:
                last = last[:LAST_WORDS_CHARACTERS] + "..."
            return "; it said: %s" % last
    return ""


def _stage_words(stages: Mapping[str, Mapping[str, Any]]) -> str:
    words = []
    for stage in SUMMARY_STAGES:
        if stage in stages:
            item = stages[stage]
            duration = item.get("duration")
            words.append("%s %s%s" % (stage, item.get("status"), " %.1fs" % duration if duration else ""))
    return ", ".join(words)


def _evacuation_words(entry: Mapping[str, Any]) -> str:
    evacuation = entry.get("evacuation") or {}
    moves = [move for move in evacuation.get("moves") or () if move.get("status") == "moved"]
    if not evacuation:
        return ""
    return "[%d guest(s) moved%s]" % (len(moves), ": " + ", ".join("%s->%s" % (m["vm"], m["target"]) for m in moves)
                                      if moves else "")
