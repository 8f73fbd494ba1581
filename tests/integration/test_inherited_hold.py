"""A cluster that copies its tags to snapshots and carries a hold tag (issue 9 item 8), through the real
handler: where RDS authorises inherited tags as AddTagsToResource, the stack's hold deny refuses every create.
The run must say why, name the cluster's tag and what to do, and leave the rest of the fleet untouched."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.scenario import (
    HOLD,
    TAG,
    created,
    fresh_rds,
    layer,
    metric_values,
    moto_once,
    seed_ours,
    slot_id,
    snapshot_ids,
)
from tests.support.harness import scheduled_lambda

START = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)
LONG_AGO = START - timedelta(days=60)
KEEP_LAST_1 = "every=1d keep-last=1"


@pytest.fixture(autouse=True)
def empty_rds() -> Iterator[None]:
    with moto_once():
        fresh_rds()
        yield


def test_a_hold_tag_inherited_through_copy_tags_fails_with_its_reason_and_spares_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a cluster that copies tags to snapshots and carries snapshot-hold=true, with yesterday's
    # snapshot of ours, beside a plain cluster
    fidelity = layer(START)
    fidelity.create_cluster(
        "orders", tags={TAG: KEEP_LAST_1, HOLD: "true"}, copy_tags_to_snapshot=True, created=LONG_AGO
    )
    fidelity.create_cluster("billing", tags={TAG: KEEP_LAST_1}, created=LONG_AGO)
    yesterday = seed_ours(fidelity, "orders", START - timedelta(days=1), KEEP_LAST_1)

    # When the scheduled run comes
    with scheduled_lambda(fidelity) as handler:
        capsys.readouterr()
        report = handler.run(START)

    # Then the other cluster gets its snapshot, and orders fails with a reason naming its tag and the way out
    assert created(report) == {"billing": slot_id("billing", START)}
    (failure,) = report["failed"]
    assert failure["cluster"] == "orders"
    assert failure["error"] == "HoldTagInherited"
    assert "snapshot-hold='true'" in failure["message"]
    assert "CopyTagsToSnapshot" in failure["message"]
    assert "remove snapshot-hold from the cluster" in failure["message"]
    # and nothing of orders is lost: yesterday's snapshot stays, no half-made one appears
    assert snapshot_ids(fidelity, "orders") == {yesterday}
    assert metric_values(capsys)[-1]["SnapshotsFailed"] == 1
    assert fidelity.faults["AccessDenied"] == 1


def test_without_copy_tags_a_cluster_hold_is_not_passed_on(capsys: pytest.CaptureFixture[str]) -> None:
    # Given the same hold tag on a cluster that does not copy its tags to snapshots
    fidelity = layer(START)
    fidelity.create_cluster("orders", tags={TAG: KEEP_LAST_1, HOLD: "true"}, created=LONG_AGO)

    # When the run comes, Then the snapshot is made and carries no hold (the engine never passes one on)
    with scheduled_lambda(fidelity) as handler:
        report = handler.run(START)

    assert created(report) == {"orders": slot_id("orders", START)}
    (snapshot,) = fidelity.snapshots("orders")
    assert HOLD not in snapshot.tags
