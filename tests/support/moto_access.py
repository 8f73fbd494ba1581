"""How the fidelity layer reaches moto: in-process (`mock_aws`) or a `moto_server` over HTTP.

Both give the layer the same things: every cluster and cluster snapshot as records, a way to forward an
HTTP attempt, and the fleet-building calls. In-process reads moto's backend objects directly, which keeps
a 3,000-cluster fleet fast (no XML round trip per sweep); the server variant uses an inner, unhooked
boto3 client.

Accounts: moto keeps one backend per account and picks it per request from, in order, the MOTO_ACCOUNT_ID
environment variable, an `x-moto-account-id` header, the account of the access key (moto's STS hands out keys
of the role's account), else 123456789012. The layer names its account on every request with the header
(so MOTO_ACCOUNT_ID must be unset), and `account_client` does the same for any other service. What moto
cannot do across accounts (copy a shared snapshot) is emulated by each variant: in-process on moto's objects,
over HTTP with a stand-in cluster (ServerMoto.copy_shared).
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.core.models import botocore_stubber

from tests.support.rds_xml import ClusterRecord, SnapshotRecord

Forward = Callable[[AWSPreparedRequest, str], AWSResponse]
ACCOUNT_HEADER = "x-moto-account-id"
MASTER_USER = "admin"
MASTER_PASSWORD = "not-a-secret-1"  # moto only


class Moto(Protocol):
    kind: str
    region: str
    account: str

    def forwarder(self, client: Any) -> Forward: ...

    def clusters(self) -> list[ClusterRecord]: ...

    def snapshots(self) -> list[SnapshotRecord]: ...

    def create_cluster(
        self,
        cluster_id: str,
        engine: str,
        tags: Mapping[str, str],
        *,
        encrypted: bool,
        copy_tags: bool = False,
        kms_key: str | None = None,
    ) -> None: ...

    def create_kms_key(self, alias: str | None) -> str: ...

    def kms_key_arn(self, key: str) -> str | None: ...

    def create_snapshot(
        self, cluster_id: str, snapshot_id: str, tags: Mapping[str, str], snapshot_type: str
    ) -> None: ...

    def delete_cluster(self, cluster_id: str) -> None: ...

    def default_rds_key(self) -> str: ...

    def key_manager(self, key: str) -> str | None: ...

    def shared_with(self, snapshot_id: str) -> tuple[str, ...]: ...

    def copy_shared(
        self, owner: Moto, source: SnapshotRecord, target_id: str, tags: Mapping[str, str], kms_key_arn: str | None
    ) -> SnapshotRecord: ...


def connect(client: Any, account: str = DEFAULT_ACCOUNT_ID) -> Moto:
    """In-process when `mock_aws` is active and the client talks to an AWS URL; else the server."""
    pinned = os.environ.get("MOTO_ACCOUNT_ID")
    if pinned is not None and pinned != account:
        raise ValueError(
            f"MOTO_ACCOUNT_ID={pinned} sends every request to that account, not to {account}: unset it "
            "(the layer names its account on each request)"
        )
    endpoint = client.meta.endpoint_url
    region = client.meta.region_name
    if botocore_stubber.enabled and ".amazonaws.com" in endpoint:
        return InProcessMoto(region, account)
    return ServerMoto(endpoint, region, _credentials(client), account)


def in_account(client: Any, account: str) -> Any:
    """Send every request of this boto3 client to moto's backend of `account`; returns the client."""

    def name_account(request: Any, **_: Any) -> None:
        request.headers[ACCOUNT_HEADER] = account

    client.meta.events.register("before-sign", name_account)
    return client


def account_credentials(account: str, region: str) -> dict[str, str]:
    """Credentials of a role in `account` (moto's STS files the keys under the role's account, so every
    client built with them talks to that account): as environment variables, as Lambda sets them."""
    credentials = boto3.client("sts", region_name=region).assume_role(
        RoleArn=f"arn:aws:iam::{account}:role/snapshot-scheduler", RoleSessionName="fidelity"
    )["Credentials"]
    return {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }


def account_client(service: str, region: str, account: str = DEFAULT_ACCOUNT_ID, **options: Any) -> Any:
    """A boto3 client of `service` that talks to moto's `account` (in-process, or a server given endpoint_url)."""
    return in_account(boto3.client(service, region_name=region, **options), account)


