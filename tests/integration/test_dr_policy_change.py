"""A DR tag edit cannot erase the copies' history before anyone notices, through the real handler.

Given a cluster whose DR copies were made under one DR policy, when its DR tag's keep- words change to keep
fewer, then what the change alone would delete waits `policyChangeGraceHours` (default 24) from the first
copy made under the new DR policy: every run meanwhile reports it in the `dr` section as pending (counted in
`DeletionsPending`), holding a copy or restoring the DR tag stops it, and once the grace ends the deletions
go and count as a mass deletion (`MassDeletions`).

The retention oracle is restic's (`plan_retention`), applied to the copies that exist before each run, by
the slot each records; creation times are read back from the DR region, not taken from the engine.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler.policy import parse_policy
from snapshot_scheduler.retention import plan_retention

from tests.integration.scenario import metric_values
from tests.integration.test_dr import (
    DR_MARKER,
    DR_TAG,
    SLOT,
    SOURCE,
    START,
    WEST,
    World,
    copy_name,
    fresh,  # noqa: F401 - an autouse fixture: a fresh RDS and KMS per test
    moto_module,  # noqa: F401 - an autouse fixture: moto for the module
)
from tests.support.harness import rds_client

OLD = "to=dr-west keep-daily=7 keep-monthly=12"
OLD_SPEC = "to=dr-west every=1d at=03:00 tz=UTC keep-daily=7 keep-monthly=12"
NEW = "to=dr-west keep-daily=1"
NEW_SPEC = "to=dr-west every=1d at=03:00 tz=UTC keep-daily=1"
DR_POLICY = "snapshot-scheduler:dr-policy"
HOLD = "snapshot-hold"
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# The copies OLD keeps: the last seven days and four month ends.
DAYS = [SLOT - n * DAY for n in range(1, 8)]
MONTH_ENDS = [datetime(2026, 2, 28, 3, tzinfo=UTC), datetime(2026, 1, 31, 3, tzinfo=UTC)]
MONTH_ENDS += [datetime(2025, 12, 31, 3, tzinfo=UTC), datetime(2025, 11, 30, 3, tzinfo=UTC)]
# What NEW (keep-daily=1) drops at once, and OLD keeps: the history a one-word edit would erase.
HISTORY = {copy_name("orders", slot) for slot in [*DAYS[1:], *MONTH_ENDS]}


def copied_world() -> World:
    """orders, copied daily to dr-west under OLD, with the copies OLD keeps (each made an hour after its slot)."""
    world = World(copying_for=timedelta(minutes=30))
    world.cluster("orders", dr=OLD)
    world.west.create_cluster("orders")  # RDS records a copy under its source's cluster; it then goes
    for slot in [*DAYS, *MONTH_ENDS]:
        source = f"arn:aws:rds:{SOURCE}:123456789012:cluster-snapshot:orders-{slot:%Y%m%d-%H%M}"
        copy_tags = {
            DR_MARKER: "test-deployment",
            DR_POLICY: OLD_SPEC,
            "snapshot-scheduler:dr-target": "dr-west",
            "snapshot-scheduler:dr-source": source,
            "snapshot-scheduler:dr-source-region": SOURCE,
            "snapshot-scheduler:cluster": "orders",
            "snapshot-scheduler:slot": slot.isoformat(),
        }
        world.west.seed_snapshot(
            "orders", copy_name("orders", slot), created=slot + HOUR, tags=copy_tags, copy_of=source
        )
    world.west.delete_cluster("orders")
    assert oracle_deletes(world, OLD) == set()
    return world


def retag(world: World, value: str) -> None:
    arn = f"arn:aws:rds:{SOURCE}:123456789012:cluster:orders"
    world.east_client.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": DR_TAG, "Value": value}])


def hold(world: World, copy: str) -> None:
    arn = f"arn:aws:rds:{WEST}:123456789012:cluster-snapshot:{copy}"
    rds_client(world.west, region=WEST).add_tags_to_resource(ResourceName=arn, Tags=[{"Key": HOLD, "Value": "true"}])


def oracle_deletes(world: World, dr_tag: str) -> set[str]:
    """What restic retention under the DR tag's keep- words removes from the available, un-held copies."""
    words = " ".join(w for w in dr_tag.split() if not w.startswith("to="))
    candidates = [
        s for s in world.west.snapshots() if s.tags.get(DR_MARKER) and s.status == "available" and HOLD not in s.tags
    ]
    plan = plan_retention(parse_policy(words), candidates, key=slot_of)
    return {s.id for s in plan.remove}


