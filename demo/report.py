"""Turn a simulated month into a readable report: per cluster, the timeline, the metrics, the files."""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from snapshot_scheduler.cli import age_text
from snapshot_scheduler.dr import TargetPlan
from snapshot_scheduler.planning import ClusterPlan, Kept
from snapshot_scheduler.policy import Policy
from snapshot_scheduler.schedule import current_slot

from demo import scenario
from demo.simulate import Results, parse_lines

WIDTH = 100
LIST_KEPT_UP_TO = 8
CELL = 3  # characters per day in the terminal timeline  # more kept snapshots than this are grouped by reason

# The run-metric alarms of infra/monitoring.py (alarm, metric, breached when; one run per period): what
# would have paged. The heartbeat alarm is checked separately.
ALARMS: tuple[tuple[str, str, str], ...] = (
    ("ClustersOutOfPolicy", "ClustersOutOfPolicy", "> 0"),
    ("ClustersNewlyOutOfPolicy", "ClustersNewlyOutOfPolicy", "> 0"),
    ("SlotsMissed", "SlotsMissed", "> 0"),
    ("SnapshotsFailed", "SnapshotsFailed", "> 0"),
    ("PolicyErrors", "PolicyErrors", "> 0"),
    ("ManualSnapshotQuota", "ManualSnapshotQuotaUtilization", ">= 80"),
    ("DeletionsPending", "DeletionsPending", "> 0"),
    ("MassDeletion", "MassDeletions", "> 0"),
    ("DrRecoveryPointBreached", "DrTargetsOutOfPolicy", "> 0"),
    ("DrCopiesFailed", "DrCopiesFailed", "> 0"),
    ("DrCopyStuck", "DrCopiesStuck", "> 0"),
    ("DrManualSnapshotQuota", "DrQuotaUtilization", ">= 80"),
)
GAUGES = frozenset(
    {
        "ManualSnapshotQuotaUsed",
        "ManualSnapshotQuotaMax",
        "ManualSnapshotQuotaUtilization",
        "ClustersManaged",
        "ClustersOutOfPolicy",
        "OldestRecoveryPointAge",
        "RunDuration",
        "DeletionsPending",
        "DrCopiesStuck",
        "DrTargetsOutOfPolicy",
        "DrOldestRecoveryPointAge",
        "DrQuotaUtilization",
    }
)


@dataclass
class ClusterTally:
    taken: int = 0
    deleted: int = 0
    deferred: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)
    busy_retries: int = 0
    created_times: list[datetime] = field(default_factory=list)


@dataclass
class CopyLife:
    """One copy of ours in a DR region, as the runs reported it: started, and deleted by DR retention."""

    id: str
    started: datetime | None
    deleted: datetime | None = None


