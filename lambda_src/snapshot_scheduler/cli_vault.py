"""What the CLI shows of a vault deployment (SNAPSHOT_VAULT): its run report, its plan (the copies a run would
start and delete now, and why; deletions a change of the vault's policy put off) and its status (per source
account/region and cluster: the newest copy, its age, copies in flight; per source: its newest share)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from snapshot_scheduler.cli_text import (
    age_text,
    iso,
    ordinal,
    plural,
    print_json,
    quota_dict,
    quota_text,
    render_pairs,
    render_table,
    when,
)
from snapshot_scheduler.config import Settings
from snapshot_scheduler.model import AVAILABLE, Quota, RunReport, Snapshot, VaultReport
from snapshot_scheduler.planning import Kept
from snapshot_scheduler.policy_change import Pending
from snapshot_scheduler.vault import CopyGroup, SourceView, VaultCopy, VaultPlan

EXIT_OK, EXIT_ATTENTION = 0, 1


@dataclass(frozen=True)
class VaultView:
    """What a vault run would read and decide now (vault_service.discover)."""

    plan: VaultPlan
    quota: Quota | None
    unreadable: Mapping[str, str]  # source region -> why its shares could not be listed


# ---------------------------------------------------------------------------------------------------------
# run


def render_report(report: RunReport) -> str:
    vault = report.vault
    assert vault is not None
    title = f"Vault run for {when(report.scheduled_time)}" + (
        " (dry run: nothing was changed)" if report.dry_run else ""
    )
    rows = _report_rows(report, vault)
    body = render_table(("ACTION", "SOURCE", "CLUSTER", "COPY / REASON"), rows) if rows else "Nothing to do."
    verb = "would be " if report.dry_run else ""
    summary = (
        f"copies: {len(vault.started)} {verb}started, {len(vault.deleted)} {verb}deleted, "
        f"{len(vault.deferred)} deferred, {len(vault.skipped)} skipped, {len(vault.failed)} failed, "
        f"{len(vault.stuck)} stuck; {plural(vault.shares_counted, 'share')} counted, {len(vault.ignored)} ignored"
    )
    if report.quota is not None:
        summary += f"; quota {quota_text(report.quota)}"
    lines = [title, "", body, "", summary, *_source_lines(vault)]
    if report.pending:
        lines.append(
            f"{plural(len(report.pending), 'copy deletion')} caused by a change of the vault's policy wait for the "
            "grace (restore the policy in the vault's context, or hold the copies, to keep them)."
        )
    if not report.complete:
        lines.append("Not complete: what was deferred or failed is retried by the next run (exit status 1).")
    return "\n".join(lines)


def _report_rows(report: RunReport, vault: VaultReport) -> list[tuple[str, str, str, str]]:
    rows = [("copy started", e["source"], e["cluster"], f"{e['snapshot']} from {e['share']}") for e in vault.started]
    rows += [("copy deleted", e["source"], e["cluster"], e["snapshot"]) for e in vault.deleted]
    rows += [("copy deferred", e["source"], e["cluster"], f"{e['code']}: {e['reason']}") for e in vault.deferred]
    rows += [("copy skipped", e["source"], e["cluster"], f"{e['code']}: {e['reason']}") for e in vault.skipped]
    rows += [("copy failed", e["source"], e["cluster"], f"{e['error']}: {e['message']}") for e in vault.failed]
    rows += [("copy stuck", e["source"], e["cluster"], f"{e['snapshot']}: {e['reason']}") for e in vault.stuck]
    rows += [
        (
            "copy pending",
            str(e["source"]),
            str(e["cluster"]),
            f"{e['snapshot']}: kept by {e['kept_by']!r} until {e['deletable_after']}",
        )
        for e in report.pending
    ]
    rows += [("share ignored", "-", "-", f"{e['snapshot']}: {e['reason']}") for e in vault.ignored]
    return rows


def _source_lines(vault: VaultReport) -> list[str]:
    lines = []
    for source in vault.sources:
        age = source["recovery_point_age_seconds"]
        newest = "no copy yet" if age is None else f"newest copy {age_text(timedelta(seconds=age))} old"
        silent = "; SILENT: no share seen for longer than sharesExpectedHours" if source["silent"] else ""
        lines.append(f"Source {source['source']}: {newest}{silent}")
    return lines


# ---------------------------------------------------------------------------------------------------------
# plan


def show_plan(view: VaultView, settings: Settings, at: datetime, *, as_json: bool) -> int:
    assert settings.vault is not None
    spec = settings.vault.policy.spec()
    order = _start_order(view.plan)
    if as_json:
        print_json(
            {
                "scheduled_time": at.isoformat(),
                "policy": spec,
                "groups": [_group_dict(view.plan, g, spec, order) for g in view.plan.groups],
                "ignored": [{"snapshot": i.arn, "reason": i.reason} for i in view.plan.ignored],
                "unreadable": dict(view.unreadable),
                "quota": quota_dict(view.quota),
            }
        )
        return EXIT_OK
    lines = [
        f"Vault plan for {when(at)}: what a run would copy and delete now (nothing is changed)",
        f"Vault policy: {settings.vault.policy.describe()}",
    ]
    if view.quota is not None:
        lines.append(f"Manual cluster snapshot quota: {quota_text(view.quota)}")
    for region, why in view.unreadable.items():
        lines.append(f"{region} could not be read: no copy of what it shares starts now ({why})")
    if not view.plan.groups:
        lines.append("Nothing shared with the vault counts yet, and it holds no copies.")
    for group in view.plan.groups:
        lines += [
            "",
            f"{group.cluster_id} from {group.source}",
            render_pairs(_group_pairs(view.plan, group, spec, order)),
        ]
    if view.plan.ignored:
        rows = [(i.arn, i.reason) for i in view.plan.ignored]
        lines += ["", "Shares ignored (never copied)", render_table(("SHARED SNAPSHOT", "WHY"), rows)]
    print("\n".join(lines))
    return EXIT_OK


def _jobs(plan: VaultPlan, group: CopyGroup) -> list[VaultCopy]:
    key = (group.account, group.region, group.cluster_id)
    return [job for job in plan.copies if (job.account, job.region, job.cluster_id) == key]


def _start_order(plan: VaultPlan) -> dict[str, tuple[int, int]]:
    """identifier -> (its place, how many) among the copies that start, most overdue first."""
    starting = plan.starting
    return {job.identifier: (n, len(starting)) for n, job in enumerate(starting, 1)}


def _why(job: VaultCopy, order: Mapping[str, tuple[int, int]]) -> str:
    why = f"the newest share of the vault slot {when(job.slot)}; no copy of it yet"
    if job.identifier in order:
        place, count = order[job.identifier]
        why += f"; {ordinal(place)} of {count} to start, most overdue first"
    return why


def _delete_reason(group: CopyGroup, copy: Snapshot, spec: str) -> str:
    if copy in group.failed:
        return "the copy ended failed: deleted, and copied again while the source still shares its slot"
    return f"not kept by the vault policy ({spec})"


def _group_pairs(
    plan: VaultPlan, group: CopyGroup, spec: str, order: Mapping[str, tuple[int, int]]
) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    jobs = _jobs(plan, group)
    for job in jobs:
        if job.fail is not None:
            pairs.append(("fail", f"{job.fail[0]}: {job.fail[1]}"))
        elif job.skip is not None:
            pairs.append(("skip", f"{job.skip[0].value}: {job.skip[1]}"))
        else:
            pairs.append(("copy", f"{job.identifier} from {job.share.arn} ({_why(job, order)})"))
            if job.defer is not None:
                pairs.append(("defer", f"{job.defer[0].value}: {job.defer[1]}"))
    if not jobs:
        pairs.append(("copy", "nothing: every vault slot still shared has its copy, or is copying"))
    pairs += [("delete", f"{s.id}  ({when(s.time)}): {_delete_reason(group, s, spec)}") for s in group.delete]
    if group.pending:
        pairs.append(("pending", pending_text(group.pending)))
    for kept in _newest_first(group.kept):
        pairs.append(("keep", f"{kept.snapshot.id}  ({when(kept.snapshot.time)}): {_kept_text(group, kept)}"))
    return pairs


def pending_text(pending: Sequence[Pending]) -> str:
    first = pending[0]
    return (
        f"vault policy changed: {_copies(len(pending))} that {first.kept_by!r} "
        f"keeps will be deleted from {when(first.deletable_after)} at the earliest; restore the vault's policy or "
        "hold them to keep them"
    )


def _copies(count: int) -> str:
    return f"{count} {'copy' if count == 1 else 'copies'}"


def _kept_text(group: CopyGroup, kept: Kept) -> str:
    text = ", ".join(kept.reasons)
    copy = kept.snapshot
    if copy in group.in_flight:
        done = "" if copy.progress is None else f"{copy.progress}% "
        stuck = "; STUCK, never cancelled: see the VaultCopyStuck alarm" if copy in group.stuck else ""
        text += f"; {done}copied since {when(copy.created)}{stuck}"
    return text


def _group_dict(plan: VaultPlan, group: CopyGroup, spec: str, order: Mapping[str, tuple[int, int]]) -> dict[str, Any]:
    return {
        "source": group.source,
        "cluster": group.cluster_id,
        "copies": [
            {
                "snapshot": job.identifier,
                "share": job.share.arn,
                "slot": iso(job.slot),
                "kms_key": job.kms_key,
                "order": order.get(job.identifier, (None, None))[0],
                "why": _why(job, order),
                "skip": None if job.skip is None else {"code": job.skip[0].value, "reason": job.skip[1]},
                "defer": None if job.defer is None else {"code": job.defer[0].value, "reason": job.defer[1]},
                "fail": None if job.fail is None else {"error": job.fail[0], "message": job.fail[1]},
            }
            for job in _jobs(plan, group)
        ],
        "delete": [
            {"snapshot": s.id, "time": iso(s.time), "reason": _delete_reason(group, s, spec)} for s in group.delete
        ],
        "pending": [p.entry() | {"time": iso(p.snapshot.time)} for p in group.pending],
        "keep": [
            {"snapshot": k.snapshot.id, "time": iso(k.snapshot.time), "status": k.snapshot.status, "reasons": k.reasons}
            for k in _newest_first(group.kept)
        ],
        "in_flight": [_copying(s) for s in group.in_flight],
        "stuck": [_copying(s) for s in group.stuck],
    }


def _newest_first(kept: Sequence[Kept]) -> list[Kept]:
    never = datetime.min.replace(tzinfo=UTC)
    return sorted(kept, key=lambda k: k.snapshot.time or never, reverse=True)


def _copying(snapshot: Snapshot) -> dict[str, Any]:
    return {"snapshot": snapshot.id, "progress": snapshot.progress, "since": iso(snapshot.created)}


# ---------------------------------------------------------------------------------------------------------
# status


@dataclass(frozen=True)
class GroupStatus:
    """The vault's copies of one cluster of one source."""

    source: str
    cluster: str
    state: str
    attention: bool
    newest: Snapshot | None
    age: timedelta | None  # since the newest available copy's slot
    copies: int
    group: CopyGroup

    def to_dict(self) -> dict[str, Any]:
        group = self.group
        return {
            "source": self.source,
            "cluster": self.cluster,
            "state": self.state,
            "attention": self.attention,
            "newest_copy": None if self.newest is None else self.newest.id,
            "newest_copy_slot": iso(group.newest_available),
            "age_seconds": None if self.age is None else int(self.age.total_seconds()),
            "copies": self.copies,
            "in_flight": [_copying(s) for s in group.in_flight],
            "stuck": [_copying(s) for s in group.stuck],
            "failed": [s.id for s in group.failed],
            "pending": len(group.pending),
            "pending_deletable_after": iso(group.pending[0].deletable_after) if group.pending else None,
        }


