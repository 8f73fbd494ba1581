"""KMS, read only: who manages the keys our snapshots are under (a snapshot under the default aws/rds key, an
AWS managed key, cannot be shared with another account)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import boto3
from botocore.config import Config

from snapshot_scheduler.observability import logger

# The one KMS action the function calls, when a DR target is an account; the stack grants exactly it.
IAM_ACTIONS = ("kms:DescribeKey",)


def build_client(region: str | None = None, profile: str | None = None) -> Any:
    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
    return boto3.session.Session(region_name=region, profile_name=profile).client("kms", config=config)


class KmsAdapter:
    def __init__(self, client: Any) -> None:
        self._client = client

    def key_managers(self, keys: Iterable[str]) -> dict[str, str | None]:
        """KeyManager ("AWS" or "CUSTOMER") of each distinct key, one DescribeKey each; None for a key KMS
        will not describe (the share is then tried, and RDS answers)."""
        managers: dict[str, str | None] = {}
        for key in sorted(set(keys)):
            try:
                managers[key] = str(self._client.describe_key(KeyId=key)["KeyMetadata"]["KeyManager"])
            except Exception as error:  # informational: the share is tried anyway
                logger.warning("could not describe a snapshot's KMS key", extra={"key": key, "error": repr(error)})
                managers[key] = None
        return managers
