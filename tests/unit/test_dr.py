"""Disaster-recovery decisions, purely: the DR tag, copies due per target, the in-flight budget, retention of
copies with every safety rule, and the source snapshots kept while they are copied.

Given the source region's clusters and snapshots and one sweep per destination region, when a run is planned
at a time, then the copies to start, defer, keep and delete are what an operator expects. Identifiers and
tags are written out by hand here, not taken from the engine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler.dr import (
    COPY_IN_PROGRESS,
    DrContext,
    DrPlan,
    DrPolicyError,
    DrTarget,
    keep_sources,
    parse_dr_policy,
    plan_dr,
)
from snapshot_scheduler.model import Cluster, Quota, Reason, Snapshot
from snapshot_scheduler.planning import PolicyContext, RunPlan, plan_run

DEPLOYMENT = "prod"
SOURCE = "us-east-1"
WEST, EU = "us-west-2", "eu-west-1"
ACCOUNT = "123456789012"
AT = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
OWN = "every=1d keep-daily=30"
DR = "to=dr-west keep-daily=3"

TARGETS = {
    "dr-west": DrTarget("dr-west", WEST, "alias/snapshot-dr"),
    "dr-eu": DrTarget("dr-eu", EU),
}
CONTEXT = DrContext(tag_key="snapshot-dr", deployment=DEPLOYMENT, source_region=SOURCE, targets=TARGETS)
OWN_CONTEXT = PolicyContext("snapshot-policy", DEPLOYMENT, {}, "03:00", "UTC")


def cluster(name: str, *, dr: str | None = DR, own: str | None = OWN) -> Cluster:
    tags = {k: v for k, v in {"snapshot-policy": own, "snapshot-dr": dr}.items() if v is not None}
    return Cluster(name, f"arn:aws:rds:{SOURCE}:{ACCOUNT}:cluster:{name}", "aurora-postgresql", "available", tags)


def source_arn(snapshot: str) -> str:
    return f"arn:aws:rds:{SOURCE}:{ACCOUNT}:cluster-snapshot:{snapshot}"


def own_snapshot(
    name: str,
    slot: datetime,
    *,
    encrypted: bool = False,
    status: str = "available",
    recorded: str = "every=1d at=03:00 tz=UTC keep-daily=30",
) -> Snapshot:
    ident = f"{name}-{slot:%Y%m%d-%H%M}"
    tags = {
        "snapshot-scheduler:deployment": DEPLOYMENT,
        "snapshot-scheduler:policy": recorded,
        "snapshot-scheduler:slot": slot.isoformat(),
        "snapshot-scheduler:cluster": name,
    }
    return Snapshot(ident, name, source_arn(ident), status, "manual", slot, tags, encrypted=encrypted)


def copy_of(
    name: str,
    slot: datetime,
    *,
    status: str = "available",
    region: str = WEST,
    policy: str = "to=dr-west every=1d at=03:00 tz=UTC keep-daily=3",
    marker: str = DEPLOYMENT,
    created: datetime | None = None,
    extra: Mapping[str, str] | None = None,
    identifier: str | None = None,
) -> Snapshot:
    ident = identifier or f"{name}-{slot:%Y%m%d-%H%M}-dr-useast1"
    source = f"{name}-{slot:%Y%m%d-%H%M}"
    tags = {
        "snapshot-scheduler:dr-deployment": marker,
        "snapshot-scheduler:dr-policy": policy,
        "snapshot-scheduler:dr-target": "dr-west",
        "snapshot-scheduler:dr-source": source_arn(source),
        "snapshot-scheduler:dr-source-region": SOURCE,
        "snapshot-scheduler:cluster": name,
        "snapshot-scheduler:slot": slot.isoformat(),
        **(extra or {}),
    }
    arn = f"arn:aws:rds:{region}:{ACCOUNT}:cluster-snapshot:{ident}"
    return Snapshot(
        ident, name, arn, status, "manual", created or slot + timedelta(minutes=10), tags, source_arn(source)
    )


def days(n: int) -> timedelta:
    return timedelta(days=n)


def plan(
    clusters: Sequence[Cluster],
    snapshots: Sequence[Snapshot],
    destinations: Mapping[str, Sequence[Snapshot]] | None = None,
    *,
    context: DrContext = CONTEXT,
    at: datetime = AT,
    now: datetime | None = None,
    quotas: Mapping[str, Quota | None] | None = None,
) -> tuple[RunPlan, DrPlan]:
    run = plan_run(OWN_CONTEXT, clusters, snapshots, at)
    dests = {WEST: [], EU: [], **(destinations or {})}
    return run, plan_dr(context, clusters, run, snapshots, dests, at=at, now=now, quotas=quotas)


def only(dr: DrPlan, cluster_id: str, region: str = WEST):  # type: ignore[no-untyped-def]
    (found,) = [p for p in dr.targets if p.cluster_id == cluster_id and p.region == region]
    return found


# ------------------------------------------------------------------------------------------- the tag


def test_a_dr_tag_names_targets_and_defaults_to_a_daily_copy() -> None:
    policy = parse_dr_policy("to=dr-west+dr-eu keep-daily=7 keep-weekly=4")

    assert policy.targets == ("dr-west", "dr-eu")
    assert policy.spec() == "to=dr-west+dr-eu every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4"


def test_a_named_dr_policy_works_like_a_named_policy() -> None:
    policy = parse_dr_policy("Standard", {"standard": "to=dr-west every=1w keep-weekly=8"})

    assert (policy.name, policy.targets, policy.policy.every.text) == ("Standard", ("dr-west",), "1w")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("keep-daily=7", "names no target"),
        ("to=dr-west", "keeps nothing"),
        ("to=dr-west every=1d", "keeps nothing"),
        ("to=dr-west to=dr-eu keep-daily=7", "given twice"),
        ("to=dr-west+ keep-daily=7", "does not name targets"),
        ("to=dr-west+DR-WEST keep-daily=7", "names a target twice"),
        ("to=dr-west daily keep-daily=7", "not a key=value word"),
        ("to=dr-west every=5h keep-daily=7", "every=5h"),
        ("gold", "unknown DR policy name 'gold'"),
    ],
)
def test_a_bad_dr_tag_is_a_dr_policy_error_naming_the_word(text: str, says: str) -> None:
    with pytest.raises(DrPolicyError, match=says):
        parse_dr_policy(text)


@pytest.mark.parametrize(
    ("dr", "says"),
    [
        ("to=dr-nowhere keep-daily=3", "target 'dr-nowhere' is not configured; configured targets: dr-eu, dr-west"),
        ("to=dr-west every=1h keep-daily=3", "every=1h is shorter than the cluster's own every=1d"),
        ("keep-daily=3", "names no target"),
    ],
)
def test_a_bad_dr_tag_reports_an_error_keeps_every_copy_and_leaves_the_own_snapshots_alone(dr: str, says: str) -> None:
    old = [copy_of("orders", SLOT - days(n)) for n in range(1, 8)]
    snapshots = [own_snapshot("orders", SLOT - days(n)) for n in range(1, 41)]

    run, planned = plan([cluster("orders", dr=dr)], snapshots, {WEST: old})

    (error,) = planned.errors
    assert error.cluster_id == "orders" and says in error.message and "snapshot-dr=" in error.message
    assert [p.delete for p in planned.targets] == [()]  # the copies are kept, none deleted
    assert planned.copies() == []
    (own,) = run.clusters
    assert own.create == "orders-20260310-0300" and len(own.delete) == 10  # the cluster's own work goes on


def test_a_cluster_without_its_own_policy_gets_no_copy() -> None:
    _, planned = plan([cluster("orders", own=None)], [])

    assert "own policy tag is missing" in planned.errors[0].message


# -------------------------------------------------------------------------------------- copies due


def test_the_newest_available_snapshot_of_the_dr_slot_is_copied_with_our_tags() -> None:
    hourly = "every=1h keep-hourly=48"
    snapshots = [own_snapshot("orders", SLOT - timedelta(hours=h)) for h in range(3)]
    snapshots.append(own_snapshot("orders", SLOT + timedelta(hours=1), status="creating"))

    _, planned = plan([cluster("orders", own=hourly)], snapshots, at=SLOT + timedelta(hours=1, minutes=5))

    (job,) = [p.copy for p in planned.copies()]
    assert job is not None
    assert job.identifier == "orders-20260310-0300-dr-useast1"
    assert job.source.id == "orders-20260310-0300"  # the 04:00 one is still creating
    assert job.kms_key is None  # unencrypted: no key
    assert job.tags == {
        "snapshot-scheduler:dr-deployment": DEPLOYMENT,
        "snapshot-scheduler:dr-policy": "to=dr-west every=1d at=03:00 tz=UTC keep-daily=3",
        "snapshot-scheduler:dr-target": "dr-west",
        "snapshot-scheduler:dr-source": source_arn("orders-20260310-0300"),
        "snapshot-scheduler:dr-source-region": SOURCE,
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": SLOT.isoformat(),
    }


def test_an_encrypted_source_is_copied_under_the_target_key() -> None:
    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT, encrypted=True)])

    (target,) = planned.copies()
    assert target.copy is not None and target.copy.kms_key == "alias/snapshot-dr"


def test_an_encrypted_source_and_a_target_without_a_key_is_skipped_for_kms_naming_target_and_region() -> None:
    _, planned = plan(
        [cluster("orders", dr="to=dr-west+dr-eu keep-daily=3")], [own_snapshot("orders", SLOT, encrypted=True)]
    )

    eu = only(planned, "orders", EU)
    assert eu.skip is not None and eu.skip[0] is Reason.KMS
    assert "dr-eu" in eu.skip[1] and EU in eu.skip[1]
    assert [p.region for p in planned.copies()] == [WEST]  # the other target goes on


def test_a_slot_already_copied_or_copying_is_not_copied_again() -> None:
    snapshots = [own_snapshot("orders", SLOT)]

    _, copying = plan([cluster("orders")], snapshots, {WEST: [copy_of("orders", SLOT, status="copying")]})
    _, done = plan([cluster("orders")], snapshots, {WEST: [copy_of("orders", SLOT)]})

    assert copying.copies() == [] and done.copies() == []


def test_an_older_slot_is_never_back_filled_and_a_slot_without_a_source_waits() -> None:
    yesterday = [own_snapshot("orders", SLOT - days(1))]

    _, planned = plan([cluster("orders")], yesterday)

    target = only(planned, "orders")
    assert planned.copies() == [] and target.waiting is not None and "2026-03-10T03:00" in target.waiting


def test_a_late_event_never_back_fills_a_passed_dr_slot() -> None:
    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], now=AT + days(1))

    skip = only(planned, "orders").skip
    assert skip is not None and skip[0] is Reason.STALE_EVENT
    assert planned.copies() == []


def test_someone_elses_snapshot_on_the_copy_identifier_is_reported_never_counted_done() -> None:
    squatter = copy_of("orders", SLOT, marker="other")

    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], {WEST: [squatter]})

    target = only(planned, "orders")
    assert target.fail is not None and target.fail[0] == "IdentifierTaken"
    assert planned.copies() == [] and target.delete == ()


# ---------------------------------------------------------------------------------- in-flight budget


def fleet(count: int) -> tuple[list[Cluster], list[Snapshot], dict[str, list[Snapshot]]]:
    """`count` clusters due a copy; cluster n's newest copy is n days old (the higher, the more overdue)."""
    clusters = [cluster(f"db{n}") for n in range(count)]
    snapshots = [own_snapshot(f"db{n}", SLOT) for n in range(count)]
    copies = [copy_of(f"db{n}", SLOT - days(n + 1)) for n in range(count)]
    return clusters, snapshots, {WEST: copies}