def _credentials(client: Any) -> tuple[str, str]:
    try:
        frozen = client._request_signer._credentials.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key
    except AttributeError:
        return "testing", "testing"


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _tag_pairs(tags: Any) -> list[tuple[str, str]]:
    return [(tag["Key"], tag.get("Value", "")) for tag in tags or []]


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags.items()]


class InProcessMoto:
    kind = "in-process"

    def __init__(self, region: str, account: str = DEFAULT_ACCOUNT_ID) -> None:
        self.region = region
        self.account = account

    @property
    def backend(self) -> Any:
        from moto.rds.models import rds_backends  # noqa: PLC0415 - heavy import, only in-process

        return rds_backends[self.account][self.region]

    def forwarder(self, client: Any) -> Forward:
        # The layer answers every attempt itself, so moto's own before-send stubber must not also run.
        client.meta.events.unregister("before-send", botocore_stubber)

        def forward(request: AWSPreparedRequest, event_name: str) -> AWSResponse:
            response = botocore_stubber(event_name=event_name, request=request)
            if response is None:  # moto does not know this URL: let the request go out as botocore would
                return client._endpoint.http_session.send(request)
            return response

        return forward

    def clusters(self) -> list[ClusterRecord]:
        return [
            ClusterRecord(
                id=cluster.db_cluster_identifier.lower(),
                arn=cluster.db_cluster_arn,
                status=cluster.status,
                engine=cluster.engine,
                engine_version=cluster.engine_version or "",
                created=_aware(cluster.cluster_create_time),
                tags=_tag_pairs(cluster.tags),
                resource_id=cluster.db_cluster_resource_id,
                storage_encrypted=bool(cluster.storage_encrypted),
                copy_tags_to_snapshot=bool(cluster.copy_tags_to_snapshot),
            )
            for cluster in list(self.backend.clusters.values())
        ]

    def snapshots(self) -> list[SnapshotRecord]:
        return [
            SnapshotRecord(
                id=snap.db_cluster_snapshot_identifier.lower(),
                cluster_id=snap.db_cluster_identifier.lower(),
                arn=snap.db_cluster_snapshot_arn,
                snapshot_type=snap.snapshot_type,
                status=snap.status,
                created=_aware(snap.created),
                engine=snap.engine or "",
                engine_version=snap.engine_version or "",
                percent_progress=int(snap.percent_progress),
                tags=_tag_pairs(snap.tags),
                storage_encrypted=bool(snap.storage_encrypted),
                kms_key_id=(snap.kms_key_id or "") if snap.storage_encrypted else "",
                shared_with=tuple(snap.attributes.get("restore", ())),
            )
            for snap in list(self.backend.cluster_snapshots.values())
        ]

    def create_cluster(
        self,
        cluster_id: str,
        engine: str,
        tags: Mapping[str, str],
        *,
        encrypted: bool,
        copy_tags: bool = False,
        kms_key: str | None = None,
    ) -> None:
        if cluster_id in self.backend.clusters:
            raise ValueError(f"cluster {cluster_id} already exists")
        cluster = self.backend.create_db_cluster(
            {
                "db_cluster_identifier": cluster_id,
                "engine": engine,
                "master_username": MASTER_USER,
                "master_user_password": MASTER_PASSWORD,
                "tags": _tag_list(tags),
                "storage_encrypted": encrypted,
                "copy_tags_to_snapshot": copy_tags,
                "kms_key_id": (kms_key or self.default_rds_key()) if encrypted else None,
            }
        )
        cluster.status = "available"  # moto reports "creating" once, then "available"; a fleet starts ready

    def create_kms_key(self, alias: str | None) -> str:
        return _create_kms_key(self._kms(), alias)

    def kms_key_arn(self, key: str) -> str | None:
        return _kms_key_arn(self._kms(), key)

    def _kms(self) -> Any:
        return account_client("kms", self.region, self.account)

    def default_rds_key(self) -> str:
        """The ARN of this account's `aws/rds` key in this region, an AWS managed key as in RDS (moto makes
        its reserved aliases' keys on first use, as customer managed ones)."""
        from moto.kms.models import kms_backends  # noqa: PLC0415

        metadata = self._kms().describe_key(KeyId="alias/aws/rds")["KeyMetadata"]
        kms_backends[self.account][self.region].keys[metadata["KeyId"]].key_manager = "AWS"
        return str(metadata["Arn"])

    def key_manager(self, key: str) -> str | None:
        """KeyManager ("AWS" or "CUSTOMER") of a key of this account and region, None if unknown."""
        try:
            return str(self._kms().describe_key(KeyId=key)["KeyMetadata"]["KeyManager"])
        except Exception:  # moto answers an unknown key in several ways
            return None

    def shared_with(self, snapshot_id: str) -> tuple[str, ...]:
        """The snapshot's `restore` attribute, as moto holds it now."""
        snapshot = self.backend.cluster_snapshots.get(snapshot_id)
        return tuple(snapshot.attributes.get("restore", ())) if snapshot is not None else ()

    def copy_shared(
        self, owner: Moto, source: SnapshotRecord, target_id: str, tags: Mapping[str, str], kms_key_arn: str | None
    ) -> SnapshotRecord:
        """A copy in this account of `owner`'s snapshot (moto looks a source ARN up in the caller's account
        only): with exactly `tags` (the owner's are not readable), under `kms_key_arn` when encrypted."""
        from moto.rds.models import DBClusterSnapshot  # noqa: PLC0415

        if not isinstance(owner, InProcessMoto):
            raise TypeError("both accounts of a copy are in-process or both on the server")
        original = owner.backend.cluster_snapshots[source.id]
        copy = DBClusterSnapshot(
            self.backend, original.cluster, target_id, tags=_tag_list(tags), kms_key_id=kms_key_arn
        )
        self.backend.cluster_snapshots[target_id] = copy
        (record,) = [snap for snap in self.snapshots() if snap.id == target_id]
        return record

    def create_snapshot(self, cluster_id: str, snapshot_id: str, tags: Mapping[str, str], snapshot_type: str) -> None:
        from moto.rds.models import DBClusterSnapshot  # noqa: PLC0415

        backend = self.backend
        if snapshot_id in backend.cluster_snapshots:
            raise ValueError(f"snapshot {snapshot_id} already exists")
        # Built directly: moto's create counts every snapshot against MOTO_RDS_SNAPSHOT_LIMIT, the layer's
        # quota is the one that matters here.
        snapshot = DBClusterSnapshot(backend, backend.clusters[cluster_id], snapshot_id, snapshot_type, _tag_list(tags))
        backend.cluster_snapshots[snapshot_id] = snapshot

    def delete_cluster(self, cluster_id: str) -> None:
        self.backend.delete_db_cluster(cluster_identifier=cluster_id)