def group_status(group: CopyGroup, at: datetime, allowed: timedelta) -> GroupStatus:
    """`allowed`: the vault policy's interval plus the grace plus drStuckHours, as VaultRecoveryPointBreached."""
    copies = [k.snapshot for k in group.kept] + list(group.delete)
    newest = next((s for s in copies if s.status == AVAILABLE and s.time == group.newest_available), None)
    age = None if group.newest_available is None else max(at - group.newest_available, timedelta(0))
    if age is None:
        state = "first copy pending" if group.in_flight else "NO COPY"
    else:
        state = "OUT OF POLICY" if age > allowed else "ok"
    attention = state in ("NO COPY", "OUT OF POLICY") or bool(group.stuck or group.failed or group.pending)
    return GroupStatus(group.source, group.cluster_id, state, attention, newest, age, len(copies), group)


def show_status(view: VaultView, settings: Settings, at: datetime, *, as_json: bool) -> int:
    vault = settings.vault
    assert vault is not None
    allowed = vault.policy.every.interval + settings.grace + settings.dr_stuck
    rows = [group_status(g, at, allowed) for g in view.plan.groups]
    sources = [_source_dict(s, at, vault.shares_expected) for s in view.plan.sources]
    attention = bool(view.unreadable) or any(r.attention for r in rows) or any(s["silent"] for s in sources)
    if as_json:
        print_json(
            {
                "at": at.isoformat(),
                "quota": quota_dict(view.quota),
                "sources": sources,
                "copies": [row.to_dict() for row in rows],
                "unreadable": dict(view.unreadable),
                "attention": attention,
            }
        )
    else:
        print(render_status(rows, sources, view, at))
    return EXIT_ATTENTION if attention else EXIT_OK


