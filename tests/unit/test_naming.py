"""Snapshot identifiers: valid under the RDS rules for every cluster id, deterministic, and unique.

The rules are checked here by an independent validator written from rds-facts.md, not by the module's own.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import string
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from snapshot_scheduler.naming import copy_id, is_valid_identifier, parse_slot_suffix, snapshot_id, vault_copy_id

SLOT = datetime(2026, 3, 10, 3, 0, tzinfo=UTC)


def assert_rds_identifier(identifier: str) -> None:
    """1-63 letters, digits or hyphens; a letter first; no `--`; no trailing `-`; stored lower-case."""
    assert 1 <= len(identifier) <= 63, f"{identifier!r} is {len(identifier)} long"
    assert identifier[0] in string.ascii_lowercase, identifier
    assert set(identifier) <= set(string.ascii_lowercase + string.digits + "-"), identifier
    assert "--" not in identifier, identifier
    assert not identifier.endswith("-"), identifier
    assert identifier == identifier.lower(), identifier


def random_cluster_id(rng: random.Random, length: int) -> str:
    """A valid DB cluster identifier of `length` characters (same rules as a snapshot identifier)."""
    chars = [rng.choice(string.ascii_lowercase)]
    while len(chars) < length:
        pool = string.ascii_lowercase + string.digits
        if chars[-1] != "-" and len(chars) < length - 1:
            pool += "-" * 6
        chars.append(rng.choice(pool))
    return "".join(chars)


CLUSTERS = [
    "a",
    "db",
    "orders",
    "prod-db-1",
    "MyCluster",
    "Prod-Orders-EU-West-1",
    "a" * 49,
    "a" * 50,
    "a" * 62,
    "a" * 63,
    "a-" * 31 + "a",  # 63 characters, a hyphen every other one
    "x" + "1" * 62,
    *("x" * cut + "-" + "y" * (62 - cut) for cut in range(34, 52)),  # a hyphen at (or near) every cut point
    *("x" * cut + "-z-" + "y" * (60 - cut) for cut in range(36, 46)),
]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_identifier_is_valid_under_the_rds_rules(cluster: str) -> None:
    identifier = snapshot_id(cluster, SLOT)

    assert_rds_identifier(identifier)
    assert is_valid_identifier(identifier)


def test_identifier_is_valid_for_a_thousand_random_cluster_ids_and_slots() -> None:
    rng = random.Random(20260310)
    for _ in range(1000):
        cluster = random_cluster_id(rng, rng.randint(1, 63))
        slot = SLOT + timedelta(minutes=rng.randint(-(10**6), 10**6))
        assert_rds_identifier(snapshot_id(cluster, slot))


def test_short_cluster_id_is_kept_whole_then_the_slot_in_utc() -> None:
    assert snapshot_id("orders", SLOT) == "orders-20260310-0300"


def test_identifier_is_lower_case_for_a_mixed_case_cluster_id() -> None:
    assert snapshot_id("Prod-Orders", SLOT) == snapshot_id("prod-orders", SLOT) == "prod-orders-20260310-0300"


def test_long_cluster_id_keeps_a_recognisable_prefix() -> None:
    cluster = "analytics-warehouse-primary-eu-central-1-production-cluster"

    identifier = snapshot_id(cluster, SLOT)

    assert identifier.startswith("analytics-warehouse-primary")
    assert identifier.endswith("-20260310-0300")


def test_identifier_is_deterministic() -> None:
    for cluster in CLUSTERS:
        assert snapshot_id(cluster, SLOT) == snapshot_id(cluster, SLOT)


def test_same_instant_in_another_zone_gives_the_same_identifier() -> None:
    berlin = SLOT.astimezone(ZoneInfo("Europe/Berlin"))

    assert snapshot_id("orders", berlin) == snapshot_id("orders", SLOT)


def test_different_slots_of_one_cluster_get_different_identifiers() -> None:
    slots = [SLOT + timedelta(hours=h) for h in range(24 * 60)]
    for cluster in ("orders", "a" * 63):
        assert len({snapshot_id(cluster, slot) for slot in slots}) == len(slots)


def test_clusters_sharing_a_long_prefix_get_different_identifiers() -> None:
    prefix = "shared-prefix-for-a-fleet-of-clusters-in-one-account-"  # 53 characters
    clusters = [prefix + "".join(tail) for tail in itertools.product("abc123", repeat=2)]
    clusters += ["p" * 62 + c for c in "abcdefghij"]  # differ only in the 63rd character

    identifiers = {snapshot_id(cluster, SLOT) for cluster in clusters}

    assert len(identifiers) == len(clusters)


def test_shortened_identifiers_do_not_collide_with_short_ones_across_a_random_fleet() -> None:
    rng = random.Random(7)
    clusters = {random_cluster_id(rng, rng.choice([5, 20, 45, 49, 50, 51, 63])) for _ in range(5000)}

    identifiers = {snapshot_id(cluster, SLOT) for cluster in clusters}

    assert len(identifiers) == len(clusters)


@pytest.mark.parametrize("cluster", ["", "1orders", "-orders", "orders-", "ord--ers", "ord_ers", "ord.ers"])
def test_invalid_cluster_id_is_refused(cluster: str) -> None:
    with pytest.raises(ValueError, match="cluster id"):
        snapshot_id(cluster, SLOT)


def test_naive_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        snapshot_id("orders", datetime(2026, 3, 10, 3, 0))


# ------------------------------------------------------------------------------------ DR copy identifiers

REGIONS = ["us-east-1", "eu-central-1", "ap-southeast-5", "us-gov-west-1", "il-central-1"]


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("cluster", CLUSTERS)
def test_copy_identifier_is_valid_under_the_rds_rules(cluster: str, region: str) -> None:
    assert_rds_identifier(copy_id(cluster, SLOT, region))


def test_copy_identifier_is_the_slot_identifier_then_dr_and_the_source_region() -> None:
    assert copy_id("Orders", SLOT, "us-east-1") == "orders-20260310-0300-dr-useast1"


def test_copy_identifiers_never_collide_with_any_slot_identifier_of_any_cluster_in_the_destination() -> None:
    rng = random.Random(11)
    clusters = {random_cluster_id(rng, rng.choice([5, 20, 40, 45, 63])) for _ in range(2000)}
    # A cluster named like a copy's head, as a destination deployment might manage: "orders-20260310-0300-dr".
    clusters |= {c.rsplit("-", 1)[0] for c in (copy_id(x, SLOT, "us-east-1") for x in list(clusters)[:200])}
    slots = [SLOT, SLOT + timedelta(hours=1)]

    copies = {copy_id(c, slot, region) for c in clusters for slot in slots for region in REGIONS[:2]}
    own = {snapshot_id(c, slot) for c in clusters for slot in slots}

    assert not copies & own
    assert len(copies) == len(clusters) * len(slots) * 2


@pytest.mark.parametrize("region", ["", "1", "us_east_1", "-"])
def test_a_source_region_that_is_no_region_name_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="source region"):
        copy_id("orders", SLOT, region)


# ------------------------------------------------------------------------------------ vault copy identifiers

PROD, STAGING = "111111111111", "333333333333"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_vault_copy_identifier_is_valid_under_the_rds_rules(cluster: str) -> None:
    assert_rds_identifier(vault_copy_id(cluster, SLOT, PROD, "eu-west-1"))


def test_vault_copy_identifier_is_the_slot_identifier_then_v_and_8_hex_of_the_source() -> None:
    source = hashlib.sha256(b"111111111111:eu-west-1").hexdigest()[:8]

    assert vault_copy_id("Orders", SLOT, PROD, "eu-west-1") == f"orders-20260310-0300-v{source}"


def test_same_named_clusters_of_two_sources_get_different_vault_identifiers() -> None:
    sources = [(PROD, "eu-west-1"), (STAGING, "eu-west-1"), (PROD, "us-east-1")]

    identifiers = {vault_copy_id("orders", SLOT, account, region) for account, region in sources}

    assert len(identifiers) == 3


def test_vault_identifiers_never_collide_with_slot_or_dr_copy_identifiers() -> None:
    rng = random.Random(13)
    clusters = {random_cluster_id(rng, rng.choice([5, 20, 40, 45, 63])) for _ in range(2000)}
    # Clusters named like a vault copy's head: "orders-20260310-0300" is a valid cluster id.
    clusters |= {vault_copy_id(c, SLOT, PROD, "eu-west-1").rsplit("-", 1)[0] for c in list(clusters)[:200]}

    vault = {vault_copy_id(c, SLOT, account, "eu-west-1") for c in clusters for account in (PROD, STAGING)}
    others = {snapshot_id(c, SLOT) for c in clusters} | {copy_id(c, SLOT, "eu-west-1") for c in clusters}

    assert not vault & others
    assert len(vault) == 2 * len(clusters)
    assert all(re.fullmatch(r".*-v[0-9a-f]{8}", v) for v in vault)


@pytest.mark.parametrize(
    ("account", "region"),
    [("11111111111", "eu-west-1"), ("11111111111a", "eu-west-1"), (PROD, "eu_west_1"), (PROD, "")],
)
def test_a_vault_source_that_is_no_account_and_region_is_refused(account: str, region: str) -> None:
    with pytest.raises(ValueError, match=r"source (account|region)"):
        vault_copy_id("orders", SLOT, account, region)


@pytest.mark.parametrize("cluster", ["orders", "a" * 63, "x" * 40 + "-" + "y" * 22])
def test_the_slot_suffix_of_every_snapshot_identifier_parses_back(cluster: str) -> None:
    assert parse_slot_suffix(snapshot_id(cluster, SLOT)) == SLOT


@pytest.mark.parametrize(
    "identifier",
    [
        "orders",
        "orders-20260310-0300-dr-useast1",
        "orders-20260230-0300",
        "orders-20260310-2460",
        "orders-2026031-0300",
        "orders-20260310-0300-v0a1b2c3d",
    ],
)
def test_an_identifier_without_a_real_slot_suffix_has_none(identifier: str) -> None:
    assert parse_slot_suffix(identifier) is None


def test_an_identifier_with_a_trailing_newline_is_not_valid() -> None:
    # `$` matches before a final newline; the pattern ends at the end of the text.
    assert is_valid_identifier("db-1") and not is_valid_identifier("db-1\n")
