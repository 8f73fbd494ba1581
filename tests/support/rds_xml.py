"""RDS query-protocol answers as XML bytes, so botocore parses the layer's answers exactly as RDS's.

Shapes follow botocore's RDS model (2014-10-31): a `<{Action}Response>` wrapping `<{Action}Result>` and
`<ResponseMetadata>`; errors are `<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>`.
Records carry the subset of fields the engine reads, plus a few that make a record look whole.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

NAMESPACE = "http://rds.amazonaws.com/doc/2014-10-31/"


@dataclass
class ClusterRecord:
    id: str
    arn: str
    status: str
    engine: str
    engine_version: str = ""
    created: datetime | None = None
    tags: list[tuple[str, str]] = field(default_factory=list)
    resource_id: str = ""
    storage_encrypted: bool = False
    copy_tags_to_snapshot: bool = False


@dataclass
class SnapshotRecord:
    id: str
    cluster_id: str
    arn: str
    snapshot_type: str
    status: str
    created: datetime | None
    engine: str = ""
    engine_version: str = ""
    percent_progress: int = 100
    tags: list[tuple[str, str]] = field(default_factory=list)
    storage_encrypted: bool = False
    kms_key_id: str = ""
    source_arn: str = ""  # SourceDBClusterSnapshotArn: set on copies only
    shared_with: tuple[str, ...] = ()  # the `restore` attribute: account ids (or "all") it is shared with


def request_id() -> str:
    return str(uuid.uuid4())


def timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _el(name: str, value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime):
        text = timestamp(value)
    else:
        text = escape(str(value))
    return f"<{name}>{text}</{name}>"


def _tags(tags: Iterable[tuple[str, str]]) -> str:
    inner = "".join(f"<Tag>{_el('Key', key)}{_el('Value', value)}</Tag>" for key, value in tags)
    return f"<TagList>{inner}</TagList>"


def cluster_xml(cluster: ClusterRecord, *, status: str, created: datetime | None) -> str:
    return (
        "<DBCluster>"
        + _el("DBClusterIdentifier", cluster.id)
        + _el("Status", status)
        + _el("Engine", cluster.engine)
        + _el("EngineVersion", cluster.engine_version or None)
        + _el("DbClusterResourceId", cluster.resource_id or None)
        + _el("DBClusterArn", cluster.arn)
        + _el("ClusterCreateTime", created)
        + _el("StorageEncrypted", cluster.storage_encrypted)
        + _el("CopyTagsToSnapshot", cluster.copy_tags_to_snapshot)
        + _tags(cluster.tags)
        + "</DBCluster>"
    )


def snapshot_xml(snapshot: SnapshotRecord, *, status: str, progress: int, created: datetime | None) -> str:
    return (
        "<DBClusterSnapshot>"
        + _el("DBClusterSnapshotIdentifier", snapshot.id)
        + _el("DBClusterIdentifier", snapshot.cluster_id)
        + _el("SnapshotCreateTime", created)
        + _el("Engine", snapshot.engine or None)
        + _el("EngineVersion", snapshot.engine_version or None)
        + _el("Status", status)
        + _el("SnapshotType", snapshot.snapshot_type)
        + _el("PercentProgress", progress)
        + _el("StorageEncrypted", snapshot.storage_encrypted)
        + _el("KmsKeyId", snapshot.kms_key_id or None)
        + _el("DBClusterSnapshotArn", snapshot.arn)
        + _el("SourceDBClusterSnapshotArn", snapshot.source_arn or None)
        + _tags(snapshot.tags)
        + "</DBClusterSnapshot>"
    )


def result(action: str, inner: str) -> bytes:
    return (
        f'<{action}Response xmlns="{NAMESPACE}"><{action}Result>{inner}</{action}Result>'
        f"<ResponseMetadata><RequestId>{request_id()}</RequestId></ResponseMetadata></{action}Response>"
    ).encode()


def page(action: str, list_name: str, members: Sequence[str], marker: str | None) -> bytes:
    return result(action, _el("Marker", marker) + f"<{list_name}>{''.join(members)}</{list_name}>")


def account_quotas(quotas: Sequence[tuple[str, int, int]]) -> bytes:
    members = "".join(
        f"<AccountQuota>{_el('AccountQuotaName', name)}{_el('Used', used)}{_el('Max', most)}</AccountQuota>"
        for name, used, most in quotas
    )
    return result("DescribeAccountAttributes", f"<AccountQuotas>{members}</AccountQuotas>")


def error(code: str, message: str, *, sender: bool = True) -> bytes:
    kind = "Sender" if sender else "Receiver"
    return (
        f'<ErrorResponse xmlns="{NAMESPACE}"><Error>{_el("Type", kind)}{_el("Code", code)}'
        f"{_el('Message', message)}</Error>{_el('RequestId', request_id())}</ErrorResponse>"
    ).encode()
