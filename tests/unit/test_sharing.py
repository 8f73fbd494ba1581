"""Sharing with DR targets that are accounts (vaults), purely: what a run shares, when it takes a share back,
what it keeps while shared, and what it cannot share (the default key).

Given the source region's clusters and snapshots, when a run is planned at a time, then the shares and
unshares are the ones an operator expects. Tag keys and values are written out by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler.dr import DrContext, DrPolicyError, DrTarget, keep_sources, parse_dr_policy, plan_dr
from snapshot_scheduler.model import Cluster, Reason, Snapshot
from snapshot_scheduler.planning import PolicyContext, plan_run
from snapshot_scheduler.sharing import SHARED_WITH_VAULT, SharePlan, plan_sharing, without_default_keys

DEPLOYMENT = "prod"
SOURCE = "eu-west-1"
ACCOUNT, VAULT = "111111111111", "222222222222"
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
AT = SLOT + timedelta(minutes=5)
OWN = "every=1h keep-last=48"
DR = "to=vault"
TARGETS = {
    "vault": DrTarget("vault", "eu-central-1", account=VAULT, share_for=timedelta(hours=72)),
    "dr-west": DrTarget("dr-west", "us-west-2"),
}
CONTEXT = DrContext(tag_key="snapshot-dr", deployment=DEPLOYMENT, source_region=SOURCE, targets=TARGETS)
OWN_CONTEXT = PolicyContext("snapshot-policy", DEPLOYMENT, {}, "03:00", "UTC")
SHARED_TAG = "snapshot-scheduler:shared-vault"
DEFAULT_KEY = f"arn:aws:kms:{SOURCE}:{ACCOUNT}:key/default"
CMK = f"arn:aws:kms:{SOURCE}:{ACCOUNT}:key/mine"


def cluster(name: str, *, dr: str | None = DR, own: str | None = OWN) -> Cluster:
    tags = {k: v for k, v in {"snapshot-policy": own, "snapshot-dr": dr}.items() if v is not None}
    return Cluster(name, f"arn:aws:rds:{SOURCE}:{ACCOUNT}:cluster:{name}", "aurora-postgresql", "available", tags)


def snapshot(
    name: str,
    slot: datetime,
    *,
    shared: str | None = None,
    status: str = "available",
    key: str | None = None,
    recorded: str = "every=1h at=03:00 tz=UTC keep-last=48",
) -> Snapshot:
    ident = f"{name}-{slot:%Y%m%d-%H%M}"
    tags = {
        "snapshot-scheduler:deployment": DEPLOYMENT,
        "snapshot-scheduler:policy": recorded,
        "snapshot-scheduler:slot": slot.isoformat(),
        "snapshot-scheduler:cluster": name,
        **({SHARED_TAG: shared} if shared is not None else {}),
    }
    arn = f"arn:aws:rds:{SOURCE}:{ACCOUNT}:cluster-snapshot:{ident}"
    return Snapshot(ident, name, arn, status, "manual", slot, tags, encrypted=key is not None, kms_key_id=key or "")


def plan(
    clusters: Sequence[Cluster], snapshots: Sequence[Snapshot], *, at: datetime = AT, now: datetime | None = None
) -> SharePlan:
    run = plan_run(OWN_CONTEXT, clusters, snapshots, at)
    return plan_sharing(CONTEXT, clusters, run, snapshots, at=at, now=now or at)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


# ------------------------------------------------------------------------------------------- the tag


def test_a_tag_naming_only_account_targets_needs_no_keep_words_and_refuses_them() -> None:
    accounts = frozenset({"vault"})

    policy = parse_dr_policy("to=vault every=1w on=sun", accounts=accounts)

    assert policy.policy.retention.empty and policy.policy.every.text == "1w"
    with pytest.raises(DrPolicyError, match="keep nothing") as raised:
        parse_dr_policy("to=vault keep-daily=7", accounts=accounts)
    assert "only targets that are accounts" in str(raised.value)
    with pytest.raises(DrPolicyError, match="keeps nothing"):
        parse_dr_policy("to=vault+dr-west", accounts=accounts)  # the region target's copies need keep- words
    assert parse_dr_policy("to=vault+dr-west keep-daily=3", accounts=accounts).policy.retention.daily == 3


# ---------------------------------------------------------------------------------------- sharing


def test_the_newest_available_snapshot_of_the_dr_slot_is_shared_once() -> None:
    older = snapshot("orders", SLOT - hours(1))
    in_slot = [snapshot("orders", SLOT), snapshot("orders", SLOT + hours(1)), snapshot("orders", SLOT + hours(2))]
    creating = snapshot("orders", SLOT + hours(3), status="creating")
    at = SLOT + hours(3) + timedelta(minutes=5)

    first = plan([cluster("orders")], [older, *in_slot, creating], at=at)
    recorded = [*in_slot[:2], replace(in_slot[2], tags={**in_slot[2].tags, SHARED_TAG: "2026-03-10T05:05:00Z"})]
    again = plan([cluster("orders")], [older, *recorded, creating], at=at + hours(1))

    assert [(s.cluster_id, s.snapshot.id, s.target.account) for s in first.shares] == [
        ("orders", "orders-20260310-0500", VAULT)
    ]
    assert again.shares == ()  # a snapshot of this DR slot is shared already


@pytest.mark.parametrize(
    ("tags", "why"),
    [
        ({"snapshot-dr": "off"}, "DR off"),
        ({"snapshot-dr": "to=vault keep-daily=7"}, "an unusable DR tag"),
        ({"snapshot-dr": "to=dr-west keep-daily=3"}, "a region target only"),
        ({"snapshot-policy": "off"}, "no own policy"),
    ],
)
def test_nothing_is_shared_without_a_usable_dr_tag_naming_the_account_target(tags: dict[str, str], why: str) -> None:
    orders = cluster("orders")
    orders = replace(orders, tags={**orders.tags, **tags})

    assert plan([orders], [snapshot("orders", SLOT)]).shares == (), why


def test_a_slot_older_than_share_hours_is_never_shared_so_a_share_taken_back_is_not_made_again() -> None:
    weekly = cluster("orders", dr="to=vault every=1w on=tue")  # SLOT is a Tuesday
    snap = snapshot("orders", SLOT)

    assert len(plan([weekly], [snap], at=SLOT + hours(71)).shares) == 1
    assert plan([weekly], [snap], at=SLOT + hours(72)).shares == ()


def test_a_passed_slot_is_never_back_filled_by_a_late_event() -> None:
    assert plan([cluster("orders")], [snapshot("orders", SLOT)], now=AT + timedelta(days=1)).shares == ()


# -------------------------------------------------------------------------------------- unsharing


def test_a_share_older_than_share_hours_is_taken_back_and_kept_until_then() -> None:
    young = snapshot("orders", SLOT - hours(48), shared="2026-03-08T03:05:00Z")
    due = snapshot("orders", SLOT - hours(73), shared="2026-03-07T02:00:00Z")
    garbled = snapshot("orders", SLOT - hours(80), shared="yesterday")

    planned = plan([cluster("orders")], [young, due, garbled])

    assert {u.snapshot.id: u.since for u in planned.unshares} == {
        due.id: datetime(2026, 3, 7, 2, 0, tzinfo=UTC),
        garbled.id: None,  # unreadable: taken back at once
    }
    assert planned.shares == ()
    assert planned.protected == {s.id: SHARED_WITH_VAULT for s in (young, due, garbled)}


def test_shares_are_taken_back_whatever_the_tag_says_now_even_for_a_deleted_cluster() -> None:
    shared = snapshot("gone", SLOT - hours(100), shared="2026-03-05T23:00:00Z")

    planned = plan([], [shared])

    assert [u.snapshot.id for u in planned.unshares] == [shared.id]


def test_the_own_retention_keeps_a_shared_snapshot_until_it_is_unshared() -> None:
    orders = cluster("orders", own="every=1h keep-last=1")
    recorded = "every=1h at=03:00 tz=UTC keep-last=1"
    shared = snapshot("orders", SLOT - hours(5), shared="2026-03-09T22:00:00Z", recorded=recorded)
    newest = snapshot("orders", SLOT, recorded=recorded)
    run = plan_run(OWN_CONTEXT, [orders], [shared, newest], AT)
    sharing = plan_sharing(CONTEXT, [orders], run, [shared, newest], at=AT, now=AT)

    kept = keep_sources(run, sharing.protected)

    assert [s.id for p in run.clusters for s in p.delete] == [shared.id]  # retention alone would delete it
    assert [s.id for p in kept.clusters for s in p.delete] == []
    reasons = {k.snapshot.id: k.reasons for p in kept.clusters for k in p.kept}
    assert SHARED_WITH_VAULT in reasons[shared.id]


def test_snapshots_not_ours_are_never_shared_nor_unshared() -> None:
    stranger = snapshot("orders", SLOT, shared="2026-03-01T00:00:00Z")
    stranger = replace(stranger, tags={**stranger.tags, "snapshot-scheduler:deployment": "someone-else"})

    planned = plan([cluster("orders")], [stranger])

    assert (planned.shares, planned.unshares, planned.protected) == ((), (), {})


# ------------------------------------------------------------------------------------ the default key


def test_a_snapshot_under_the_default_key_is_skipped_kms_default_key_saying_what_to_do() -> None:
    clusters = [cluster("orders"), cluster("billing"), cluster("ledger")]
    snaps = [snapshot("orders", SLOT, key=DEFAULT_KEY), snapshot("billing", SLOT, key=CMK), snapshot("ledger", SLOT)]
    planned = plan(clusters, snaps)

    assert planned.keys() == {DEFAULT_KEY, CMK}
    checked = without_default_keys(planned, {DEFAULT_KEY: "AWS", CMK: "CUSTOMER"})

    assert [s.cluster_id for s in checked.shares] == ["billing", "ledger"]
    (skip,) = checked.skips
    assert (skip.cluster_id, skip.code, skip.target.name) == ("orders", Reason.KMS_DEFAULT_KEY, "vault")
    assert "aws/rds" in skip.reason and "customer managed key" in skip.reason and VAULT in skip.reason


def test_a_key_kms_would_not_describe_is_tried() -> None:
    planned = plan([cluster("orders")], [snapshot("orders", SLOT, key=CMK)])

    assert len(without_default_keys(planned, {CMK: None}).shares) == 1


# ----------------------------------------------------------------------------------- DR copies unaffected


def test_an_account_target_gets_no_copy_and_its_region_is_not_a_copy_region() -> None:
    orders = cluster("orders", dr="to=vault+dr-west keep-daily=3")
    run = plan_run(OWN_CONTEXT, [orders], [snapshot("orders", SLOT)], AT)

    dr = plan_dr(CONTEXT, [orders], run, [snapshot("orders", SLOT)], {"us-west-2": []}, at=AT)

    assert [(t.region, t.target.name if t.target else None) for t in dr.targets] == [("us-west-2", "dr-west")]
    assert CONTEXT.regions == ["us-west-2"]


def test_a_retired_vault_target_gets_no_new_share_and_its_shares_are_still_taken_back() -> None:
    retired = {**TARGETS, "vault": replace(TARGETS["vault"], retired=True)}
    context = replace(CONTEXT, targets=retired)
    old = snapshot("orders", SLOT - hours(80), shared="2026-03-06T19:00:00Z")
    snaps = [old, snapshot("orders", SLOT)]
    run = plan_run(OWN_CONTEXT, [cluster("orders")], snaps, AT)

    planned = plan_sharing(context, [cluster("orders")], run, snaps, at=AT, now=AT)

    assert planned.shares == ()
    assert [u.snapshot.id for u in planned.unshares] == [old.id]
