"""Helpers for the integration tier: a fleet on the fidelity layer, snapshots as this service writes them,
what exists afterwards, and the EMF blob the real handler prints.

Expectations here are computed by hand (identifiers, tags) so the tests do not take the engine's word for
what it should have done; only `parse_policy` and `plan_retention` (pure, unit-tested against restic) are
borrowed from the engine, as the oracle for retention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from snapshot_scheduler import observability

from tests.support.emf import emf_blobs
from tests.support.fidelity import RdsFidelity, SimClock, SnapshotView, TokenBucket
from tests.support.harness import DEFAULT_ENV, moto_rds

DEPLOYMENT = DEFAULT_ENV["SNAPSHOT_DEPLOYMENT"]
TAG = DEFAULT_ENV["SNAPSHOT_POLICY_TAG_KEY"]

# The tag contract (contracts.md), spelled out rather than imported, so a renamed key fails here.
MARKER = "snapshot-scheduler:deployment"
POLICY = "snapshot-scheduler:policy"
SLOT = "snapshot-scheduler:slot"
CLUSTER = "snapshot-scheduler:cluster"
HOLD = "snapshot-hold"


@contextmanager
def moto_once() -> Iterator[None]:
    """moto in-process for a module; each test calls `fresh_rds()` for an empty RDS."""
    with moto_rds():
        yield


def fresh_rds() -> None:
    from moto.rds.models import rds_backends  # noqa: PLC0415 - only once moto is active

    rds_backends.reset()
    observability.metrics.clear_default_dimensions()  # then a container of any deployment may start
    observability.metrics.clear_metrics()


def layer(start: datetime, **options: Any) -> RdsFidelity:
    """A fidelity layer on a simulated clock at `start`; the RDS token bucket and quota unless told."""
    options.setdefault("clock", SimClock(start))
    options.setdefault("bucket", TokenBucket())
    fidelity = RdsFidelity(**options)
    # The layer learns which moto to talk to from the first client attached; the fleet is built before
    # the handler builds its own client.
    from tests.support.harness import rds_client  # noqa: PLC0415

    rds_client(fidelity)
    return fidelity


def slot_id(cluster: str, slot: datetime) -> str:
    """Our identifier for a (short) cluster id and a slot, by hand: `<cluster>-YYYYMMDD-HHMM` in UTC."""
    return f"{cluster}-{slot.astimezone(UTC):%Y%m%d-%H%M}"


def our_tags(cluster: str, slot: datetime, policy: str, *, deployment: str = DEPLOYMENT) -> dict[str, str]:
    return {MARKER: deployment, POLICY: policy, SLOT: slot.astimezone(UTC).isoformat(), CLUSTER: cluster}


def seed_ours(
    fidelity: RdsFidelity,
    cluster: str,
    slot: datetime,
    policy: str,
    *,
    deployment: str = DEPLOYMENT,
    identifier: str | None = None,
    creating_until: datetime | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """A snapshot as this service (or another deployment of it) would have made it for `slot`."""
    return fidelity.seed_snapshot(
        cluster,
        identifier or slot_id(cluster, slot),
        created=slot,
        tags={**our_tags(cluster, slot, policy, deployment=deployment), **(extra or {})},
        creating_until=creating_until,
    )


def snapshot_ids(fidelity: RdsFidelity, cluster: str | None = None, *, deployment: str | None = None) -> set[str]:
    """Manual snapshots that exist now (of one cluster, or carrying one deployment's marker)."""
    return {
        s.id
        for s in fidelity.snapshots(cluster)
        if deployment is None or (s.tags.get(MARKER) == deployment and ":" not in s.id)
    }


def everything(fidelity: RdsFidelity) -> dict[str, SnapshotView]:
    """Every cluster snapshot, manual and automated, by identifier."""
    return {s.id: s for s in fidelity.snapshots(snapshot_type=None)}


def created(report: Mapping[str, Any]) -> dict[str, str]:
    """cluster -> snapshot identifier created in a run (asserting one per cluster)."""
    pairs = [(entry["cluster"], entry["snapshot"]) for entry in report["created"]]
    assert len({cluster for cluster, _ in pairs}) == len(pairs), f"a cluster got two snapshots in one run: {pairs}"
    return dict(pairs)


def deleted(report: Mapping[str, Any]) -> set[str]:
    return {entry["snapshot"] for entry in report["deleted"]}


def reasons(report: Mapping[str, Any], kind: str) -> dict[str, str]:
    """cluster -> reason code under `deferred` or `skipped`."""
    return {entry["cluster"]: entry["code"] for entry in report[kind]}


def metric_values(capsys: pytest.CaptureFixture[str]) -> list[dict[str, float]]:
    """Each run's metrics, in order, from the EMF blobs printed since the last read."""
    runs = []
    for blob in emf_blobs(capsys.readouterr().out):
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        values = {}
        for definition in directive["Metrics"]:
            points = blob[definition["Name"]]
            (values[definition["Name"]],) = points if isinstance(points, list) else [points]
        runs.append(values)
    return runs


def hours(start: datetime, count: int, step: timedelta = timedelta(hours=1)) -> Iterable[datetime]:
    return (start + n * step for n in range(count))