def test_at_most_five_copies_start_per_region_most_overdue_first_the_rest_deferred_copy_limit() -> None:
    clusters, snapshots, dests = fleet(7)

    _, planned = plan(clusters, snapshots, dests)

    assert [p.cluster_id for p in planned.copies()] == ["db6", "db5", "db4", "db3", "db2"]
    deferred = {p.cluster_id: p.defer[0] for p in planned.targets if p.defer is not None}
    assert deferred == {"db1": Reason.COPY_LIMIT, "db0": Reason.COPY_LIMIT}


def test_copies_in_progress_there_by_anyone_use_up_the_limit_and_a_lower_configured_limit_holds() -> None:
    clusters, snapshots, dests = fleet(4)
    strangers = [
        Snapshot(f"x{n}", "x", f"arn:aws:rds:{WEST}:{ACCOUNT}:cluster-snapshot:x{n}", "copying", "manual", AT, {})
        for n in range(3)
    ]

    _, busy = plan(clusters, snapshots, {WEST: dests[WEST] + strangers})
    _, lower = plan(clusters, snapshots, dests, context=DrContext(**{**CONTEXT.__dict__, "copy_limit": 1}))

    assert [p.cluster_id for p in busy.copies()] == ["db3", "db2"]
    assert [p.cluster_id for p in lower.copies()] == ["db3"]