def _source_dict(view: SourceView, at: datetime, expected: timedelta) -> dict[str, Any]:
    silence = view.silence(at)
    age = view.recovery_point_age(at)
    return {
        "source": view.name,
        "newest_share_slot": iso(view.newest_share),
        "newest_copy_slot": iso(view.newest_copy),
        "silence_seconds": None if silence is None else int(silence.total_seconds()),
        "recovery_point_age_seconds": None if age is None else int(age.total_seconds()),
        "silent": silence is None or silence > expected,
    }


def render_status(rows: Sequence[GroupStatus], sources: Sequence[dict[str, Any]], view: VaultView, at: datetime) -> str:
    lines = [f"Vault status at {when(at)}"]
    if view.quota is not None:
        lines.append(f"Manual cluster snapshot quota: {quota_text(view.quota)}")
    source_rows = [
        (
            s["source"],
            "SILENT" if s["silent"] else "ok",
            _age(s["silence_seconds"], "nothing shared yet"),
            _age(s["recovery_point_age_seconds"], "no copy yet"),
        )
        for s in sources
    ]
    lines += ["", render_table(("SOURCE", "SHARES", "SINCE NEWEST SHARE", "NEWEST COPY AGE"), source_rows)]
    lines.append("")
    if not rows:
        lines.append("The vault holds no copies yet, and nothing shared with it counts.")
    else:
        table = [
            (
                row.source,
                row.cluster,
                row.state,
                row.newest.id if row.newest else "-",
                age_text(row.age) if row.age is not None else "-",
                str(row.copies) + (f" ({len(row.group.pending)} pending)" if row.group.pending else ""),
                ", ".join(_copying_text(s) for s in row.group.in_flight) or "-",
            )
            for row in rows
        ]
        lines.append(render_table(("SOURCE", "CLUSTER", "STATE", "NEWEST COPY", "AGE", "COPIES", "COPYING"), table))
    problems = _problems(rows, sources, view)
    if problems:
        lines += ["", "Needs a look:", render_pairs(problems)]
    return "\n".join(lines)


