"""(cluster, slot) -> snapshot identifier. Pure, deterministic: the identifier is our idempotency key.

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
_SLOT_LENGTH = 13
_HASH_LENGTH = 8
_VALID = re.compile(r"^[a-z](?:[a-z0-9]|-(?!-))*(?<!-)$")


def snapshot_id(cluster_id: str, slot: datetime) -> str:
    if slot.tzinfo is None:
        raise ValueError(f"slot {slot.isoformat()} has no time zone")
    cluster = cluster_id.lower()
    if not _VALID.match(cluster):
        raise ValueError(f"cluster id {cluster_id!r} is not a valid RDS identifier")
    suffix = slot.astimezone(UTC).strftime(_SLOT_FORMAT)
    room = MAX_LENGTH - _SLOT_LENGTH - 1
    if len(cluster) > room:
        digest = hashlib.sha256(cluster.encode()).hexdigest()[:_HASH_LENGTH]
        cluster = cluster[: room - _HASH_LENGTH - 1].rstrip("-") + "-" + digest
    return f"{cluster}-{suffix}"


def is_valid_identifier(identifier: str) -> bool:
    return len(identifier) <= MAX_LENGTH and bool(_VALID.match(identifier))