def test_a_full_destination_quota_defers_for_quota_after_counting_the_deletions_that_free_room() -> None:
    clusters, snapshots, dests = fleet(3)
    old = [copy_of("db0", SLOT - days(n)) for n in range(5, 9)]  # keep-daily=3: these four... minus the kept

    _, full = plan(clusters, snapshots, dests, quotas={WEST: Quota(used=100, max=100)})
    _, freed = plan(clusters, snapshots, {WEST: dests[WEST] + old}, quotas={WEST: Quota(used=100, max=100)})

    assert full.copies() == []
    assert {p.defer[0] for p in full.targets if p.defer} == {Reason.QUOTA}
    deleted = len(only(freed, "db0").delete)
    assert deleted >= 1 and len(freed.copies()) == min(3, deleted)


# --------------------------------------------------------------------------------- copy retention


def test_copies_are_pruned_by_the_dr_policy_never_held_never_in_flight_never_the_newest() -> None:
    copies = [copy_of("orders", SLOT - days(n)) for n in range(1, 8)]
    held = copy_of("orders", SLOT - days(9), extra={"Snapshot-Hold": "yes"})
    stuck_old = copy_of("orders", SLOT - days(10), status="copying", created=AT - days(2))

    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], {WEST: [*copies, held, stuck_old]})

    target = only(planned, "orders")
    assert {s.id for s in target.delete} == {f"orders-202603{d:02d}-0300-dr-useast1" for d in (3, 4, 5, 6)}
    assert [s.id for s in target.stuck] == [stuck_old.id]
    reasons = {k.snapshot.id: k.reasons for k in target.kept}
    assert reasons[held.id] == ("held (snapshot-hold)",) and reasons[stuck_old.id] == ("status copying",)


