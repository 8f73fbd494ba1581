"""The only module that talks to RDS: paginated describes, create, delete, quota.

It turns `ClientError` codes into domain errors, paces every HTTP attempt under the RDS token bucket
(a fleet-sized run should never lean on throttling errors), and counts the throttles it still meets.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any, TypeVar
from xml.sax.saxutils import unescape

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as EndpointError
from botocore.utils import parse_timestamp

from snapshot_scheduler.errors import SnapshotSchedulerError
from snapshot_scheduler.model import Cluster, Quota, Snapshot
from snapshot_scheduler.observability import logger

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

T = TypeVar("T")

# Every RDS action the adapter calls; the stack grants exactly these (tests/infra checks it).
# AddTagsToResource is what RDS authorises for the Tags of CreateDBClusterSnapshot.
IAM_ACTIONS = (
    "rds:DescribeDBClusters",
    "rds:DescribeDBClusterSnapshots",
    "rds:DescribeAccountAttributes",
    "rds:CreateDBClusterSnapshot",
    "rds:AddTagsToResource",
    "rds:DeleteDBClusterSnapshot",
)
# Called in each destination region when DR targets are configured (with the describes, tags and delete
# above, there); the stack grants it once it configures DR targets.
DR_IAM_ACTIONS = ("rds:CopyDBClusterSnapshot",)
# Called by a vault run (SNAPSHOT_VAULT), in its own region only: the shared listing and its own sweep, its
# quota, copies of shared snapshots with their tags, deletes of its copies. It creates no snapshot.
VAULT_IAM_ACTIONS = (
    "rds:DescribeDBClusterSnapshots",
    "rds:DescribeAccountAttributes",
    "rds:CopyDBClusterSnapshot",
    "rds:AddTagsToResource",
    "rds:DeleteDBClusterSnapshot",
)
# Called when a DR target is an account (a vault): share and unshare our snapshots, remove the share's tag.
SHARE_IAM_ACTIONS = ("rds:ModifyDBClusterSnapshotAttribute", "rds:RemoveTagsFromResource")
RESTORE_ATTRIBUTE = "restore"  # the snapshot attribute that lets another account copy or restore it
_ACCOUNT_ID = re.compile(r"^[0-9]{12}\Z")

_NETWORK_ERRORS = (EndpointError, HTTPClientError)  # connection failures and timeouts
THROTTLING_CODES = frozenset({"Throttling", "ThrottlingException", "RequestLimitExceeded"})
PAGE_SIZE = 100  # the most RDS returns per page
MAX_RETRIES = 10  # botocore's `max_attempts` counts retries: 11 tries, jittered exponential backoff
_MARKER = re.compile(rb"<Marker>([^<]*)</Marker>")  # a describe answer's only element of that name
_UNTOLD = object()  # a page's raw answer named no next page, or an empty one (or never came): wait for the parsed one
HANDOFF_WAIT = 0.1  # seconds a page's parse waits at most for the next page's request to be sent
SEND_GRACE = 0.001  # then for its bytes to leave: after before-send the sender needs the GIL for about 0.5 ms


class RdsError(SnapshotSchedulerError):
    """An RDS call failed; `code` is the error code on the wire; `retried`: the SDK had already retried the
    call (so an earlier attempt may have done the work); `unanswered`: no answer came (a timeout or a dropped
    connection: the request may have reached RDS and been applied)."""

    def __init__(self, code: str, message: str, *, retried: bool = False, unanswered: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retried = retried
        self.unanswered = unanswered

    @property
    def may_have_applied(self) -> bool:
        """RDS may have done what the call asked: only a first attempt's error answer says it did not."""
        return self.retried or self.unanswered


class ClusterBusy(RdsError):
    """InvalidDBClusterStateFault: the cluster is not `available` right now."""


class ClusterNotFound(RdsError):
    """DBClusterNotFoundFault: the cluster went away between describe and create."""


