"""The demo's world: a month, a fleet of sample clusters with different policy tags, and what happens to it.

Everything here is data; `simulate.py` plays it. Change the fleet or the events here to try other cases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from tests.support.harness import DEFAULT_ENV

# A month that crosses the end of daylight-saving time in Europe (Oct 25) and North America (Nov 1).
START = datetime(2026, 10, 12, 0, 0, tzinfo=UTC)
DAYS = 30
RUN_EVERY = timedelta(hours=1)  # the stack's default schedule: rate(1 hour)

DEPLOYMENT = "demo"
TAG_KEY = "snapshot-policy"
NAMED_POLICIES: Mapping[str, str] = {"tier1": "every=4h keep-last=6 keep-daily=14"}

QUOTA = 100  # manual cluster snapshots in the account (the RDS default)
SNAPSHOT_CREATING_FOR = timedelta(minutes=20)  # how long a new snapshot stays `creating`
THROTTLE_PROBABILITY = 0.01  # a call now and then answered `Throttling` (botocore retries it)
API_LATENCY = 0.05  # simulated seconds per RDS call

# Disaster-recovery copies: other regions of the same account, on the same moto_server and clock, each behind
# its own fidelity layer (its own quota, rate limit, pagination, 5 copies in flight, KMS keys).
REGION = "us-east-1"  # where the function runs
DR_TAG_KEY = "snapshot-dr"
# No kmsKey: the unencrypted clusters are copied, an encrypted one is skipped (`kms`) until a key of the
# region is configured.
REGION_TARGETS: Mapping[str, Mapping[str, str]] = {"dr-west": {"region": "us-west-2"}}
DR_COPYING_FOR = timedelta(hours=2)  # how long a copy stays `copying` (RDS: hours, depending on size)

# A vault in another account (the same moto_server, another account's backend, the same clock): production
# shares one snapshot a day of each cluster tagged `to=vault` with it and takes the share back after
# SHARE_HOURS; the vault deployment (the same app with SNAPSHOT_VAULT) copies what is shared into its own
# account and region and keeps the copies by its own policy.
ACCOUNT = "123456789012"  # production (moto's default account)
VAULT_ACCOUNT = "222222222222"
VAULT_REGION = "eu-central-1"
VAULT_DEPLOYMENT = "demo-vault"
VAULT_POLICY = "every=1d keep-daily=7 keep-weekly=4"
VAULT_RUN_EVERY = timedelta(hours=3)  # its own schedule (hourly would double the demo's time)
VAULT_RUNS_AT = timedelta(minutes=30)  # past the hour
VAULT_COPYING_FOR = timedelta(hours=2)
SHARE_HOURS = 72
VAULT_TARGET = "vault"
DR_TARGETS: Mapping[str, Mapping[str, str | int]] = {
    **REGION_TARGETS,
    VAULT_TARGET: {"account": VAULT_ACCOUNT, "region": VAULT_REGION, "shareHours": SHARE_HOURS},
}
# After the month's last run someone with administrator rights in the production account (a compromised role,
# a script gone wrong) deletes every manual snapshot it can, in every region. The vault runs on for a day.
WIPE_AFTER_END = timedelta(minutes=45)
VAULT_RUNS_AFTER_WIPE = 8  # a day


@dataclass(frozen=True)
class SampleCluster:
    id: str
    engine: str
    policy: str | None  # the snapshot-policy tag's value; None: no tag
    story: str
    tags: Mapping[str, str] = field(default_factory=dict)
    dr: str | None = None  # the snapshot-dr tag's value; None: no copies to other regions
    encrypted: bool = False

    def all_tags(self) -> dict[str, str]:
        policy = {TAG_KEY: self.policy} if self.policy is not None else {}
        dr = {DR_TAG_KEY: self.dr} if self.dr is not None else {}
        return {**policy, **dr, **self.tags}


FLEET: tuple[SampleCluster, ...] = (
    SampleCluster(
        "orders",
        "aurora-postgresql",
        "hourly",
        "preset: hourly snapshots, a day of hours and a week of days; a copy a day to dr-west, one a day shared "
        "with the vault",
        dr="to=dr-west+vault keep-daily=7",
    ),
    SampleCluster(
        "billing",
        "aurora-mysql",
        "daily",
        "preset: one snapshot a day, a week kept; each shared with the vault",
        dr="to=vault",
    ),
    SampleCluster(
        "ledger",
        "aurora-postgresql",
        "gfs",
        "preset: grandfather-father-son (days, weeks, months, years); a copy a day to dr-west",
        dr="to=dr-west keep-daily=3 keep-weekly=2",
    ),
    SampleCluster(
        "analytics",
        "aurora-mysql",
        "every=1w on=fri at=18:30 tz=America/New_York keep-weekly=4 keep-monthly=3",
        "inline weekly policy in New York time: 18:30 EDT is 22:30 UTC until Nov 1, 18:30 EST is 23:30 UTC after",
        tags={"team": "data"},
    ),
    SampleCluster(
        "payments",
        "aurora-postgresql",
        "tier1",
        "named policy from the deployment's configuration; encrypted, tagged for dr-west, which has no KMS key",
        dr="to=dr-west keep-daily=7",
        encrypted=True,
    ),
    SampleCluster(
        "reports",
        "aurora-postgresql",
        "every=1d at=02:00 keep-daily=7",
        "busy now and then: backups and a maintenance window get in the way",
    ),
    SampleCluster("legacy", "aurora-mysql", "daily,7", "malformed tag: skipped every run, nothing deleted"),
    SampleCluster("scratch", "aurora-postgresql", None, "no tag: never touched (its hand-made snapshots use quota)"),
)

# Hand-made snapshots of `scratch`, taken before the month starts: not ours, never touched, but they count
# against the account's quota.
HAND_MADE = 10


@dataclass(frozen=True)
class Busy:
    """The cluster refuses snapshots (InvalidDBClusterStateFault) from `at`: for `attempts` tries, or
    showing `status` for `lasting`."""

    cluster: str
    at: datetime
    attempts: int | None = None
    status: str | None = None
    lasting: timedelta | None = None
    story: str = ""


@dataclass(frozen=True)
class Hold:
    """An operator tags one snapshot snapshot-hold=true: it is kept whatever the policy says."""

    cluster: str
    slot: datetime
    at: datetime
    story: str = ""


BUSY: tuple[Busy, ...] = (
    Busy("reports", START + timedelta(days=3, hours=1, minutes=50), attempts=2, story="a backup overlaps the slot"),
    Busy(
        "reports",
        START + timedelta(days=9, hours=1, minutes=45),
        status="maintenance",
        lasting=timedelta(hours=2, minutes=30),
        story="a maintenance window runs past two scheduled runs",
    ),
    Busy("reports", START + timedelta(days=20, hours=1, minutes=50), attempts=4, story="a long backup"),
)

HOLDS: tuple[Hold, ...] = (
    Hold(
        "orders",
        slot=START + timedelta(days=6, hours=14),
        at=START + timedelta(days=6, hours=16),
        story="an operator keeps the snapshot taken before a risky migration",
    ),
)


@dataclass(frozen=True)
class HandMade:
    """Someone takes `count` manual snapshots of `cluster` at `at` and deletes them at `removed_at`."""

    cluster: str
    count: int
    at: datetime
    removed_at: datetime
    story: str = ""


HAND_MADE_LATER: tuple[HandMade, ...] = (
    HandMade(
        "scratch",
        count=12,
        at=START + timedelta(days=21, hours=9, minutes=30),
        removed_at=START + timedelta(days=22, hours=5, minutes=30),
        story="a teammate's snapshots before an upgrade fill the account's quota",
    ),
)


@dataclass(frozen=True)
class TeammateCopies:
    """Someone copies `count` of scratch's hand-made snapshots to `region` at `at`: while they copy they take
    places among the 5 copies RDS allows in flight to that region."""

    region: str
    count: int
    at: datetime
    story: str = ""


TEAMMATE_COPIES: tuple[TeammateCopies, ...] = (
    TeammateCopies(
        "us-west-2",
        count=4,
        at=START + timedelta(days=14, hours=3, minutes=30),
        story="a teammate copies scratch's snapshots to us-west-2 before the DR run: one place of 5 is left",
    ),
)

# When the report shows what `snapshot-scheduler status` says of the copies: while the copy limit holds one back.
DR_LOOK_AT = TEAMMATE_COPIES[0].at + timedelta(hours=1, minutes=40)


def function_environment() -> dict[str, str]:
    """The function's environment as the stack sets it (its defaults), for this deployment.

    Powertools reads some of it (the metric namespace, the service name) when the package is imported,
    so the demo sets it before importing the engine."""
    return {
        **DEFAULT_ENV,
        "SNAPSHOT_POLICY_TAG_KEY": TAG_KEY,
        "SNAPSHOT_DEPLOYMENT": DEPLOYMENT,
        "SNAPSHOT_NAMED_POLICIES": json.dumps(dict(NAMED_POLICIES)),
        "SNAPSHOT_DR_TARGETS": json.dumps({name: dict(target) for name, target in DR_TARGETS.items()}),
        "SNAPSHOT_DR_TAG_KEY": DR_TAG_KEY,
    }


def vault_environment() -> dict[str, str]:
    """The vault deployment's function: the same app in the vault account and region, SNAPSHOT_VAULT set."""
    vault = {
        "sources": [{"account": ACCOUNT, "regions": [REGION], "deployment": DEPLOYMENT}],
        "policy": VAULT_POLICY,
    }
    return {
        **function_environment(),
        "SNAPSHOT_DEPLOYMENT": VAULT_DEPLOYMENT,
        "SNAPSHOT_DR_TARGETS": "{}",
        "SNAPSHOT_VAULT": json.dumps(vault),
        "AWS_DEFAULT_REGION": VAULT_REGION,
        "AWS_REGION": VAULT_REGION,
    }


def aws_environment(endpoint: str) -> dict[str, str]:
    """A local AWS with dummy credentials: nothing the demo does can reach a real account."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
