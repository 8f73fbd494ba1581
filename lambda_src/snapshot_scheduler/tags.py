"""Tag keys this service reads and writes: a contract with infra/ (IAM conditions) and with operators."""

import unicodedata
from collections.abc import Mapping
from functools import lru_cache

# On snapshots we create. The marker's value is the deployment (default: the stack name).
MARKER = "snapshot-scheduler:deployment"
POLICY = "snapshot-scheduler:policy"
SLOT = "snapshot-scheduler:slot"
CLUSTER = "snapshot-scheduler:cluster"
# On disaster-recovery copies, in their destination region. The DR marker is a key of its own (value: the
# deployment), never the snapshot marker: a deployment of this app in the destination region, even one with
# the same name, never takes our copies for its own snapshots. CLUSTER and SLOT are recorded as on snapshots.
DR_MARKER = "snapshot-scheduler:dr-deployment"
DR_POLICY = "snapshot-scheduler:dr-policy"
DR_TARGET = "snapshot-scheduler:dr-target"
DR_SOURCE = "snapshot-scheduler:dr-source"  # the source snapshot's ARN
DR_SOURCE_REGION = "snapshot-scheduler:dr-source-region"
# On a vault's copies of snapshots shared with it (a deployment with SNAPSHOT_VAULT, in the vault account). The
# vault marker is a key of its own (value: the vault deployment): IAM lets the vault role delete only what
# carries it. CLUSTER and SLOT (the vault policy's slot) are recorded as on snapshots.
VAULT_MARKER = "snapshot-scheduler:vault-deployment"
VAULT_SOURCE_ACCOUNT = "snapshot-scheduler:vault-source-account"
VAULT_SOURCE_REGION = "snapshot-scheduler:vault-source-region"
VAULT_POLICY = "snapshot-scheduler:vault-policy"
# On a snapshot of ours shared with a DR target that is an account (a vault): `shared-<target name>`, valued
# the share time (ISO 8601 UTC); removed when the share is taken back. Only these keys may the function remove.
SHARED_PREFIX = "snapshot-scheduler:shared-"
# Set by an operator on a snapshot to keep it whatever the policy says. Read fail-safe: any spelling of the
# key, and any value but an explicit no, holds the snapshot.
HOLD = "snapshot-hold"
NOT_HELD = frozenset({"false", "no", "0", "off"})

# RDS allows at most 50 tags on a resource, and tag text of letters, digits, white space and _ . : / = + - @.
MAX_TAGS = 50
TEXT_RULE = "letters, digits, spaces and _ . : / = + - @"
_TEXT_SYMBOLS = frozenset("_.:/=+-@")


def is_text(value: str) -> bool:
    """Whether RDS takes `value` as tag text: Unicode letters (L), digits (N), separators (Z) and the symbols.
    Tabs, line breaks and other control characters are not separators: RDS refuses them."""
    return all(c in _TEXT_SYMBOLS or unicodedata.category(c)[0] in "LNZ" for c in value)


def shared_key(target: str) -> str:
    return SHARED_PREFIX + target


@lru_cache(maxsize=4096)  # asked of every tag of every snapshot each run; tag keys repeat
def is_hold(key: str) -> bool:
    return key.strip().lower() == HOLD


def held(tags: Mapping[str, str]) -> bool:
    return any(is_hold(key) and value.strip().lower() not in NOT_HELD for key, value in tags.items())
