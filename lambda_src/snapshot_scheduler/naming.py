"""(cluster, slot) -> snapshot identifier, and (cluster, DR slot, source region) -> copy identifier. Pure,
deterministic: the identifier is our idempotency key.

RDS rules: 1-63 letters, digits or hyphens, a letter first, no `--`, no trailing `-`, stored lower-case.
A cluster id too long to fit is shortened and given a hash of the full id, so two long ids that share a
prefix still get different identifiers.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

MAX_LENGTH = 63
_SLOT_FORMAT = "%Y%m%d-%H%M"  # in UTC; 13 characters
_HASH_LENGTH = 8
_VALID = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*(?<!-)$")


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