class SnapshotExists(RdsError):
    """DBClusterSnapshotAlreadyExistsFault: the identifier is taken (for us: that slot is done)."""


class QuotaExceeded(RdsError):
    """SnapshotQuotaExceeded: the account's manual cluster snapshot quota is full."""


class SnapshotBusy(RdsError):
    """InvalidDBClusterSnapshotStateFault: the snapshot cannot be changed in its current state."""


class SnapshotNotFound(RdsError):
    """DBClusterSnapshotNotFoundFault: the snapshot is already gone."""


class AccessDenied(RdsError):
    """AccessDenied: IAM refused the call (a tag the role may not set, a policy tag IAM has not seen yet)."""


class KmsKeyError(RdsError):
    """KMSKeyNotAccessibleFault: a copy's KMS key does not exist, is disabled or may not be used."""


_ERRORS: Mapping[str, type[RdsError]] = {
    "AccessDenied": AccessDenied,
    "AccessDeniedException": AccessDenied,
    "InvalidDBClusterStateFault": ClusterBusy,
    "DBClusterNotFoundFault": ClusterNotFound,
    "DBClusterSnapshotAlreadyExistsFault": SnapshotExists,
    "SnapshotQuotaExceeded": QuotaExceeded,
    "SnapshotQuotaExceededFault": QuotaExceeded,
    "InvalidDBClusterSnapshotStateFault": SnapshotBusy,
    "DBClusterSnapshotNotFoundFault": SnapshotNotFound,
    "KMSKeyNotAccessibleFault": KmsKeyError,
}


def build_client(region: str | None = None, profile: str | None = None) -> RDSClient:
    """An RDS client with standard-mode retries; honours AWS_ENDPOINT_URL like every boto3 client."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
    session = boto3.session.Session(region_name=region, profile_name=profile, botocore_session=core)
    config = Config(retries={"mode": "standard", "max_attempts": MAX_RETRIES}, connect_timeout=5, read_timeout=30)
    return session.client("rds", config=config)


class Pacer:
    """Client-side token bucket: `burst` requests at once, then `rate` per second.

    Kept a little under RDS's own bucket (300 burst, 12/s per account and region, shared with every
    other caller) so a large fleet spreads its calls instead of collecting throttling errors.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._stamp = monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = self._monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= 1
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


@dataclass(frozen=True)
class _Page:
    """A page request in flight: the Marker it asked for, its parsed answer to come, and its raw Marker first."""

    marker: str | None
    answer: Future[dict[str, Any]]
    told: SimpleQueue[object]
    handed: threading.Event  # set once the next page's request is sent (or none will be)


