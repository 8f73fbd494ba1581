"""A vault's decisions, purely: which shared snapshots count, the copies to start, the in-flight budget, the
retention of the vault's copies with every safety rule and minRetentionDays, failed and stuck copies, each
source's recovery point and silence.

Given the listing of snapshots shared with the vault and one sweep of its own, when a vault run is planned,
then the copies to start, defer, keep and delete are what an operator expects. Identifiers and tags are
written out by hand here, not taken from the engine.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from snapshot_scheduler.model import Quota, Reason, Snapshot
from snapshot_scheduler.vault import Vault, VaultContext, VaultPlan, parse_vault, plan_vault

DEPLOYMENT = "vault"
VAULT_REGION = "eu-central-1"
PROD, STAGING, STRANGER = "111111111111", "333333333333", "999999999999"
EU, US = "eu-west-1", "us-east-1"
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)  # the vault policy's slot and the source's, both daily at 03:00
POLICY = "every=1d keep-daily=3"
SPEC = "every=1d at=03:00 tz=UTC keep-daily=3"


def vault(policy: str = POLICY, **extra: object) -> Vault:
    sources = [{"account": PROD, "regions": [EU, US]}, {"account": STAGING, "regions": [EU]}]
    return parse_vault({"sources": sources, "policy": policy, **extra})


def context(**extra: object) -> VaultContext:
    return VaultContext(DEPLOYMENT, VAULT_REGION, vault(**extra))  # type: ignore[arg-type]


def source_hash(account: str, region: str) -> str:
    return hashlib.sha256(f"{account}:{region}".encode()).hexdigest()[:8]


def shared(
    name: str,
    cluster: str,
    *,
    account: str = PROD,
    region: str = EU,
    created: datetime | None = None,
    encrypted: bool = False,
    status: str = "available",
) -> Snapshot:
    """A snapshot shared with the vault as the listing shows it: its ARN names the owner; no tags."""
    arn = f"arn:aws:rds:{region}:{account}:cluster-snapshot:{name}"
    stamp = created or datetime.strptime(name[-13:], "%Y%m%d-%H%M").replace(tzinfo=UTC) + timedelta(minutes=5)
    return Snapshot(arn, cluster, arn, status, "shared", stamp, {}, encrypted=encrypted)


def daily_share(cluster: str, slot: datetime, **kwargs: object) -> Snapshot:
    return shared(f"{cluster}-{slot:%Y%m%d-%H%M}", cluster, **kwargs)  # type: ignore[arg-type]


def copy_of(
    cluster: str,
    slot: datetime,
    *,
    account: str = PROD,
    region: str = EU,
    status: str = "available",
    created: datetime | None = None,
    extra_tags: dict[str, str] | None = None,
    marker: str = DEPLOYMENT,
    name: str | None = None,
    source_account: str | None = None,
) -> Snapshot:
    ident = name or f"{cluster}-{slot:%Y%m%d-%H%M}-v{source_hash(account, region)}"
    tags = {
        "snapshot-scheduler:vault-deployment": marker,
        "snapshot-scheduler:vault-source-account": account,
        "snapshot-scheduler:vault-source-region": region,
        "snapshot-scheduler:cluster": cluster,
        "snapshot-scheduler:slot": slot.isoformat(),
        "snapshot-scheduler:vault-policy": SPEC,
        **(extra_tags or {}),
    }
    source = f"arn:aws:rds:{region}:{source_account or account}:cluster-snapshot:{cluster}-{slot:%Y%m%d-%H%M}"
    arn = f"arn:aws:rds:{VAULT_REGION}:222222222222:cluster-snapshot:{ident}"
    return Snapshot(ident, cluster, arn, status, "manual", created or slot + timedelta(hours=2), tags, source)


def plan(
    shares: list[Snapshot],
    own: list[Snapshot] | None = None,
    *,
    ctx: VaultContext | None = None,
    now: datetime = NOW,
    quota: Quota | None = None,
) -> VaultPlan:
    return plan_vault(ctx or context(), shares, own or [], now=now, quota=quota)


def started(result: VaultPlan) -> list[str]:
    return [c.identifier for c in result.starting]


def deleted(result: VaultPlan) -> set[str]:
    return {s.id for g in result.groups for s in g.delete}


# ------------------------------------------------------------------------------------------ configuration


def test_the_documented_vault_setting_reads_whole() -> None:
    loaded = {
        "sources": [{"account": PROD, "regions": [EU], "deployment": "SnapshotScheduler"}],
        "policy": "every=1d keep-daily=14 keep-weekly=8 keep-monthly=24",
        "kmsKey": "alias/snapshot-vault",
        "minRetentionDays": 7,
        "sharesExpectedHours": 36,
    }

    parsed = parse_vault(loaded, at="02:00", tz="Europe/Berlin")

    assert parsed.sources[0].account == PROD and parsed.sources[0].regions == (EU,)
    assert parsed.policy.spec() == "every=1d at=02:00 tz=Europe/Berlin keep-daily=14 keep-weekly=8 keep-monthly=24"
    assert parsed.kms_key == "alias/snapshot-vault"
    assert parsed.min_retention == timedelta(days=7)
    assert parsed.shares_expected == timedelta(hours=36)


def test_min_retention_defaults_to_none_and_shares_are_expected_within_twice_the_interval_and_12_hours() -> None:
    parsed = parse_vault({"sources": [{"account": PROD, "regions": [EU]}], "policy": "every=6h keep-last=10"})

    assert parsed.min_retention == timedelta(0)
    assert parsed.shares_expected == timedelta(hours=24)
    assert parsed.kms_key is None


@pytest.mark.parametrize(
    ("loaded", "says"),
    [
        ([], "expected an object"),
        ({"policy": POLICY}, "sources: expected a non-empty list"),
        ({"sources": [], "policy": POLICY}, "sources: expected a non-empty list"),
        ({"sources": [{"account": 111111111111, "regions": [EU]}], "policy": POLICY}, "12-digit"),
        ({"sources": [{"account": "11111111111", "regions": [EU]}], "policy": POLICY}, "12-digit"),
        ({"sources": [{"account": PROD, "regions": []}], "policy": POLICY}, "regions"),
        ({"sources": [{"account": PROD, "regions": ["eu_west_1"]}], "policy": POLICY}, "regions"),
        ({"sources": [{"account": PROD, "regions": [EU, EU]}], "policy": POLICY}, "regions"),
        ({"sources": [{"account": PROD, "regions": ["us-west-2\n"]}], "policy": POLICY}, "regions"),
        ({"sources": [{"account": PROD + "\n", "regions": [EU]}], "policy": POLICY}, "12-digit"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "kmsKey": "alias/k\n"}, "kmsKey"),
        (
            {"sources": [{"account": PROD, "regions": [EU]}, {"account": PROD, "regions": [US]}], "policy": POLICY},
            "twice",
        ),
        ({"sources": [{"account": PROD, "regions": [EU], "role": "x"}], "policy": POLICY}, "unknown key 'role'"),
        ({"sources": [{"account": PROD, "regions": [EU], "deployment": "a\tb"}], "policy": POLICY}, "deployment"),
        ({"sources": [{"account": PROD, "regions": [EU]}]}, "policy None"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": "every=1d"}, "keeps nothing"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": "gold"}, "unknown policy name"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "kmsKey": "my key"}, "kmsKey"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "minRetentionDays": -1}, "0 to 3650"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "minRetentionDays": True}, "0 to 3650"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "minRetentionDays": 7.5}, "0 to 3650"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "sharesExpectedHours": 0}, "1 to 8760"),
        ({"sources": [{"account": PROD, "regions": [EU]}], "policy": POLICY, "keepForever": True}, "unknown key"),
    ],
)
def test_a_bad_vault_setting_names_the_key_the_value_and_what_is_allowed(loaded: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_vault(loaded)


# ------------------------------------------------------------------------------------- which shares count


def test_the_newest_share_of_a_configured_source_is_copied_with_the_vaults_tags() -> None:
    result = plan([daily_share("orders", SLOT)])

    (job,) = result.starting
    assert job.identifier == f"orders-20260310-0300-v{source_hash(PROD, EU)}"
    assert job.share.arn == f"arn:aws:rds:{EU}:{PROD}:cluster-snapshot:orders-20260310-0300"
    assert job.kms_key is None
    assert dict(job.tags) == {
        "snapshot-scheduler:vault-deployment": DEPLOYMENT,
        "snapshot-scheduler:vault-source-account": PROD,
        "snapshot-scheduler:vault-source-region": EU,
        "snapshot-scheduler:cluster": "orders",
        "snapshot-scheduler:slot": "2026-03-10T03:00:00+00:00",
        "snapshot-scheduler:vault-policy": SPEC,
    }
    assert result.counted == 1 and not result.ignored


def test_shares_from_accounts_or_regions_not_configured_are_ignored_and_counted() -> None:
    result = plan(
        [
            daily_share("orders", SLOT, account=STRANGER),
            daily_share("orders", SLOT, account=STAGING, region=US),  # STAGING shares from eu-west-1 only
        ]
    )

    assert started(result) == []
    assert {i.reason for i in result.ignored} == {
        f"account {STAGING} in {US} is not a configured source",
        f"account {STRANGER} in {EU} is not a configured source",
    }


@pytest.mark.parametrize(
    ("name", "cluster"),
    [
        ("orders-final", "orders"),  # no slot
        ("orders-20260310-0300-manual", "orders"),  # a slot, not at the end
        ("orders-20260310-0300", "billing"),  # another cluster's name
        ("orders-20260310-0300-dr-euwest1", "orders"),  # the source's DR copy
        ("orders-20260230-0300", "orders"),  # no such day
        ("rds:orders-2026-03-10-03-00", "orders"),  # an automated snapshot's name
    ],
)
def test_shares_whose_identifier_is_not_the_sources_slot_name_are_ignored(name: str, cluster: str) -> None:
    share = shared(name, cluster, created=NOW - timedelta(hours=1))

    result = plan([share])

    assert started(result) == []
    assert len(result.ignored) == 1 and result.counted == 0


def test_a_share_named_for_a_slot_after_its_creation_or_after_now_is_ignored() -> None:
    tomorrow = daily_share("orders", SLOT + DAY, created=NOW)
    backdated = shared("billing-20260310-0300", "billing", created=SLOT - timedelta(hours=5))

    result = plan([tomorrow, backdated])

    assert started(result) == []
    assert all("later than its creation or this run" in i.reason for i in result.ignored)


def test_a_cluster_id_shortened_with_a_hash_is_recognised_and_its_copy_fits_63_characters() -> None:
    cluster = "analytics-warehouse-primary-eu-central-1-production-cluster-x"  # 61 characters
    head = cluster[: 63 - 14 - 8 - 1].rstrip("-")  # the source's rule, written out: cut, then a hash of the whole
    name = f"{head}-{hashlib.sha256(cluster.encode()).hexdigest()[:8]}-20260310-0300"

    result = plan([shared(name, cluster)])

    (job,) = result.starting
    assert len(name) == 63 and len(job.identifier) <= 63
    assert job.identifier.endswith(f"-20260310-0300-v{source_hash(PROD, EU)}")
    assert job.tags["snapshot-scheduler:cluster"] == cluster


def test_two_sources_with_a_cluster_of_the_same_name_get_a_copy_each() -> None:
    result = plan([daily_share("orders", SLOT), daily_share("orders", SLOT, account=STAGING)])

    assert sorted(started(result)) == sorted(
        [f"orders-20260310-0300-v{source_hash(PROD, EU)}", f"orders-20260310-0300-v{source_hash(STAGING, EU)}"]
    )
    assert {(g.account, g.cluster_id) for g in result.groups} == {(PROD, "orders"), (STAGING, "orders")}


def test_a_share_listed_twice_counts_once() -> None:
    share = daily_share("orders", SLOT)

    result = plan([share, share])

    assert len(started(result)) == 1 and result.counted == 1


# ------------------------------------------------------------------------------------------ copies wanted


def test_the_newest_share_within_each_vault_slot_is_the_one_copied() -> None:
    shares = [daily_share("orders", SLOT + timedelta(hours=h)) for h in (-3, 0, 6, 12)]  # 00:00 .. 15:00

    result = plan(shares, now=SLOT + timedelta(hours=13))

    assert [(j.identifier.rsplit("-", 1)[0], j.share.arn.rsplit(":", 1)[1]) for j in result.starting] == [
        ("orders-20260310-0300", "orders-20260310-1500"),  # the vault's 03:00 slot: the newest share in it
        ("orders-20260309-0300", "orders-20260310-0000"),  # the vault's slot of the day before
    ]


def test_shares_older_than_the_vault_policy_keeps_are_not_copied() -> None:
    shares = [daily_share("orders", SLOT - n * DAY) for n in range(10)]  # the source shares 10 days

    result = plan(shares)

    assert [j.slot for j in result.starting] == [SLOT, SLOT - DAY, SLOT - 2 * DAY]  # keep-daily=3
    assert not deleted(result)


def test_a_slot_already_copied_or_copying_is_not_copied_again() -> None:
    shares = [daily_share("orders", SLOT), daily_share("orders", SLOT - DAY)]
    own = [copy_of("orders", SLOT, status="copying"), copy_of("orders", SLOT - DAY)]

    assert started(plan(shares, own)) == []


def test_a_failed_copy_is_deleted_and_reported_and_its_slot_waits_for_the_next_run() -> None:
    failed = copy_of("orders", SLOT, status="failed")

    result = plan([daily_share("orders", SLOT)], [failed])

    (group,) = result.groups
    assert group.failed == (failed,) and failed in group.delete
    assert started(result) == []
    assert started(plan([daily_share("orders", SLOT)], [])) == [failed.id]  # the next run, still shared


def test_a_snapshot_not_ours_holding_the_copy_identifier_fails_the_copy() -> None:
    squatter = copy_of("orders", SLOT, marker="someone-else")

    result = plan([daily_share("orders", SLOT)], [squatter])

    (job,) = result.copies
    assert job.fail is not None and job.fail[0] == "IdentifierTaken" and "someone-else" in job.fail[1]
    assert not job.starts and not deleted(result)


def test_an_encrypted_share_is_copied_under_the_vaults_key() -> None:
    result = plan([daily_share("orders", SLOT, encrypted=True)], ctx=context(kmsKey="alias/snapshot-vault"))

    assert [j.kms_key for j in result.starting] == ["alias/snapshot-vault"]


def test_an_encrypted_share_without_a_vault_key_is_skipped_for_kms() -> None:
    result = plan([daily_share("orders", SLOT, encrypted=True)])

    (job,) = result.copies
    assert job.skip is not None and job.skip[0] is Reason.KMS and "kmsKey" in job.skip[1]
    assert started(result) == []


# -------------------------------------------------------------------------------- the 5-copy limit, quota


def test_at_most_five_copies_start_the_rest_are_deferred_for_the_copy_limit() -> None:
    shares = [daily_share(f"db{n}", SLOT) for n in range(7)]

    result = plan(shares)

    assert len(result.starting) == 5
    assert [j.defer[0] for j in result.copies if j.defer] == [Reason.COPY_LIMIT] * 2


def test_copies_already_in_flight_in_the_vault_region_count_against_the_limit() -> None:
    anyones = [copy_of("other", SLOT, status="copying", marker="someone-else", name=f"other-{n}") for n in range(2)]
    shares = [daily_share(f"db{n}", SLOT) for n in range(4)]

    result = plan(shares, anyones)

    assert len(result.starting) == 3
    assert [j.defer[0] for j in result.copies if j.defer] == [Reason.COPY_LIMIT]


def test_the_cluster_longest_without_a_copy_goes_first() -> None:
    own = [copy_of(f"db{n}", SLOT - DAY) for n in range(5)]
    shares = [daily_share(f"db{n}", SLOT) for n in range(5)] + [daily_share("new", SLOT)]

    result = plan(shares, own)

    assert result.starting[0].cluster_id == "new"  # no copy at all: the most overdue
    assert len(result.starting) == 5


def test_a_full_quota_defers_copies_for_quota_after_this_runs_deletions() -> None:
    own = [copy_of("orders", SLOT - n * DAY) for n in range(1, 5)]  # keep-daily=3: the oldest goes
    shares = [daily_share(f"db{n}", SLOT) for n in range(3)]

    result = plan(shares, own, quota=Quota(used=100, max=100))

    assert len(result.starting) == 1  # the one deletion makes room for one
    assert [j.defer[0] for j in result.copies if j.defer] == [Reason.QUOTA] * 2


# ---------------------------------------------------------------------------------------------- retention


def test_copies_are_pruned_by_the_vaults_own_policy_whatever_the_source_shares() -> None:
    own = [copy_of("orders", SLOT - n * DAY) for n in range(6)]

    result = plan([], own)  # the source shares nothing any more

    assert deleted(result) == {c.id for c in own[3:]}


def test_min_retention_days_keeps_copies_younger_than_it_by_their_creation_time() -> None:
    own = [copy_of("orders", SLOT - n * DAY) for n in range(6)]
    backfilled = copy_of("orders", SLOT - 9 * DAY, created=NOW - 2 * DAY)  # an old slot copied two days ago

    result = plan([], [*own, backfilled], ctx=context(minRetentionDays=3))

    assert deleted(result) == {own[4].id, own[5].id}
    (group,) = result.groups
    assert {k.snapshot.id for k in group.kept if k.reasons == ("younger than minRetentionDays=3",)} == {
        own[3].id,
        backfilled.id,
    }


def test_held_and_copying_copies_are_never_deleted_and_the_newest_always_stays() -> None:
    held = copy_of("orders", SLOT - 5 * DAY, extra_tags={"Snapshot-Hold": "legal"})
    copying = copy_of("orders", SLOT - 6 * DAY, status="copying")
    own = [copy_of("orders", SLOT - n * DAY) for n in range(1)] + [held, copying]

    result = plan([], own, ctx=context(policy="every=1d keep-last=1"))

    assert deleted(result) == set()


def test_never_below_one_copy_per_cluster() -> None:
    only = copy_of("orders", SLOT - 400 * DAY)

    result = plan([], [only], ctx=context(policy="every=1d keep-within=1d"), now=NOW)

    assert deleted(result) == set()


@pytest.mark.parametrize(
    "doubtful",
    [
        copy_of("orders", SLOT - 5 * DAY, marker="other-vault"),
        copy_of("orders", SLOT - 5 * DAY, name="orders-20260305-0300"),  # a slot name, not a vault copy's
        copy_of("orders", SLOT - 5 * DAY, source_account=STRANGER),  # RDS says it came from elsewhere
        copy_of("orders", SLOT - 5 * DAY, extra_tags={"snapshot-scheduler:cluster": "billing"}),
        copy_of("orders", SLOT - 5 * DAY, extra_tags={"snapshot-scheduler:vault-source-region": US}),
    ],
)
def test_a_snapshot_failing_any_proof_of_ownership_is_never_deleted(doubtful: Snapshot) -> None:
    own = [copy_of("orders", SLOT - n * DAY) for n in range(3)]

    result = plan([], [*own, doubtful])

    assert doubtful.id not in deleted(result)


def test_a_copy_still_copying_after_the_stuck_time_is_reported_never_deleted() -> None:
    stuck = copy_of("orders", SLOT - DAY, status="copying", created=NOW - timedelta(hours=25))

    result = plan([], [stuck])

    (group,) = result.groups
    assert group.stuck == (stuck,) and not group.delete


# --------------------------------------------------------------------------------- recovery point, silence


def test_each_configured_source_has_its_recovery_point_and_silence() -> None:
    own = [copy_of("orders", SLOT - 2 * DAY), copy_of("orders", SLOT - 3 * DAY, account=STAGING)]
    shares = [daily_share("orders", SLOT - DAY)]

    result = plan(shares, own)

    views = {v.name: v for v in result.sources}
    assert set(views) == {f"{PROD}/{EU}", f"{PROD}/{US}", f"{STAGING}/{EU}"}
    prod = views[f"{PROD}/{EU}"]
    assert prod.recovery_point_age(NOW) == NOW - (SLOT - 2 * DAY)
    assert prod.silence(NOW) == NOW - (SLOT - DAY)
    assert views[f"{STAGING}/{EU}"].silence(NOW) == NOW - (SLOT - 3 * DAY)  # its newest copy proves a share
    assert views[f"{PROD}/{US}"].silence(NOW) is None  # never seen: nothing to measure from