def test_a_failed_copy_is_deleted_and_reported() -> None:
    failed = copy_of("orders", SLOT, status="failed")

    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], {WEST: [failed]})

    target = only(planned, "orders")
    assert target.failed == (failed,) and target.delete == (failed,)
    assert planned.copies() == []  # the next run copies the slot again


@pytest.mark.parametrize(
    "stranger",
    [
        copy_of("orders", SLOT - days(30), marker="other-deployment"),
        copy_of("orders", SLOT - days(30), identifier="orders-20260208-0300"),  # a slot identifier, not a copy's
        # the destination's own deployment of a same-named cluster: its marker key, not ours
        Snapshot(
            "orders-20260208-0300",
            "orders",
            f"arn:aws:rds:{WEST}:{ACCOUNT}:cluster-snapshot:orders-20260208-0300",
            "available",
            "manual",
            SLOT - days(30),
            {"snapshot-scheduler:deployment": DEPLOYMENT, "snapshot-scheduler:cluster": "orders"},
        ),
        Snapshot(  # our tags, but not a copy (no SourceDBClusterSnapshotArn)
            "orders-20260208-0300-dr-useast1",
            "orders",
            "",
            "available",
            "manual",
            SLOT - days(30),
            copy_of("orders", SLOT - days(30)).tags,
        ),
        copy_of("orders", SLOT - days(30), extra={"snapshot-scheduler:cluster": "billing"}),
        copy_of("orders", SLOT - days(30), extra={"snapshot-scheduler:dr-source-region": "eu-central-1"}),
    ],
)
def test_only_copies_with_every_proof_of_ours_are_ever_deleted(stranger: Snapshot) -> None:
    mine = [copy_of("orders", SLOT - days(n)) for n in range(1, 4)]

    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], {WEST: [*mine, stranger]})

    assert all(stranger not in p.delete for p in planned.targets)
    assert all(stranger.id not in {k.snapshot.id for k in p.kept} for p in planned.targets)