class RdsAdapter:
    def __init__(self, client: RDSClient, pacer: Pacer | None = None) -> None:
        self._client = client
        self.throttles = 0
        self._throttles_lock = threading.Lock()  # the service calls from several threads
        self._page_thread = threading.local()  # .told: where a page call in this thread reports its next Marker
        events = client.meta.events
        if pacer is not None:
            events.register("before-send.rds", lambda **_: pacer.acquire())
        events.register("needs-retry.rds", self._count_throttle)
        events.register("before-parse.rds", self._tell_marker)
        events.register_first("before-send.rds", self._mark_sent)

    @property
    def region(self) -> str:
        return str(self._client.meta.region_name)

    def clusters(self, engines: frozenset[str] | None = None) -> list[Cluster]:
        """Every DB cluster (of the given engines, when given), tags included (one paginated sweep)."""
        if engines is None:
            return [_cluster(raw) for raw in self._pages("describe_db_clusters", "DBClusters")]
        pages = self._pages(
            "describe_db_clusters", "DBClusters", Filters=[{"Name": "engine", "Values": sorted(engines)}]
        )
        return [_cluster(raw) for raw in pages if raw.get("Engine") in engines]

    def cluster(self, cluster_id: str) -> Cluster | None:
        """One DB cluster by identifier (any engine), or None when there is none: one call, no listing."""
        return self._one(
            "describe_db_clusters", "DBClusters", _cluster, ClusterNotFound, DBClusterIdentifier=cluster_id
        )

    def manual_snapshots(self) -> list[Snapshot]:
        """Every manual cluster snapshot in the account and region, tags included (one paginated sweep)."""
        pages = self._pages(
            "describe_db_cluster_snapshots",
            "DBClusterSnapshots",
            Filters=[{"Name": "snapshot-type", "Values": ["manual"]}],
        )
        return [_snapshot(raw) for raw in pages]

    def shared_snapshots(self) -> list[Snapshot]:
        """Every cluster snapshot other accounts share with this one (one paginated sweep): SnapshotType shared
        lists them only with IncludeShared. Their ARN names the owner; their tags are not readable here."""
        pages = self._pages(
            "describe_db_cluster_snapshots", "DBClusterSnapshots", SnapshotType="shared", IncludeShared=True
        )
        return [_snapshot(raw) for raw in pages]

    def quota(self) -> Quota | None:
        """The manual cluster snapshot quota, or None when RDS will not say (the run carries on)."""
        try:
            answer = self._client.describe_account_attributes()
        except Exception as error:  # informational: no failure here may stop a run
            logger.warning("could not read the snapshot quota", extra={"error": repr(error)})
            return None
        for item in answer.get("AccountQuotas", []):
            if item.get("AccountQuotaName") == "ManualClusterSnapshots":
                return Quota(used=int(item.get("Used", 0)), max=int(item.get("Max", 0)))
        logger.warning("the account attributes name no ManualClusterSnapshots quota")
        return None

    def create_snapshot(self, snapshot_id: str, cluster_id: str, tags: Mapping[str, str]) -> Snapshot | None:
        """Start a snapshot; the record RDS answers with (`creating`), its tags the ones sent over whatever the
        answer lists (a partial list must not hide our marker); None when the answer holds no record."""
        answer = self._call(
            "create_db_cluster_snapshot",
            DBClusterSnapshotIdentifier=snapshot_id,
            DBClusterIdentifier=cluster_id,
            Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
        )
        raw = answer.get("DBClusterSnapshot")
        if not raw:
            return None
        made = _snapshot(raw)
        return replace(made, tags={**made.tags, **tags})

    def copy_snapshot(
        self, source_arn: str, target_id: str, tags: Mapping[str, str], *, kms_key: str | None, source_region: str
    ) -> None:
        """Start a copy into this adapter's region, tags set explicitly (never CopyTags); from another region,
        boto3 signs the PreSignedUrl for `source_region`."""
        params: dict[str, Any] = {
            "SourceDBClusterSnapshotIdentifier": source_arn,
            "TargetDBClusterSnapshotIdentifier": target_id,
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
        }
        if source_region != self.region:
            params["SourceRegion"] = source_region
        if kms_key:
            params["KmsKeyId"] = kms_key
        self._call("copy_db_cluster_snapshot", **params)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self._call("delete_db_cluster_snapshot", DBClusterSnapshotIdentifier=snapshot_id)

    def share_snapshot(self, snapshot_id: str, account: str) -> None:
        """Let one account copy or restore the snapshot. Only ever one 12-digit account id, never `all`
        (public): IAM cannot restrict the accounts added, so this check is part of the guard."""
        self._call(
            "modify_db_cluster_snapshot_attribute",
            DBClusterSnapshotIdentifier=snapshot_id,
            AttributeName=RESTORE_ATTRIBUTE,
            ValuesToAdd=[_account_id(account)],
        )

    def unshare_snapshot(self, snapshot_id: str, account: str) -> None:
        self._call(
            "modify_db_cluster_snapshot_attribute",
            DBClusterSnapshotIdentifier=snapshot_id,
            AttributeName=RESTORE_ATTRIBUTE,
            ValuesToRemove=[_account_id(account)],
        )

    def tag_snapshot(self, arn: str, tags: Mapping[str, str]) -> None:
        self._call("add_tags_to_resource", ResourceName=arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def untag_snapshot(self, arn: str, keys: list[str]) -> None:
        self._call("remove_tags_from_resource", ResourceName=arn, TagKeys=keys)

    def snapshot(self, snapshot_id: str) -> Snapshot | None:
        """One cluster snapshot by identifier, or None when there is none."""
        return self._one(
            "describe_db_cluster_snapshots",
            "DBClusterSnapshots",
            _snapshot,
            SnapshotNotFound,
            DBClusterSnapshotIdentifier=snapshot_id,
        )

    def _one(
        self,
        operation: str,
        key: str,
        parse: Callable[[Mapping[str, Any]], T],
        missing: type[RdsError],
        **params: Any,
    ) -> T | None:
        """The one record a describe by identifier answers, or None when RDS says there is none."""
        try:
            answer = self._call(operation, **params)
        except missing:
            return None
        found = answer.get(key, [])
        return parse(found[0]) if found else None

    def _call(self, operation: str, **params: Any) -> Any:
        try:
            return getattr(self._client, operation)(**params)
        except ClientError as error:
            code = _code(error)
            retried = int(error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)) > 0
            raise _ERRORS.get(code, RdsError)(code, _message(error), retried=retried) from error
        except _NETWORK_ERRORS as error:  # the SDK's retries did not get past it; configuration errors propagate
            raise RdsError(type(error).__name__, str(error), unanswered=True) from error

    def _pages(self, operation: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Follow the Marker chain, one page after another, as RDS requires. Each next page is requested as
        soon as this page's raw answer names its Marker, and this page is parsed once that request is sent, so
        that its round trip overlaps botocore's parsing of this page: the chain is the run's longest wait, and
        it spends no tokens meanwhile. As botocore's
        paginator does, an empty Marker ends the chain (sent back, it would ask for the first page again) and
        a Marker already asked for fails the sweep (it would never end)."""
        call = getattr(self._client, operation)
        asked: set[str] = set()
        try:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="rds-pages") as pool:
                page: _Page | None = self._request(pool, call, params, None)
                while page is not None:
                    early = page.told.get()
                    ahead = (
                        self._request(pool, call, params, early, sent=page.handed)
                        if isinstance(early, str) and early not in asked
                        else None
                    )
                    if ahead is None:
                        page.handed.set()
                    answer = page.answer.result()
                    yield from answer.get(key, [])
                    marker = answer.get("Marker") or None
                    if marker in asked:
                        message = f"{operation} gave Marker {marker!r} again: the sweep would never end"
                        raise RdsError("PaginationLoop", message)
                    if ahead is not None and ahead.marker != marker:  # never seen: the parsed Marker is the truth
                        logger.warning(
                            "a page's raw Marker differs from the parsed one", extra={"operation": operation}
                        )
                        ahead.answer.exception()  # wait for it; its answer is not used
                        ahead = None
                    if ahead is None and marker is not None:
                        ahead = self._request(pool, call, params, marker)
                    if marker is not None:
                        asked.add(marker)
                    page = ahead
        except ClientError as error:
            code = _code(error)
            raise RdsError(code, _message(error)) from error
        except _NETWORK_ERRORS as error:
            raise RdsError(type(error).__name__, str(error)) from error

    def _request(
        self,
        pool: ThreadPoolExecutor,
        call: Callable[..., dict[str, Any]],
        params: dict[str, Any],
        marker: str | None,
        *,
        sent: threading.Event | None = None,
    ) -> _Page:
        """One page on a pool thread; its raw answer's Marker (or _UNTOLD) reaches `told` before the parse,
        and `sent` (the previous page's `handed`) is set once its request is sent."""
        told: SimpleQueue[object] = SimpleQueue()
        handed = threading.Event()

        def fetch() -> dict[str, Any]:
            self._page_thread.told, self._page_thread.handed, self._page_thread.sent = told, handed, sent
            try:
                answer: dict[str, Any] = call(**params, MaxRecords=PAGE_SIZE, **({"Marker": marker} if marker else {}))
                return answer
            finally:
                self._page_thread.told = self._page_thread.handed = self._page_thread.sent = None
                told.put(_UNTOLD)
                if sent is not None:
                    sent.set()

        return _Page(marker, pool.submit(fetch), told, handed)

    def _mark_sent(self, **_: Any) -> None:
        """before-send, in the calling thread: a page's request is about to go out; the previous page's parse
        may start."""
        sent: threading.Event | None = getattr(self._page_thread, "sent", None)
        if sent is not None:
            sent.set()

    def _tell_marker(self, response_dict: Mapping[str, Any], **_: Any) -> None:
        """before-parse, in the calling thread: a page call that asked gets its successful answer's Marker."""
        told: SimpleQueue[object] | None = getattr(self._page_thread, "told", None)
        if told is None or response_dict.get("status_code") != 200:
            return
        found = _MARKER.search(response_dict.get("body") or b"")
        if not (found and found.group(1)):
            told.put(_UNTOLD)
            return
        told.put(unescape(found.group(1).decode(), {"&quot;": '"', "&apos;": "'"}))
        # The parse waits (without the GIL) until the next page's request is sent: parsing at once would hold
        # the GIL while the threads that send it wait up to the switch interval (5 ms) for it, on every page
        # of the chain (6 ms of 37 ms a page in the benchmark; 31 ms a page with the wait).
        if self._page_thread.handed.wait(HANDOFF_WAIT):
            time.sleep(SEND_GRACE)

    def _count_throttle(self, response: Any = None, **_: Any) -> None:
        if response is not None and response[1].get("Error", {}).get("Code") in THROTTLING_CODES:
            with self._throttles_lock:
                self.throttles += 1


def _account_id(account: str) -> str:
    if not _ACCOUNT_ID.fullmatch(account):
        raise ValueError(f"refused to share with {account!r}: only a 12-digit account id, never all")
    return account


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", "Unknown"))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def _tags(raw: Mapping[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag.get("Value", "") for tag in raw.get("TagList", [])}


def _cluster(raw: Mapping[str, Any]) -> Cluster:
    return Cluster(
        id=raw["DBClusterIdentifier"].lower(),
        arn=raw.get("DBClusterArn", ""),
        engine=raw.get("Engine", ""),
        status=raw.get("Status", "unknown"),
        tags=_tags(raw),
        created=_time(raw.get("ClusterCreateTime")),
        copy_tags_to_snapshot=bool(raw.get("CopyTagsToSnapshot", False)),
    )


def _snapshot(raw: Mapping[str, Any]) -> Snapshot:
    return Snapshot(
        id=raw["DBClusterSnapshotIdentifier"].lower(),
        cluster_id=raw.get("DBClusterIdentifier", "").lower(),
        arn=raw.get("DBClusterSnapshotArn", ""),
        status=raw.get("Status", "unknown"),
        snapshot_type=raw.get("SnapshotType", "unknown"),
        created=_time(raw.get("SnapshotCreateTime")),
        tags=_tags(raw),
        source_arn=raw.get("SourceDBClusterSnapshotArn") or "",
        encrypted=bool(raw.get("StorageEncrypted")),
        progress=raw.get("PercentProgress"),
        kms_key_id=raw.get("KmsKeyId") or "",
    )


def _timestamp(value: str) -> datetime:
    """RDS's ISO 8601 times by the standard library: botocore's default (dateutil) spent about a third of the
    parsing of a describe page on them. Anything else, or a time without a zone, goes to botocore's parser."""
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parse_timestamp(value)


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) and value.tzinfo is not None else None