class ServerMoto:
    """A moto server. Its listing carries no shares (reading them costs a call per snapshot): the records
    carry those of the snapshots whose share changed through the layer (shared_with), read once each
    time. No AWS managed keys."""

    kind = "server"

    def __init__(
        self, endpoint: str, region: str, credentials: tuple[str, str], account: str = DEFAULT_ACCOUNT_ID
    ) -> None:
        self.region = region
        self.endpoint = endpoint
        self.account = account
        self._credentials = credentials
        self._inner = self._client("rds")
        self._shares: dict[str, tuple[str, ...]] = {}  # snapshot -> its `restore` attribute, as last read

    def forwarder(self, client: Any) -> Forward:
        if client.meta.endpoint_url != self.endpoint:
            raise ValueError(f"one layer serves one moto server ({self.endpoint}), not {client.meta.endpoint_url}")

        def forward(request: AWSPreparedRequest, event_name: str) -> AWSResponse:
            return client._endpoint.http_session.send(request)

        return forward

    def _all(self, operation: str, key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker: dict[str, str] = {}
        while True:
            answer = getattr(self._inner, operation)(**marker)
            items.extend(answer.get(key, []))
            if not answer.get("Marker"):
                return items
            marker = {"Marker": answer["Marker"]}

    def clusters(self) -> list[ClusterRecord]:
        return [
            ClusterRecord(
                id=raw["DBClusterIdentifier"].lower(),
                arn=raw.get("DBClusterArn", ""),
                status=raw.get("Status", ""),
                engine=raw.get("Engine", ""),
                engine_version=raw.get("EngineVersion", ""),
                created=raw.get("ClusterCreateTime"),
                tags=_tag_pairs(raw.get("TagList")),
                resource_id=raw.get("DbClusterResourceId", ""),
                storage_encrypted=bool(raw.get("StorageEncrypted")),
                copy_tags_to_snapshot=bool(raw.get("CopyTagsToSnapshot")),
            )
            for raw in self._all("describe_db_clusters", "DBClusters")
        ]

    def snapshots(self) -> list[SnapshotRecord]:
        records = [snapshot_from_dict(raw) for raw in self._all("describe_db_cluster_snapshots", "DBClusterSnapshots")]
        self._shares = {r.id: self._shares[r.id] for r in records if r.id in self._shares}  # forget the deleted
        return [replace(r, shared_with=self._shares.get(r.id, ())) for r in records]

    def shared_with(self, snapshot_id: str) -> tuple[str, ...]:
        """The snapshot's `restore` attribute, read from moto; the layer asks after each
        ModifyDBClusterSnapshotAttribute (the only way a share changes), later listings carry it."""
        answer = self._inner.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier=snapshot_id)
        attributes = answer["DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"]
        restore = [a.get("AttributeValues", []) for a in attributes if a.get("AttributeName") == "restore"]
        self._shares[snapshot_id.lower()] = tuple(restore[0] if restore else ())
        return self._shares[snapshot_id.lower()]

    def create_cluster(
        self,
        cluster_id: str,
        engine: str,
        tags: Mapping[str, str],
        *,
        encrypted: bool,
        copy_tags: bool = False,
        kms_key: str | None = None,
    ) -> None:
        self._inner.create_db_cluster(
            DBClusterIdentifier=cluster_id,
            Engine=engine,
            MasterUsername=MASTER_USER,
            MasterUserPassword=MASTER_PASSWORD,
            Tags=_tag_list(tags),
            StorageEncrypted=encrypted,
            CopyTagsToSnapshot=copy_tags,
            **({"KmsKeyId": kms_key or self.default_rds_key()} if encrypted else {}),
        )
        self._inner.describe_db_clusters(DBClusterIdentifier=cluster_id)  # moto: "creating" once, then ready

    def create_snapshot(self, cluster_id: str, snapshot_id: str, tags: Mapping[str, str], snapshot_type: str) -> None:
        if snapshot_type != "manual":
            raise ValueError("a moto server can only seed manual snapshots (the API makes no automated ones)")
        self._inner.create_db_cluster_snapshot(
            DBClusterIdentifier=cluster_id, DBClusterSnapshotIdentifier=snapshot_id, Tags=_tag_list(tags)
        )

    def delete_cluster(self, cluster_id: str) -> None:
        self._inner.delete_db_cluster(DBClusterIdentifier=cluster_id, SkipFinalSnapshot=True)

    def create_kms_key(self, alias: str | None) -> str:
        return _create_kms_key(self._kms(), alias)

    def kms_key_arn(self, key: str) -> str | None:
        return _kms_key_arn(self._kms(), key)

    def _kms(self) -> Any:
        return self._kms_client

    @functools.cached_property
    def _kms_client(self) -> Any:
        """Made once: a client costs more than the call (a copy of an encrypted snapshot checks its key)."""
        return self._client("kms")

    def _client(self, service: str) -> Any:
        access_key, secret_key = self._credentials
        return account_client(
            service,
            self.region,
            self.account,
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
        )

    def default_rds_key(self) -> str:
        return str(self._kms().describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"])

    def key_manager(self, key: str) -> str | None:
        return None  # a server's reserved-alias keys say CUSTOMER: no AWS managed key to tell apart

    def copy_shared(
        self, owner: Moto, source: SnapshotRecord, target_id: str, tags: Mapping[str, str], kms_key_arn: str | None
    ) -> SnapshotRecord:
        """A copy in this account of another account's snapshot, as RDS leaves it: the source's cluster
        identifier and engine, exactly `tags`, under `kms_key_arn` when encrypted. moto copies only from its
        caller's account and snapshots only a cluster of it, so a stand-in cluster of the source's identifier
        lives for the few calls this takes, and the automated snapshot moto makes of it goes with it."""
        cluster = source.cluster_id
        encryption = {"StorageEncrypted": True, "KmsKeyId": kms_key_arn} if kms_key_arn else {}
        try:
            self._inner.create_db_cluster(
                DBClusterIdentifier=cluster,
                Engine=source.engine,
                MasterUsername=MASTER_USER,
                MasterUserPassword=MASTER_PASSWORD,
                **encryption,
            )
        except self._inner.exceptions.DBClusterAlreadyExistsFault as error:
            raise TypeError(f"account {self.account} has a cluster {cluster}: no stand-in for a copy") from error
        try:
            made = self._inner.create_db_cluster_snapshot(
                DBClusterIdentifier=cluster, DBClusterSnapshotIdentifier=target_id, Tags=_tag_list(tags)
            )["DBClusterSnapshot"]
            automated = self._inner.describe_db_cluster_snapshots(DBClusterIdentifier=cluster, SnapshotType="automated")
            for snapshot in automated["DBClusterSnapshots"]:
                self._inner.delete_db_cluster_snapshot(
                    DBClusterSnapshotIdentifier=snapshot["DBClusterSnapshotIdentifier"]
                )
        finally:
            self._inner.delete_db_cluster(DBClusterIdentifier=cluster, SkipFinalSnapshot=True)
        return snapshot_from_dict(made)


def _create_kms_key(kms: Any, alias: str | None) -> str:
    """A customer managed key in moto's KMS (which RDS in moto checks KmsKeyId against); its ARN."""
    arn: str = kms.create_key(Description="fidelity layer test key")["KeyMetadata"]["Arn"]
    if alias is not None:
        kms.create_alias(AliasName=alias, TargetKeyId=arn)
    return arn


def _kms_key_arn(kms: Any, key: str) -> str | None:
    """The ARN of an enabled key of this region named by id, ARN, alias name or alias ARN; else None."""
    if key.startswith("arn:") and key.split(":")[3:4] != [kms.meta.region_name]:
        return None  # KMS keys are regional: a key of another region is not usable here
    try:
        metadata = kms.describe_key(KeyId=key)["KeyMetadata"]
    except Exception:  # moto answers an unknown alias in several ways, an error or a crash: not usable
        return None
    return str(metadata["Arn"]) if metadata.get("Enabled", True) else None


def snapshot_from_dict(raw: Mapping[str, Any]) -> SnapshotRecord:
    return SnapshotRecord(
        id=raw["DBClusterSnapshotIdentifier"].lower(),
        cluster_id=raw.get("DBClusterIdentifier", "").lower(),
        arn=raw.get("DBClusterSnapshotArn", ""),
        snapshot_type=raw.get("SnapshotType", ""),
        status=raw.get("Status", ""),
        created=raw.get("SnapshotCreateTime"),
        engine=raw.get("Engine", ""),
        engine_version=raw.get("EngineVersion", ""),
        percent_progress=int(raw.get("PercentProgress", 100)),
        tags=_tag_pairs(raw.get("TagList")),
        storage_encrypted=bool(raw.get("StorageEncrypted")),
        kms_key_id=raw.get("KmsKeyId", "") if raw.get("StorageEncrypted") else "",
    )


def snapshot_from_xml(body: bytes) -> SnapshotRecord:
    """The DBClusterSnapshot in moto's answer to CreateDBClusterSnapshot."""
    node = next(el for el in ET.fromstring(body).iter() if _local(el.tag) == "DBClusterSnapshot")
    fields = {_local(child.tag): child for child in node}

    def text(name: str) -> str:
        child = fields.get(name)
        return (child.text or "") if child is not None else ""

    def when(name: str) -> datetime | None:
        value = text(name)
        return _aware(datetime.fromisoformat(value.replace("Z", "+00:00"))) if value else None

    tag_list = fields.get("TagList")
    tags = [] if tag_list is None else [_tag_from_xml(tag) for tag in tag_list]
    return SnapshotRecord(
        id=text("DBClusterSnapshotIdentifier").lower(),
        cluster_id=text("DBClusterIdentifier").lower(),
        arn=text("DBClusterSnapshotArn"),
        snapshot_type=text("SnapshotType"),
        status=text("Status"),
        created=when("SnapshotCreateTime"),
        engine=text("Engine"),
        engine_version=text("EngineVersion"),
        percent_progress=int(text("PercentProgress") or 100),
        tags=tags,
        storage_encrypted=text("StorageEncrypted") == "true",
        kms_key_id=text("KmsKeyId") if text("StorageEncrypted") == "true" else "",
    )


def _tag_from_xml(tag: ET.Element) -> tuple[str, str]:
    values = {_local(child.tag): child.text or "" for child in tag}
    return values.get("Key", ""), values.get("Value", "")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]