def test_copies_of_a_cluster_that_left_dr_are_pruned_by_the_recorded_policy_never_below_one() -> None:
    recorded = "to=dr-west every=1d at=03:00 tz=UTC keep-last=1"
    copies = [copy_of("gone", SLOT - days(n), policy=recorded) for n in range(1, 5)]

    _, planned = plan([cluster("orders", dr=None)], [], {WEST: copies})

    orphan = only(planned, "gone")
    assert orphan.cluster is None
    assert [k.snapshot.id for k in orphan.kept] == ["gone-20260309-0300-dr-useast1"]
    assert len(orphan.delete) == 3


def test_copies_whose_recorded_policy_is_unreadable_are_all_kept() -> None:
    copies = [copy_of("gone", SLOT - days(n), policy="to=dr-west nonsense") for n in range(1, 5)]

    _, planned = plan([], [], {WEST: copies})

    orphan = only(planned, "gone")
    assert orphan.delete == () and orphan.skip is not None and orphan.skip[0] is Reason.POLICY_ERROR


def test_a_target_dropped_from_the_tag_leaves_its_copies_to_the_recorded_policy() -> None:
    eu = [copy_of("orders", SLOT - days(n), region=EU) for n in range(1, 6)]

    _, planned = plan([cluster("orders", dr=DR)], [own_snapshot("orders", SLOT)], {EU: eu})

    orphan = only(planned, "orders", EU)
    assert orphan.cluster is None and len(orphan.kept) == 3 and len(orphan.delete) == 2


RETIRED = DrContext(
    tag_key="snapshot-dr",
    deployment=DEPLOYMENT,
    source_region=SOURCE,
    targets={"dr-west": DrTarget("dr-west", WEST, "alias/snapshot-dr", retired=True), "dr-eu": DrTarget("dr-eu", EU)},
)


def test_a_retired_target_gets_no_copy_and_its_copies_are_pruned_by_their_recorded_policy() -> None:
    # the tag now asks for more than the copies recorded: the recorded policy is what prunes them
    recorded = "to=dr-west every=1d at=03:00 tz=UTC keep-last=2"
    copies = [copy_of("orders", SLOT - days(n), policy=recorded) for n in range(1, 5)]

    _, planned = plan(
        [cluster("orders", dr="to=dr-west keep-last=10")],
        [own_snapshot("orders", SLOT)],
        {WEST: copies},
        context=RETIRED,
    )

    west = only(planned, "orders")
    assert west.copy is None and planned.copies() == []
    assert [k.snapshot.id for k in west.kept] == ["orders-20260309-0300-dr-useast1", "orders-20260308-0300-dr-useast1"]
    assert len(west.delete) == 2
    assert west.target is not None and west.target.name == "dr-west"
    assert west.skip is not None and west.skip[0] is Reason.TARGET_RETIRED
    assert "dr-west" in west.skip[1] and WEST in west.skip[1] and "remove dr-west" in west.skip[1]
    assert planned.managed == [] and planned.errors == ()  # no freshness judged there, no policy error


def test_a_retired_target_never_goes_below_one_copy() -> None:
    recorded = "to=dr-west every=1d at=03:00 tz=UTC keep-daily=1"
    copies = [copy_of("gone", SLOT - days(n), policy=recorded) for n in range(1, 4)]

    _, planned = plan([], [], {WEST: copies}, context=RETIRED)

    gone = only(planned, "gone")
    assert [k.snapshot.id for k in gone.kept] == ["gone-20260309-0300-dr-useast1"] and len(gone.delete) == 2
    assert gone.skip is None  # not tagged to it: nothing to tell the cluster's owner


def test_a_dr_tag_naming_a_retired_target_without_copies_there_is_reported_and_the_other_target_copies() -> None:
    _, planned = plan(
        [cluster("orders", dr="to=dr-west+dr-eu keep-daily=3")], [own_snapshot("orders", SLOT)], context=RETIRED
    )

    west, eu = only(planned, "orders"), only(planned, "orders", EU)
    assert west.skip is not None and west.skip[0] is Reason.TARGET_RETIRED
    assert (west.kept, west.delete, west.copy) == ((), (), None)
    assert planned.copies() == [eu] and eu.skip is None


