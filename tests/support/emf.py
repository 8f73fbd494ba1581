"""Read the CloudWatch EMF blobs a handler printed among its log lines."""

from __future__ import annotations

import json
from typing import Any


def emf_blobs(stdout: str) -> list[dict[str, Any]]:
    blobs = []
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" in record:
            blobs.append(record)
    return blobs
