"""planning.fresh_slots: which clusters a run may snapshot before it has read the snapshot listing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler.model import Cluster
from snapshot_scheduler.planning import PolicyContext, fresh_slots

TAG = "snapshot-policy"
CONTEXT = PolicyContext(
    TAG, "prod", {"nightly": "every=1d at=01:30 keep-last=3"}, "03:00", "UTC", frozenset({"aurora-postgresql"})
)
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def cluster(
    name: str, policy: str | None = "every=1d keep-last=2", *, status: str = "available", **more: str
) -> Cluster:
    tags = {**({TAG: policy} if policy is not None else {}), **more}
    return Cluster(name, f"arn:aws:rds:eu-west-1:1:cluster:{name}", "aurora-postgresql", status, tags)


def fresh(
    *clusters: Cluster, at: datetime = SLOT, now: datetime | None = None, interval: timedelta = HOUR
) -> dict[str, str]:
    plans = fresh_slots(CONTEXT, clusters, at, now or at, interval)
    return {plan.cluster_id: plan.create or "" for plan in plans}


def test_a_cluster_whose_slot_began_since_the_previous_run_is_fresh_with_its_slots_identifier() -> None:
    assert fresh(cluster("orders"), at=SLOT + 59 * timedelta(minutes=1)) == {"orders": "orders-20260310-0300"}


@pytest.mark.parametrize(
    ("at", "interval"),
    [(SLOT + HOUR, HOUR), (SLOT + 2 * HOUR, HOUR), (SLOT + 3 * HOUR, 2 * HOUR)],
    ids=["one-run-later", "two-runs-later", "a-longer-interval"],
)
def test_a_slot_an_earlier_run_could_have_taken_is_left_to_the_plan(at: datetime, interval: timedelta) -> None:
    assert fresh(cluster("orders"), at=at, interval=interval) == {}


@pytest.mark.parametrize(
    "odd",
    [
        cluster("stopped", status="stopped"),
        cluster("modifying", status="modifying"),  # tried by the plan, with its busy retries
        cluster("off", "off"),
        cluster("untagged", None),
        cluster("broken", "every=1d keep-lots=2"),
        cluster("misspelt", None, **{"Snapshot-Policy": "every=1d keep-last=2"}),
    ],
    ids=lambda c: c.id,
)
def test_a_cluster_the_plan_would_not_snapshot_or_must_report_is_not_fresh(odd: Cluster) -> None:
    assert fresh(odd, cluster("orders")) == {"orders": "orders-20260310-0300"}


def test_an_engine_the_deployment_does_not_manage_is_not_fresh() -> None:
    mysql = Cluster("legacy", "arn", "mysql", "available", {TAG: "every=1d keep-last=2"})
    assert fresh(mysql) == {}


def test_a_stale_event_is_not_fresh_and_a_named_policy_is_read_as_the_plan_reads_it() -> None:
    # delivered after its slot passed (the 04:00 slot of an hourly policy has begun): never back-filled
    assert fresh(cluster("hourly", "every=1h keep-last=2"), at=SLOT, now=SLOT + HOUR) == {}
    nightly = SLOT.replace(hour=1, minute=30)
    assert fresh(cluster("orders", "nightly"), at=nightly) == {"orders": "orders-20260310-0130"}


def test_a_slot_the_spring_jump_shifts_is_fresh_at_its_shifted_instant() -> None:
    # 02:30 New York does not exist on 2026-03-08: the slot is 03:30 EDT, 07:30 UTC
    policy = "every=1d at=02:30 tz=America/New_York keep-last=2"
    shifted = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert fresh(cluster("orders", policy), at=shifted) == {"orders": "orders-20260308-0730"}
    assert fresh(cluster("orders", policy), at=shifted - timedelta(minutes=1)) == {}  # the day before's slot


def test_a_cluster_listed_twice_is_fresh_once() -> None:
    assert fresh(cluster("orders"), cluster("orders")) == {"orders": "orders-20260310-0300"}
