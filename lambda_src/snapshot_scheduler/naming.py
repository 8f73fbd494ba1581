"""(cluster, slot) -> snapshot identifier, (cluster, DR slot, source region) -> copy identifier, and
(cluster, vault slot, source account, source region) -> vault copy identifier. Pure, deterministic: the
identifier is our idempotency key.

RDS rules: 1-63 letters, digits or hyphens, a letter first, no `--`, no trailing `-`, stored lower-case.
A cluster id too long to fit is shortened and given a hash of the full id, so two long ids that share a
prefix still get different identifiers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

MAX_LENGTH = 63
_SLOT_FORMAT = "%Y%m%d-%H%M"  # in UTC; 13 characters
_HASH_LENGTH = 8
_VALID = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*(?<!-)\Z")
_SLOT_SUFFIX = re.compile(r"-([0-9]{8}-[0-9]{4})\Z")


def snapshot_id(cluster_id: str, slot: datetime) -> str:
    return _fit(cluster_id, _slot_text(slot))


def copy_id(cluster_id: str, slot: datetime, source_region: str) -> str:
    """A disaster-recovery copy's identifier in its destination region: `<cluster>-YYYYMMDD-HHMM-dr-<region>`
    (the source region without hyphens). It ends in letters and digits after `-dr-`, never in the
    `-YYYYMMDD-HHMM` every snapshot identifier ends in: a deployment in the destination region that
    manages a same-named cluster can never take or be given one of these identifiers."""
    region = source_region.lower().replace("-", "")
    if not re.fullmatch(r"[a-z][a-z0-9]*", region) or region.isdigit():
        raise ValueError(f"source region {source_region!r} is not a region name such as us-east-1")
    return _fit(cluster_id, f"{_slot_text(slot)}-dr-{region}")


def vault_copy_id(cluster_id: str, slot: datetime, source_account: str, source_region: str) -> str:
    """A vault's copy of a shared snapshot: `<cluster>-YYYYMMDD-HHMM-v<8 hex>`, the hex the start of
    sha256("<account>:<region>") of the source. Two sources with a cluster of the same name get different
    identifiers; it never ends in the `-YYYYMMDD-HHMM` of a snapshot identifier nor in a DR copy's
    `-dr-<region>`, so no other deployment's name can be taken or given (IAM: `*-v????????`)."""
    if not re.fullmatch(r"[0-9]{12}", source_account):
        raise ValueError(f"source account {source_account!r} is not a 12-digit AWS account id")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]+", source_region):
        raise ValueError(f"source region {source_region!r} is not a region name such as eu-west-1")
    source = hashlib.sha256(f"{source_account}:{source_region}".encode()).hexdigest()[:_HASH_LENGTH]
    return _fit(cluster_id, f"{_slot_text(slot)}-v{source}")


def parse_slot_suffix(identifier: str) -> datetime | None:
    """The slot a snapshot identifier ends in (`-YYYYMMDD-HHMM`, UTC), or None when it ends in none."""
    match = _SLOT_SUFFIX.search(identifier)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _SLOT_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class SnapshotArn:
    account: str
    region: str
    name: str  # the snapshot identifier, lower-case


def parse_snapshot_arn(arn: str) -> SnapshotArn | None:
    """arn:<partition>:rds:<region>:<account>:cluster-snapshot:<name>, or None for anything else."""
    parts = arn.split(":")
    if len(parts) != 7 or parts[0] != "arn" or parts[2] != "rds" or parts[5] != "cluster-snapshot" or not parts[6]:
        return None
    return SnapshotArn(account=parts[4], region=parts[3], name=parts[6].lower())


def _slot_text(slot: datetime) -> str:
    if slot.tzinfo is None:
        raise ValueError(f"slot {slot.isoformat()} has no time zone")
    return slot.astimezone(UTC).strftime(_SLOT_FORMAT)


def _fit(cluster_id: str, suffix: str) -> str:
    """`<cluster>-<suffix>` in 63 characters: a cluster id too long is cut and given a hash of itself."""
    cluster = cluster_id.lower()
    if not _VALID.match(cluster):
        raise ValueError(f"cluster id {cluster_id!r} is not a valid RDS identifier")
    room = MAX_LENGTH - len(suffix) - 1
    if len(cluster) > room:
        digest = hashlib.sha256(cluster.encode()).hexdigest()[:_HASH_LENGTH]
        cluster = cluster[: room - _HASH_LENGTH - 1].rstrip("-") + "-" + digest
    return f"{cluster}-{suffix}"


def is_valid_identifier(identifier: str) -> bool:
    return len(identifier) <= MAX_LENGTH and bool(_VALID.match(identifier))