@dataclass
class TargetTally:
    """One cluster's copies in one DR region over the month, from the run reports' `dr` sections."""

    cluster: str
    target: str | None
    region: str
    copies: dict[str, CopyLife] = field(default_factory=dict)
    deferred: list[tuple[datetime, str, str]] = field(default_factory=list)  # (run, code, reason)
    skipped: list[tuple[datetime, str, str]] = field(default_factory=list)
    failed: list[tuple[datetime, str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.cluster} -> {self.target or self.region}"


@dataclass
class MetricSeries:
    unit: str
    values: list[float] = field(default_factory=list)


def tally(results: Results, logs: Sequence[Mapping[str, Any]]) -> dict[str, ClusterTally]:
    clusters: dict[str, ClusterTally] = defaultdict(ClusterTally)
    for run in results.runs:
        at = datetime.fromisoformat(run["scheduled_time"])
        for entry in run["created"]:
            clusters[entry["cluster"]].taken += 1
            clusters[entry["cluster"]].created_times.append(at)
        for entry in run["deleted"]:
            clusters[entry["cluster"]].deleted += 1
        for entry in run["deferred"]:
            clusters[entry["cluster"]].deferred[entry["code"]] += 1
        for entry in run["skipped"]:
            clusters[entry["cluster"]].skipped[entry["code"]] += 1
        for entry in run["failed"]:
            clusters[entry["cluster"]].failed.append(f"{at:%m-%d %H:%M} {entry['error']}: {entry['message']}")
    for record in logs:
        if str(record.get("message", "")).startswith("cluster busy again") and record.get("cluster"):
            clusters[str(record["cluster"])].busy_retries += 1
    return clusters


def dr_tally(results: Results) -> dict[tuple[str, str], TargetTally]:
    """(cluster, region) -> what the runs did about its copies there, in the order first met."""
    targets: dict[tuple[str, str], TargetTally] = {}

    def of(entry: Mapping[str, str]) -> TargetTally:
        key = (entry["cluster"], entry["region"])
        return targets.setdefault(key, TargetTally(entry["cluster"], entry.get("target"), entry["region"]))

    for run in results.runs:
        at = datetime.fromisoformat(run["scheduled_time"])
        dr = run.get("dr") or {}
        for entry in dr.get("started", ()):
            of(entry).copies[entry["snapshot"]] = CopyLife(entry["snapshot"], at)
        for entry in dr.get("deleted", ()):
            of(entry).copies.setdefault(entry["snapshot"], CopyLife(entry["snapshot"], None)).deleted = at
        for kind in ("deferred", "skipped"):
            for entry in dr.get(kind, ()):
                getattr(of(entry), kind).append((at, entry["code"], entry["reason"]))
        for entry in dr.get("failed", ()):
            of(entry).failed.append((at, entry["error"], entry["message"]))
    return targets


def metric_series(blobs: Iterable[Mapping[str, Any]]) -> tuple[str, dict[str, str], dict[str, MetricSeries]]:
    """(namespace, dimensions, name -> series) from the EMF blobs, one blob per run."""
    namespace, dimensions = "", {}
    series: dict[str, MetricSeries] = {}
    for blob in blobs:
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            namespace = directive["Namespace"]
            dimensions = {name: str(blob.get(name)) for group in directive["Dimensions"] for name in group}
            for metric in directive["Metrics"]:
                name = metric["Name"]
                value = blob.get(name, 0)
                values: list[Any] = value if isinstance(value, list) else [value]
                target = series.setdefault(name, MetricSeries(metric.get("Unit", "")))
                target.values.append(float(sum(float(v) for v in values)))
    return namespace, dimensions, series


# ---------------------------------------------------------------------------------------------------------


def render(results: Results) -> str:
    blobs, logs = parse_lines(results.stdout)
    clusters = tally(results, logs)
    plans = {plan.cluster_id: plan for plan in (results.plan.clusters if results.plan else ())}
    sections = [
        _header(results),
        _events(results),
        _clusters(results, clusters, plans),
        _dr(results),
        _timeline(results, plans),
        _dr_timeline(results),
        _vault(results),
        _metrics(results, blobs),
        _status(results),
    ]
    return "\n\n".join(section for section in sections if section)


def rule(title: str) -> str:
    return f"== {title} " + "=" * max(0, WIDTH - len(title) - 4)


def _header(results: Results) -> str:
    runs = len(results.runs)
    return "\n".join(
        [
            rule("snapshot-scheduler demo"),
            f"The real Lambda handler (snapshot_scheduler.handlers.backup.lambda_handler), invoked {runs} times:",
            f"once an hour from {_when(results.start)} to {_when(results.end)}, as EventBridge Scheduler would,",
            f"against moto_server at {results.endpoint} behind the fidelity layer (tests/support): real paging,",
            f"a manual snapshot quota of {scenario.QUOTA}, busy clusters, snapshots 'creating' for "
            f"{age_text(scenario.SNAPSHOT_CREATING_FOR)}, the RDS rate limit",
            f"and {scenario.THROTTLE_PROBABILITY:.0%} random throttling, on a simulated clock. DR copies go to "
            f"{', '.join(t['region'] for t in scenario.REGION_TARGETS.values())}, each region its own layer.",
            f"Deployment marker '{scenario.DEPLOYMENT}'. Took {results.seconds:.1f}s of real time.",
        ]
    )


def _events(results: Results) -> str:
    if not results.events:
        return ""
    lines = [rule("What happened during the month (besides the schedule)")]
    lines += [f"  {_when(at)}  {text}" for at, text in sorted(results.events)]
    return "\n".join(lines)


def _clusters(results: Results, clusters: Mapping[str, ClusterTally], plans: Mapping[str, ClusterPlan]) -> str:
    lines = [rule("Clusters")]
    for sample in scenario.FLEET:
        counts = clusters.get(sample.id, ClusterTally())
        plan = plans.get(sample.id)
        tag = f'{scenario.TAG_KEY}="{sample.policy}"' if sample.policy is not None else "no policy tag"
        lines.append("")
        lines.append(f"{sample.id}  ({sample.engine}, {tag})")
        lines.append(f"  {sample.story}")
        rows: list[tuple[str, str]] = []
        if plan is not None and plan.policy is not None:
            name = f"{plan.policy.name} = {plan.policy.spec()}: " if plan.policy.name else ""
            rows.append(("policy", name + plan.policy.describe()))
        elif sample.policy is None:
            rows.append(("policy", "none: not managed, never touched"))
        if counts.skipped:
            reason = _first_reason(results, sample.id, "skipped")
            rows.append(("skipped", f"{_counts(counts.skipped)} runs: {reason}"))
        kept = list(plan.kept) if plan is not None else []
        if plan is not None and plan.policy is not None:
            slots = _slots(plan.policy, results)
            missed = ""
            if slots > counts.taken:
                missed = f" ({slots - counts.taken} missed: still deferred when their slot ended)"
            rows.append(
                (
                    "snapshots",
                    f"{counts.taken} taken for {slots} slots{missed}, {counts.deleted} deleted, {len(kept)} kept now",
                )
            )
        rows += [("kept", line) for line in _kept_lines(kept)]
        if counts.deferred:
            retried = "each retried by the next run while its slot lasted"
            rows.append(("deferred", f"{_counts(counts.deferred)} ({retried})"))
        if counts.busy_retries:
            rows.append(("retries", f"{counts.busy_retries} busy-cluster retries inside runs"))
        if counts.failed:
            rows += [("error", text) for text in counts.failed[:5]]
        elif sample.policy is not None:
            rows.append(("errors", "none"))
        width = max(len(key) for key, _ in rows) if rows else 0
        lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    untouched = _untouched(results)
    if untouched:
        lines += ["", untouched]
    return "\n".join(lines)


def _first_reason(results: Results, cluster: str, kind: str) -> str:
    for run in results.runs:
        for entry in run[kind]:
            if entry["cluster"] == cluster:
                return str(entry["reason"])
    return ""


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {code}" for code, n in counter.most_common())


def _kept_lines(kept: Sequence[Kept]) -> list[str]:
    newest_first = sorted(kept, key=lambda k: k.snapshot.time or datetime.min.replace(tzinfo=UTC), reverse=True)
    if len(newest_first) <= LIST_KEPT_UP_TO:
        return [f"{k.snapshot.id}  {', '.join(k.reasons)}" for k in newest_first]
    groups: dict[tuple[str, ...], list[Kept]] = defaultdict(list)
    for k in newest_first:
        groups[k.reasons].append(k)
    lines = []
    for reasons, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        times = [m.snapshot.time for m in members if m.snapshot.time is not None]
        span = f"{_short(min(times))} .. {_short(max(times))}" if len(times) > 1 else _short(times[0]) if times else ""
        noun = "snapshot" if len(members) == 1 else "snapshots"
        lines.append(f"{len(members):3d} {noun} ({span}): {', '.join(reasons)}")
    return lines


def _untouched(results: Results) -> str:
    """Snapshots the service must never touch: others' manual ones and automated ones."""
    before, after = results.foreign_before, results.foreign_after
    automated = sum(1 for ident in before if ident.startswith("rds:"))
    kept = len(before & after)
    verdict = "all still there" if kept == len(before) else f"ONLY {kept} LEFT: {sorted(before - after)}"
    return (
        f"Snapshots that are not this deployment's ({len(before) - automated} hand-made of scratch, "
        f"{automated} automated): {verdict}."
    )


def _slots(policy: Policy, results: Results) -> int:
    """How many slots the policy had over the month's runs (each run's current slot, counted once)."""
    return len({current_slot(policy, datetime.fromisoformat(run["scheduled_time"])) for run in results.runs})


# ---- DR copies --------------------------------------------------------------------------------------------


def _dr_targets_text() -> str:
    parts = []
    for name, target in scenario.REGION_TARGETS.items():
        key = f" with kmsKey {target['kmsKey']}" if "kmsKey" in target else " (no kmsKey)"
        parts.append(f"{name} = {target['region']}{key}")
    return "; ".join(parts)


def _dr_plans(results: Results) -> dict[tuple[str, str], TargetPlan]:
    return {(t.cluster_id, t.region): t for t in (results.dr_plan.targets if results.dr_plan else ())}


def _dr(results: Results) -> str:
    tallies, plans = dr_tally(results), _dr_plans(results)
    samples = {sample.id: sample for sample in scenario.FLEET}
    lines = [
        rule("DR copies to other regions"),
        f"Targets ({scenario.DR_TAG_KEY} tags name them): {_dr_targets_text()}. Each region is its own fidelity",
        "layer on the same moto_server and clock (its own quota, rate limit and pages, at most 5 copies in flight,",
        f"KMS keys checked); a copy stays 'copying' for {age_text(scenario.DR_COPYING_FOR)}. Runs copy after "
        "their own snapshots.",
    ]
    for (cluster, region), tally_ in sorted(tallies.items()):
        sample, plan = samples.get(cluster), plans.get((cluster, region))
        tag = f'  {scenario.DR_TAG_KEY}="{sample.dr}"' if sample is not None and sample.dr else ""
        lines += ["", f"{tally_.name} ({region}){tag}"]
        rows: list[tuple[str, str]] = []
        if plan is not None and plan.policy is not None:
            rows.append(("policy", plan.policy.describe()))
        rows.append(("copies", _copy_counts(tally_, plan)))
        for kind, entries in (("deferred", tally_.deferred), ("skipped", tally_.skipped), ("failed", tally_.failed)):
            rows += _dr_outcomes(kind, entries, tally_)
        rows += [("kept", line) for line in _kept_lines(list(plan.kept) if plan is not None else [])]
        width = max(len(key) for key, _ in rows)
        lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    if results.dr_look is not None:
        at, table = results.dr_look
        lines += [
            "",
            f"What `snapshot-scheduler status --at {at:%Y-%m-%dT%H:%MZ}` showed of the copies while the teammate's",
            "copies held one back (`plan` gives the same per copy, with the source and the reasons):",
            "",
            "DR copies (" + table,
        ]
    for region, (made, left) in sorted(results.foreign_copies.items()):
        if made:
            verdict = "all still there" if made == left else f"ONLY {len(left)} LEFT: {sorted(made - left)}"
            lines += ["", f"Copies in {region} that are not this deployment's ({len(made)} of a teammate): {verdict}."]
    return "\n".join(lines)


def _copy_counts(tally_: TargetTally, plan: TargetPlan | None) -> str:
    started = sum(1 for life in tally_.copies.values() if life.started is not None)
    deleted = sum(1 for life in tally_.copies.values() if life.deleted is not None)
    if not started and not deleted:
        return "none started"
    kept = [k.snapshot for k in plan.kept] if plan is not None else []
    available = sum(1 for s in kept if s.status == "available")
    text = f"{started} started, {deleted} deleted by DR retention, {len(kept)} kept now ({available} available"
    return text + (f", {len(kept) - available} copying)" if len(kept) > available else ")")


def _dr_outcomes(kind: str, entries: Sequence[tuple[datetime, str, str]], tally_: TargetTally) -> list[tuple[str, str]]:
    """Per code: how many runs, when (the first few), and the first reason in full."""
    rows = []
    for code in dict.fromkeys(code for _, code, _ in entries):
        runs = [(at, reason) for at, c, reason in entries if c == code]
        when = ", ".join(_short(at) for at, _ in runs[:4]) + (" ..." if len(runs) > 4 else "")
        rows.append((kind, f"{len(runs)} runs {code} ({when}): {runs[0][1]}"))
        if kind == "deferred":
            after = [life for life in tally_.copies.values() if life.started and life.started > runs[0][0]]
            if after:
                first = min(after, key=lambda life: life.started or runs[0][0])
                assert first.started is not None
                rows.append(("", f"then {first.id} started at {_short(first.started)}"))
    return rows


def dr_timeline_rows(results: Results, first: date, days: int) -> list[tuple[str, list[str], str]]:
    """(cluster -> target, a cell per day, note): the copy started that day ('#' available at the end,
    '~' copying at the end, 'x' deleted by DR retention), 'k' a kms skip, '!' a deferral that day."""
    plans = _dr_plans(results)
    rows = []
    for (cluster, region), tally_ in sorted(dr_tally(results).items()):
        cells = [""] * days
        plan = plans.get((cluster, region))
        status = {k.snapshot.id: k.snapshot.status for k in plan.kept} if plan is not None else {}
        for life in tally_.copies.values():
            if life.started is None:
                continue
            mark = "x" if life.deleted is not None else "~" if status.get(life.id) == "copying" else "#"
            cells[(life.started.date() - first).days] = mark
        for at, code, _ in tally_.skipped:
            index = (at.date() - first).days
            cells[index] = cells[index] or ("k" if code == "kms" else "s")
        for at, _, _ in tally_.deferred:
            index = (at.date() - first).days
            cells[index] = cells[index].rstrip("!") + "!"
        rows.append((tally_.name, [cell or "." for cell in cells], f"{len(status)} kept"))
    return rows


def vault_tally(results: Results) -> dict[str, TargetTally]:
    """Source cluster -> what the vault's runs did about its copies (started, deleted by the vault's policy)."""
    clusters: dict[str, TargetTally] = {}
    for run in results.vault_runs:
        at = datetime.fromisoformat(run["scheduled_time"])
        vault = run.get("vault") or {}
        for kind in ("started", "deleted"):
            for entry in vault.get(kind, ()):
                tally_ = clusters.setdefault(
                    entry["cluster"], TargetTally(entry["cluster"], "vault", scenario.VAULT_REGION)
                )
                life = tally_.copies.setdefault(entry["snapshot"], CopyLife(entry["snapshot"], None))
                if kind == "started":
                    life.started = at
                else:
                    life.deleted = at
    return clusters


def _vault(results: Results) -> str:
    if not results.vault_runs:
        return ""
    tallies = vault_tally(results)
    groups = {group.cluster_id: group for group in (results.vault_plan.groups if results.vault_plan else ())}
    shared: Counter[str] = Counter()
    unshared: Counter[str] = Counter()
    for run in results.runs:
        for entry in (run.get("dr") or {}).get("shared", ()):
            shared[entry["cluster"]] += 1
        for entry in (run.get("dr") or {}).get("unshared", ()):
            unshared[entry["cluster"]] += 1
    samples = {sample.id: sample for sample in scenario.FLEET}
    lines = [
        rule("A vault in another account"),
        f"Production's DR target '{scenario.VAULT_TARGET}' names account {scenario.VAULT_ACCOUNT} "
        f"({scenario.VAULT_REGION}, shareHours {scenario.SHARE_HOURS}): each day the newest snapshot of a cluster",
        f"tagged to={scenario.VAULT_TARGET} is shared with that account, and the share taken back after "
        f"{scenario.SHARE_HOURS} hours. The vault deployment '{scenario.VAULT_DEPLOYMENT}' (the same handler with",
        f"SNAPSHOT_VAULT) runs every {age_text(scenario.VAULT_RUN_EVERY)} in that account, behind its own fidelity "
        "layers on the same moto_server and clock,",
        "copies what is shared into its own account and region and keeps the copies by its own policy: "
        f"{scenario.VAULT_POLICY}.",
    ]
    for cluster in sorted(set(tallies) | set(shared)):
        tally_, group, sample = tallies.get(cluster), groups.get(cluster), samples.get(cluster)
        tag = f'  {scenario.DR_TAG_KEY}="{sample.dr}"' if sample is not None and sample.dr else ""
        lines += ["", f"{cluster} (source {scenario.ACCOUNT}/{scenario.REGION}){tag}"]
        lives = list(tally_.copies.values()) if tally_ is not None else []
        deleted = sum(1 for life in lives if life.deleted is not None)
        kept = list(group.kept) if group is not None else []
        rows = [
            (
                "shared",
                f"{shared[cluster]} by production, {unshared[cluster]} taken back after {scenario.SHARE_HOURS}h",
            ),
            ("copies", f"{len(lives)} started, {deleted} deleted by the vault's policy, {len(kept)} held at the end"),
            *(("kept", line) for line in _kept_lines(kept)),
        ]
        width = max(len(key) for key, _ in rows)
        lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    lines += ["", *_wipe_lines(results)]
    return "\n".join(lines)


def _wipe_lines(results: Results) -> list[str]:
    if results.wipe is None:
        return []
    at, deleted = results.wipe
    before, after = results.vault_copies
    runs_after = [run for run in results.vault_runs if datetime.fromisoformat(run["scheduled_time"]) > at]
    lost = sorted(before - after)
    verdict = "all still there" if not lost else f"{len(lost)} GONE: {', '.join(lost)}"
    sources = (runs_after[-1].get("vault") or {}).get("sources", []) if runs_after else []
    silence = [
        f"{source['source']} silent for {age_text(timedelta(seconds=source['silence_seconds']))}"
        for source in sources
        if source.get("silence_seconds") is not None
    ]
    return [
        f"The production wipe, {_when(at)}: someone with administrator rights in the production account deleted",
        "every manual snapshot it could: "
        + ", ".join(f"{n} in {region}" for region, n in sorted(deleted.items()))
        + f". The vault held {len(before)} copies then; after its {len(runs_after)} runs since it holds "
        f"{len(after)}: {verdict}.",
        "Nothing in production can reach them (another account); the vault's policy counts copies, not days, so "
        "a silent source loses none. " + ("; ".join(silence) + " (VaultSourceSilence)." if silence else ""),
    ]


def _dr_timeline(results: Results) -> str:
    first = results.start.date()
    days = (results.end.date() - first).days + 1
    rows = dr_timeline_rows(results, first, days)
    if not rows:
        return ""
    label = max(len(name) for name, _, _ in rows)
    lines = [
        rule("DR timeline: the copies, by the day they were started (UTC)"),
        "One column per day from the month's first: '#' a copy started that day and available at the end,",
        "'~' still copying at the end, 'x' deleted later by DR retention, 'k' skipped (kms), '!' a copy deferred",
        "(copy-limit or quota) that day, '.' nothing.",
        "",
        *_day_header(first, days, " " * (label + 1)),
    ]
    for name, cells, note in rows:
        lines.append(f"{name.ljust(label)} {''.join(f'{cell:>{CELL}}' for cell in cells)}   {note}")
    return "\n".join(lines)


# ---- timeline ---------------------------------------------------------------------------------------------


def chart_start(results: Results, plans: Mapping[str, ClusterPlan]) -> date:
    """The first day with a kept snapshot, or the month's first (the first run catches up the slot before)."""
    times = [k.snapshot.time for plan in plans.values() for k in plan.kept if k.snapshot.time is not None]
    return min([results.start.date(), *(t.astimezone(UTC).date() for t in times)])


def timeline_rows(results: Results, plans: Mapping[str, ClusterPlan]) -> list[tuple[str, list[int], str]]:
    """(cluster, kept snapshots per day, note) for each cluster with a policy tag."""
    first = chart_start(results, plans)
    days = (results.end.date() - first).days + 1
    rows = []
    for sample in scenario.FLEET:
        if sample.policy is None:
            continue
        plan = plans.get(sample.id)
        kept = list(plan.kept) if plan is not None else []
        per_day = [0] * days
        for item in kept:
            if item.snapshot.time is not None:
                per_day[(item.snapshot.time.astimezone(UTC).date() - first).days] += 1
        held = sum(1 for item in kept if item.snapshot.held)
        if plan is None or plan.policy is None:
            note = "skipped every run: its tag is invalid"
        else:
            note = f"{len(kept)} kept" + (f", {held} held" if held else "")
        rows.append((sample.id, per_day, note))
    return rows


def _timeline(results: Results, plans: Mapping[str, ClusterPlan]) -> str:
    rows = timeline_rows(results, plans)
    if not rows:
        return ""
    first = chart_start(results, plans)
    days = len(rows[0][1])
    label = max(len(name) for name, _, _ in rows)
    lines = [
        rule("Timeline: the snapshots kept at the end, by the day they were taken (UTC)"),
        "One column per day (numbers over the columns mark Mondays); each cell counts the cluster's kept",
        f"snapshots from that day, '.' none. The month of runs starts on {results.start:%b %d}: the first run",
        "takes each cluster's latest slot, which can fall a few days earlier.",
        "",
        *_day_header(first, days, " " * (label + 1)),
    ]
    for name, per_day, note in rows:
        cells = "".join(f"{n:>{CELL}}" if n else f"{'.':>{CELL}}" for n in per_day)
        lines.append(f"{name.ljust(label)} {cells}   {note}".rstrip())
    return "\n".join(lines)


def _day_header(first: date, days: int, pad: str) -> list[str]:
    """Two lines over a row of day cells: the month where it starts, and the date of each Monday."""
    months = [" "] * (days * CELL)
    numbers = [" "] * (days * CELL)
    for index in range(days):
        day = first + timedelta(days=index)
        if index == 0 or day.day == 1:
            _put(months, index * CELL, day.strftime("%b"))
        if day.weekday() == 0:
            _put(numbers, index * CELL, f"{day.day:>{CELL}}")
    return [pad + "".join(months).rstrip(), pad + "".join(numbers).rstrip()]


def _put(row: list[str], index: int, text: str) -> None:
    for offset, char in enumerate(text):
        if index + offset < len(row):
            row[index + offset] = char


# ---- metrics ----------------------------------------------------------------------------------------------


def _metrics(results: Results, blobs: Sequence[Mapping[str, Any]]) -> str:
    namespace, dimensions, series = metric_series(blobs)
    dims = " ".join(f"{k}={v}" for k, v in dimensions.items())
    lines = [
        rule("Metrics emitted (EMF, captured from the handler's output)"),
        f"{len(blobs)} EMF blobs, one per run, namespace {namespace}, dimensions {dims}.",
        "Counts: the month's total and the largest in one run. Gauges: the range over the month and the last.",
        "",
    ]
    table = [("METRIC", "UNIT", "TOTAL", "MAX/RUN", "MIN .. MAX", "LAST")]
    for name, data in series.items():
        values = data.values
        if name in GAUGES:
            table.append(
                (
                    name,
                    data.unit,
                    "",
                    "",
                    f"{_num(min(values), name)} .. {_num(max(values), name)}",
                    _num(values[-1], name),
                )
            )
        else:
            table.append((name, data.unit, _num(sum(values), name), _num(max(values), name), "", ""))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        lines.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    lines += ["", "Alarms of the deployed stack (infra/monitoring.py) these runs would have raised:"]
    for alarm, metric, breach in ALARMS:
        values = series.get(metric, MetricSeries("")).values
        threshold = float(breach.split()[1])
        breached = [v for v in values if (v >= threshold if breach.startswith(">=") else v > threshold)]
        verdict = f"ALARM in {len(breached)} of {len(values)} runs" if breached else "OK"
        lines.append(f"  {alarm:<22} ({metric} {breach}): {verdict}")
    beats = sum(series.get("Heartbeat", MetricSeries("")).values)
    lines.append(
        f"  {'HeartbeatMissing':<22} (Heartbeat < 1 per window): {'OK' if beats else 'ALARM'} ({beats:.0f} beats)"
    )
    throttles = sum(series.get("Throttles", MetricSeries("")).values)
    lines += [
        "",
        f"RDS calls answered: {sum(results.calls.values())} ("
        + ", ".join(f"{op} {n}" for op, n in sorted(results.calls.items()))
        + f"). {results.throttled} attempts were answered Throttling and retried by the SDK; "
        f"the runs counted {throttles:.0f} of them (the rest were the operator's).",
    ]
    for region, calls in sorted(results.dr_calls.items()):
        lines.append(
            f"In {region}: {sum(calls.values())} (" + ", ".join(f"{op} {n}" for op, n in sorted(calls.items())) + ")."
        )
    return "\n".join(lines)


def _num(value: float, name: str) -> str:
    if name in ("OldestRecoveryPointAge", "DrOldestRecoveryPointAge"):
        return age_text(timedelta(seconds=value))
    if name == "RunDuration":
        return f"{value:.0f}"
    if name in ("ManualSnapshotQuotaUtilization", "DrQuotaUtilization"):
        return f"{value:.0f}%"
    return f"{value:.0f}"


def _status(results: Results) -> str:
    if not results.status_table:
        return ""
    return "\n".join(
        [
            rule(f"snapshot-scheduler status --at {results.end:%Y-%m-%dT%H:%MZ} (the operator's view at the end)"),
            results.status_table,
        ]
    )


# ---- files ------------------------------------------------------------------------------------------------


def write_files(results: Results, text: str, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    blobs, logs = parse_lines(results.stdout)
    plans = {plan.cluster_id: plan for plan in (results.plan.clusters if results.plan else ())}
    files = {
        "report.txt": text + "\n",
        "runs.jsonl": "".join(json.dumps(run) + "\n" for run in results.runs),
        "metrics.jsonl": "".join(json.dumps(blob) + "\n" for blob in blobs),
        "logs.jsonl": "".join(json.dumps(record) + "\n" for record in logs),
        "timeline.html": timeline_html(results, plans),
    }
    written = []
    for name, content in files.items():
        path = out_dir / name
        path.write_text(content)
        written.append(path)
    return written


def timeline_html(results: Results, plans: Mapping[str, ClusterPlan]) -> str:
    """Every snapshot taken (grey) and kept (coloured by its reason) on one time axis, one row per cluster."""
    last = datetime.fromisoformat(results.vault_runs[-1]["scheduled_time"]) if results.vault_runs else results.end
    start, end = results.start, max(results.end, last) + timedelta(hours=1)
    span = (end - start).total_seconds()
    left, width, row = 110, 900, 34
    samples = [s for s in scenario.FLEET if s.policy is not None]
    copies = sorted(dr_tally(results).items()) + sorted(
        (("vault", name), tally_) for name, tally_ in vault_tally(results).items()
    )
    height = 40 + row * (len(samples) + len(copies)) + 30
    colours = {"held": "#d62728", "yearly": "#9467bd", "monthly": "#8c564b", "weekly": "#ff7f0e", "daily": "#1f77b4"}

    def x(moment: datetime) -> float:
        return left + width * (moment - start).total_seconds() / span

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 20}" height="{height}" '
        'font-family="sans-serif" font-size="12">'
    ]
    day = start
    while day <= end:
        parts.append(f'<line x1="{x(day):.1f}" y1="25" x2="{x(day):.1f}" y2="{height - 25}" stroke="#eee"/>')
        if day.weekday() == 0:
            parts.append(f'<text x="{x(day):.1f}" y="18" text-anchor="middle">{day:%b %d}</text>')
        day += timedelta(days=1)
    taken = tally(results, [])
    for index, sample in enumerate(samples):
        y = 40 + row * index
        parts.append(f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{html.escape(sample.id)}</text>')
        for created in taken.get(sample.id, ClusterTally()).created_times:
            parts.append(f'<line x1="{x(created):.1f}" y1="{y - 8}" x2="{x(created):.1f}" y2="{y + 8}" stroke="#ccc"/>')
        plan = plans.get(sample.id)
        for kept in plan.kept if plan is not None else ():
            moment = kept.snapshot.time
            if moment is None or moment < start:
                continue
            reasons = ", ".join(kept.reasons)
            colour = next((c for word, c in colours.items() if word in reasons), "#2ca02c")
            title = html.escape(f"{kept.snapshot.id}: {reasons}")
            parts.append(f'<circle cx="{x(moment):.1f}" cy="{y}" r="4" fill="{colour}"><title>{title}</title></circle>')
    for index, (_, tally_) in enumerate(copies, len(samples)):
        parts += _copy_row(tally_, 40 + row * index, left, x, end)
    if results.wipe is not None:
        wiped = x(results.wipe[0])
        parts.append(f'<line x1="{wiped:.1f}" y1="25" x2="{wiped:.1f}" y2="{height - 25}" stroke="#d62728"/>')
        parts.append(f'<text x="{wiped:.1f}" y="18" text-anchor="end" fill="#d62728">production wiped</text>')
    legend = "grey tick: taken (and later deleted unless a dot); dots: kept at the end - " + ", ".join(
        f"{word}" for word in colours
    )
    parts.append(f'<text x="{left}" y="{height - 8}">{html.escape(legend)}; green: hourly/last/other</text>')
    parts.append("</svg>")
    legend_items = "".join(f'<span style="color:{c}">&#9679; {html.escape(w)}</span> ' for w, c in colours.items())
    return (
        "<!doctype html><meta charset='utf-8'><title>snapshot-scheduler demo: kept snapshots</title>"
        "<h1>snapshot-scheduler demo: snapshots kept and copies to other regions after a month of hourly runs</h1>"
        f"<p>{_when(results.start)} to {_when(results.end)}. Hover a dot for the snapshot and why it is kept. "
        f"{legend_items}</p><p>DR rows (cluster -> target) and the vault's copies (cluster -> vault, in account "
        f"{scenario.VAULT_ACCOUNT}): {html.escape(DR_LEGEND)} The red line: production wiped.</p>"
        + "".join(parts)
        + "\n"
    )


DR_COLOURS = {
    "copying": "#9ecae1",
    "available": "#08519c",
    "deleted": "#d62728",
    "deferred": "#ff7f0e",
    "skipped": "#7f7f7f",
}
DR_LEGEND = (
    "light blue bar: copying (in flight); dark blue line: available, until deleted by DR retention (red x) or the "
    "end; orange triangle: deferred (copy-limit or quota); grey band with k: skipped (kms). Hover for details."
)


def _copy_row(tally_: TargetTally, y: int, left: int, x: Callable[[datetime], float], end: datetime) -> list[str]:
    """One cluster's copies in one DR region: each copy's flight and life, deferrals and skips."""
    parts = [f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{html.escape(tally_.name)}</text>']
    for life in tally_.copies.values():
        if life.started is None:
            continue
        gone = life.deleted or end
        ready = min(life.started + scenario.DR_COPYING_FOR, gone)
        fate = f", deleted by DR retention {_when(life.deleted)}" if life.deleted else ", kept"
        title = html.escape(f"{life.id}: started {_when(life.started)}, copying until {_when(ready)}{fate}")
        flight = max(1.0, x(ready) - x(life.started))
        parts.append(
            f"<g><title>{title}</title>"
            f'<rect x="{x(life.started):.1f}" y="{y - 5}" width="{flight:.1f}" height="10" '
            f'fill="{DR_COLOURS["copying"]}"/>'
            f'<line x1="{x(ready):.1f}" y1="{y}" x2="{x(gone):.1f}" y2="{y}" stroke="{DR_COLOURS["available"]}" '
            'stroke-width="3"/></g>'
        )
        if life.deleted is not None:
            parts.append(_mark(x(life.deleted), y, "x", DR_COLOURS["deleted"], title))
    for at, code, reason in tally_.deferred:
        title = html.escape(f"{_when(at)} deferred {code}: {reason}")
        colour = DR_COLOURS["deferred"]
        parts.append(f'<path d="M {x(at):.1f} {y - 14} l 5 8 l -10 0 z" fill="{colour}"><title>{title}</title></path>')
    for since, until, code, count, reason in _spans(tally_.skipped):
        title = html.escape(f"skipped ({code}) by {count} runs, {_when(since)} to {_when(until)}: {reason}")
        colour = DR_COLOURS["skipped"]
        width_ = max(1.0, x(until) - x(since))
        parts.append(
            f'<g><title>{title}</title><rect x="{x(since):.1f}" y="{y - 2}" width="{width_:.1f}" height="4" '
            f'fill="{colour}" opacity="0.5"/></g>'
        )
        parts.append(_mark(x(since), y - 6, code[0], colour, title))
    return parts


def _spans(
    entries: Sequence[tuple[datetime, str, str]], gap: timedelta = timedelta(hours=3)
) -> list[tuple[datetime, datetime, str, int, str]]:
    """Runs of the same code less than `gap` apart, as (first, last, code, runs, first reason)."""
    spans: list[tuple[datetime, datetime, str, int, str]] = []
    for at, code, reason in entries:
        if spans and spans[-1][2] == code and at - spans[-1][1] < gap:
            since, _, _, count, first = spans[-1]
            spans[-1] = (since, at, code, count + 1, first)
        else:
            spans.append((at, at, code, 1, reason))
    return spans


def _mark(x: float, y: int, letter: str, colour: str, title: str) -> str:
    return f'<text x="{x:.1f}" y="{y + 4}" text-anchor="middle" fill="{colour}">{letter}<title>{title}</title></text>'


# ---- small formats ----------------------------------------------------------------------------------------


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _short(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%m-%d %H:%M")