def _age(seconds: int | None, none: str) -> str:
    return none if seconds is None else age_text(timedelta(seconds=seconds))


def _copying_text(snapshot: Snapshot) -> str:
    return snapshot.id + ("" if snapshot.progress is None else f" {snapshot.progress}%")


def _problems(rows: Sequence[GroupStatus], sources: Sequence[dict[str, Any]], view: VaultView) -> list[tuple[str, str]]:
    problems = [
        (s["source"], "has shared nothing for longer than sharesExpectedHours (or nothing yet): see VaultSharesMissing")
        for s in sources
        if s["silent"]
    ]
    for row in rows:
        where, group = f"{row.cluster} from {row.source}", row.group
        if row.state == "OUT OF POLICY":
            problems.append((where, "the newest copy is older than the vault policy's interval plus the grace "
                             "plus drStuckHours"))  # fmt: skip
        if row.state == "NO COPY":
            problems.append((where, "no copy, and none copying: 'snapshot-scheduler plan' says why"))
        problems += [
            (where, f"copy {s.id} still copying since {when(s.created)}; never cancelled") for s in group.stuck
        ]
        problems += [
            (where, f"copy {s.id} ended failed: the next run deletes it and copies again") for s in group.failed
        ]
        if group.pending:
            problems.append((where, pending_text(group.pending)))
    problems += [(region, f"could not be read: {why}") for region, why in view.unreadable.items()]
    return problems