def slot_of(copy: Any) -> datetime:
    return datetime.fromisoformat(copy.tags["snapshot-scheduler:slot"])


def first_copy_under(world: World, spec: str) -> datetime | None:
    """When the DR region says the first copy recording `spec` was made (the grace starts there)."""
    times = [s.created for s in world.west.snapshots() if s.tags.get(DR_POLICY) == spec and s.created is not None]
    return min(times, default=None)


def pending(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["snapshot"]: entry for entry in report["dr"]["pending"]}


def deleted(report: dict[str, Any]) -> set[str]:
    return {entry["snapshot"] for entry in report["dr"]["deleted"]}


def test_a_dr_tag_changed_to_keep_fewer_deletes_no_copy_for_the_grace_reports_them_pending_then_prunes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given copies kept by keep-daily=7 keep-monthly=12, and the DR tag changed to keep-daily=1
    world = copied_world()
    retag(world, NEW)
    held = copy_name("orders", MONTH_ENDS[1])
    grace_ends: datetime | None = None
    pruned: set[str] = set()

    with world.handler() as handler:
        # When the hourly runs go on for two and a half days (someone holds one copy on the way)
        for at in (START + n * HOUR for n in range(60)):
            world.clock.advance_to(at)  # type: ignore[attr-defined]  # what the run will see
            if at == START + 12 * HOUR:
                hold(world, held)
            would_delete = oracle_deletes(world, NEW)
            first = first_copy_under(world, NEW_SPEC)  # what the run sees
            if grace_ends is None and first is not None:
                grace_ends = first + 24 * HOUR
            report = handler.run(at)
            metrics = metric_values(capsys)[-1]
            if grace_ends is None or at < grace_ends:
                # Then until 24 hours after the first copy under the new policy no copy is deleted: each
                # one keep-daily=1 wants gone waits, reported with the policy that deletes it and the one
                # that keeps it, and counted in DeletionsPending
                assert deleted(report) == set(), at
                assert set(pending(report)) == would_delete, at
                assert would_delete >= HISTORY - {held}, at
                for entry in pending(report).values():
                    assert (entry["cluster"], entry["region"], entry["target"]) == ("orders", WEST, "dr-west")
                    assert (entry["policy"], entry["kept_by"]) == (NEW_SPEC, OLD_SPEC), entry
                    if grace_ends is not None:
                        assert entry["deletable_after"] == grace_ends.isoformat(), entry
                assert metrics["DeletionsPending"] == len(would_delete), at
                assert metrics["MassDeletions"] == 0, at
            elif not pruned:
                # Then the first run after the grace deletes them all, and it is a mass deletion
                pruned = deleted(report)
                assert pruned == would_delete and pruned >= HISTORY - {held}, at
                assert report["dr"]["pending"] == [] and metrics["DeletionsPending"] == 0
                assert report["dr"]["mass_deletions"] == [f"orders/{WEST}"]
                assert metrics["MassDeletions"] == 1
            else:
                # ... and after it, ordinary retention of keep-daily=1 goes on at once
                assert report["dr"]["pending"] == [] and deleted(report) == would_delete, at

    assert grace_ends is not None and pruned
    assert held in world.copies()  # the held copy outlived the change


def test_restoring_the_dr_tag_within_the_grace_keeps_every_copy_the_old_policy_keeps() -> None:
    # Given the DR tag changed to keep-daily=1, and a copy made under it
    world = copied_world()
    retag(world, NEW)
    with world.handler() as handler:
        first = [handler.run(START), handler.run(START + HOUR)]
        # When someone notices and restores the tag, and the runs go on for two days
        retag(world, OLD)
        later = [handler.run(START + n * HOUR) for n in range(2, 50)]

    # Then no copy the old policy keeps was ever deleted
    rolled_off = {copy_name("orders", DAYS[-1]), copy_name("orders", DAYS[-2])}  # keep-daily=7 moves on
    assert all(deleted(report) == set() for report in first)
    assert all(deleted(report) <= rolled_off for report in later)
    assert HISTORY - rolled_off <= set(world.copies())
    assert set(world.copies()) >= {copy_name("orders", SLOT), copy_name("orders", SLOT + DAY)}