def test_a_cluster_with_an_invalid_dr_tag_keeps_every_copy_in_a_retired_target() -> None:
    copies = [
        copy_of("orders", SLOT - days(n), policy="to=dr-west every=1d at=03:00 tz=UTC keep-last=1") for n in range(1, 4)
    ]

    _, planned = plan(
        [cluster("orders", dr="to=dr-west")], [own_snapshot("orders", SLOT)], {WEST: copies}, context=RETIRED
    )

    west = only(planned, "orders")
    assert west.delete == () and len(west.kept) == 3 and len(planned.errors) == 1


# ----------------------------------------------------------------------------------- source safety


def test_the_own_retention_keeps_a_source_while_a_copy_of_it_is_copying() -> None:
    old = SLOT - days(1)
    keep_last = "every=1d at=03:00 tz=UTC keep-last=1"  # the policy they were taken under: no policy change
    snapshots = [own_snapshot("orders", old, recorded=keep_last), own_snapshot("orders", SLOT, recorded=keep_last)]
    copying = copy_of("orders", old, status="copying", created=AT - timedelta(hours=3))

    run, planned = plan([cluster("orders", own="every=1d keep-last=1")], snapshots, {WEST: [copying]})
    guarded = keep_sources(run, planned.protected)

    (before,), (after,) = run.clusters, guarded.clusters
    assert [s.id for s in before.delete] == ["orders-20260309-0300"]
    assert after.delete == ()
    assert ("orders-20260309-0300", (COPY_IN_PROGRESS,)) in {(k.snapshot.id, k.reasons) for k in after.kept}


def test_a_copy_of_a_snapshot_in_another_region_does_not_protect_a_same_named_local_one() -> None:
    copying = copy_of("orders", SLOT - days(1), status="copying")
    foreign = Snapshot(
        copying.id, "orders", copying.arn, "copying", "manual", AT, copying.tags,
        source_arn=f"arn:aws:rds:eu-central-1:{ACCOUNT}:cluster-snapshot:orders-20260309-0300",
    )  # fmt: skip

    _, planned = plan([cluster("orders")], [], {WEST: [foreign]})

    assert "orders-20260309-0300" not in planned.protected


def test_anyones_copy_in_progress_protects_its_source_here() -> None:
    stranger = Snapshot(
        "someone-elses-copy", "orders", f"arn:aws:rds:{WEST}:{ACCOUNT}:cluster-snapshot:someone-elses-copy",
        "copying", "manual", AT, {}, source_arn=source_arn("orders-20260309-0300"),
    )  # fmt: skip

    _, planned = plan([cluster("orders")], [], {WEST: [stranger]})

    assert planned.protected == {"orders-20260309-0300": COPY_IN_PROGRESS}


def test_an_unexpected_error_deleting_one_copy_fails_that_copy_and_every_other_deletion_is_reported() -> None:
    # Given seven copies past a keep-daily=3 DR policy, and a bug that raises on one copy's deletion
    from snapshot_scheduler.copier import Copier  # noqa: PLC0415
    from snapshot_scheduler.model import DrReport  # noqa: PLC0415

    copies = [copy_of("orders", SLOT - days(n)) for n in range(1, 8)]
    _, planned = plan([cluster("orders")], [own_snapshot("orders", SLOT)], {WEST: copies})
    broken = only(planned, "orders").delete[0].id

    class West:  # the destination region's adapter
        def __init__(self) -> None:
            self.deleted: list[str] = []

        def delete_snapshot(self, snapshot_id: str) -> None:
            if snapshot_id == broken:
                raise ValueError("a bug")
            self.deleted.append(snapshot_id)

    west, report = West(), DrReport()
    Copier(CONTEXT, {WEST: west}, report, allows=lambda: True).prune(planned)  # type: ignore[dict-item]

    # Then that copy is failed, and every deletion that happened is in the report
    assert [(e["snapshot"], e["error"]) for e in report.failed] == [(broken, "InternalError")]
    assert sorted(e["snapshot"] for e in report.deleted) == sorted(west.deleted)
    assert len(west.deleted) == len(only(planned, "orders").delete) - 1 == 3
