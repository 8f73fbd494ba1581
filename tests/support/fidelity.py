"""RdsFidelity: botocore hooks that make moto behave like RDS where this service cares.

moto's RDS returns every record in one page, never refuses a snapshot of a busy cluster, counts automated
snapshots against its limit, finishes snapshots at once, has no DescribeAccountAttributes and never
throttles (see /work/shared/rds-facts.md). The layer adds those behaviours on one or more boto3 RDS
clients, in-process under `mock_aws` or in front of a `moto_server`:

    fidelity = RdsFidelity(clock=SimClock(start), quota=100, snapshot_creating_for=timedelta(minutes=20))
    client = fidelity.attach(boto3.client("rds", config=Config(retries={"mode": "standard"})))

How: a `before-send.rds` handler, registered last so the caller's own before-send handlers (such as a
client-side pacer) run first, sees every HTTP attempt below botocore's retry loop. It takes a token from
the bucket (or answers HTTP 400 `Throttling`, which standard-mode retries really see), adds latency,
counts the call, injects faults as real RDS error XML, answers the describes itself (real pagination
over records read from moto once per sweep, answered as RDS query XML; on demand with pages that shift,
listing a record twice or never, as an opaque Marker may while others change the account mid-sweep) and
DescribeAccountAttributes, and forwards everything else to moto. botocore's retry back-off sleeps go
through the layer's clock.

Several regions: one layer per region, all made by one `Regions` on one clock, each with its own token
bucket, quota and pagination. CopyDBClusterSnapshot (called in the destination region, the source named by
ARN) is served as RDS serves it, which moto does not (/work/shared/dr-facts.md §5): the copy stays `copying`
with a rising PercentProgress for `copying_for`, queued (at 0%) behind the copies of the same source
requested before it, in any region, until they end; at most `copy_limit` (5) copies may be in progress to one
region (`SnapshotQuotaExceeded` with its own message); an encrypted cross-region copy needs a KmsKeyId of the
destination region, an unencrypted source must not get one; the copy carries SourceDBClusterSnapshotArn;
deleting a `copying` copy cancels it; deleting the source before the copy is `available` fails the copy.

    regions = Regions(SimClock(start))
    east = regions.layer("us-east-1")
    west = regions.layer("us-west-2", quota=100, copying_for=timedelta(hours=3))

Several accounts: `Accounts` holds a `Regions` per account on one clock (moto keeps one backend per account;
a layer names its account on every request). Sharing and copying between accounts are served as RDS serves
them (/work/shared/dr-facts.md §1.7, §5), in-process and over a moto_server: ModifyDBClusterSnapshotAttribute
`restore` refuses `all` for an encrypted snapshot and any share of a snapshot under the account's AWS managed
`aws/rds` key (in-process only: a moto_server has no AWS managed keys);
DescribeDBClusterSnapshots with IncludeShared=True lists the snapshots shared with the caller (identified by
their ARN, SnapshotType `shared`, no tags: the owner's are not readable, nor by ListTagsForResource); a copy
named by another account's ARN is made from the owner's snapshot when, and only when, it is shared with the
caller (else DBClusterSnapshotNotFoundFault), `copying` for a while like any copy, and fails when the share
is revoked or the source deleted before it is `available`.

    accounts = Accounts(SimClock(start))
    prod = accounts.layer("111111111111", "eu-west-1")
    vault = accounts.layer("222222222222", "eu-central-1", copying_for=timedelta(hours=2))
"""

from __future__ import annotations

import base64
import binascii
import random
import re
import threading
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError

from tests.support import rds_xml
from tests.support.clock import Clock, RealClock, SimClock
from tests.support.moto_access import (
    ACCOUNT_HEADER,
    DEFAULT_ACCOUNT_ID,
    Forward,
    Moto,
    account_client,
    connect,
    snapshot_from_xml,
)
from tests.support.rds_xml import ClusterRecord, SnapshotRecord

__all__ = [
    "DEFAULT_ACCOUNT",
    "Accounts",
    "Clock",
    "RdsFidelity",
    "RealClock",
    "Regions",
    "SimClock",
    "SnapshotView",
    "TokenBucket",
]

PAGE_MIN, PAGE_MAX = 20, 100
HOLD_TAG = "snapshot-hold"  # the stack's hold deny (infra/contract.py HOLD_TAG)
AVAILABLE = "available"
COPYING = "copying"
FAILED = "failed"
COPY_LIMIT = 5  # cluster snapshot copies in progress to one destination region per account
DEFAULT_ACCOUNT = DEFAULT_ACCOUNT_ID  # moto's default account (123456789012)
SHARED = "shared"  # SnapshotType of a snapshot shared with the caller, as listed to it
ALL_ACCOUNTS = "all"  # the `restore` value that makes a snapshot public
CLUSTER_FILTERS = frozenset({"db-cluster-id", "engine"})
SNAPSHOT_FILTERS = frozenset({"db-cluster-id", "db-cluster-snapshot-id", "snapshot-type", "engine"})
_RETRY_HANDLER_ID = "retry-config-rds"
_MARKER_PREFIX = "fidelity1:"
_FILTER_NAME = re.compile(r"^Filters\.Filter\.(\d+)\.Name$")
Send = Callable[[], AWSResponse]


class TokenBucket:
    """RDS's API rate limit: `burst` requests at once, refilled at `rate` per second (per account)."""

    def __init__(self, burst: float = 300, rate: float = 12.0) -> None:
        self.burst = burst
        self.rate = rate
        self.tokens = float(burst)
        self._stamp: float | None = None

    @classmethod
    def unlimited(cls) -> TokenBucket:
        return cls(burst=float("inf"), rate=0.0)

    def take(self, now: float) -> bool:
        """One token at monotonic time `now`, if there is one."""
        if self._stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(frozen=True)
class SnapshotView:
    """A cluster snapshot as the layer shows it now (status and time after the layer's overrides)."""

    id: str
    cluster_id: str
    snapshot_type: str
    status: str
    created: datetime | None
    tags: Mapping[str, str]
    progress: int = 100
    encrypted: bool = False
    kms_key_id: str = ""
    source_arn: str = ""  # SourceDBClusterSnapshotArn: set on copies


@dataclass(frozen=True)
class _Life:
    started: datetime
    ready: datetime


@dataclass(eq=False)
class _Copy:
    """A copy made through the layer, requested at `started` (its SnapshotCreateTime). RDS queues copies of one
    source: it begins (`copying` at 0% until then) once `after`, the copy of the same source requested before
    it, has ended, and is `available` `duration` later, unless it is stopped first (failed, or cancelled)."""

    source_arn: str
    started: datetime
    duration: timedelta
    after: _Copy | None = None
    stopped: datetime | None = None

    def begins(self) -> datetime:
        return self.started if self.after is None else max(self.started, self.after.ends())

    def ends(self) -> datetime:
        """When the next copy of the source may begin: when this one is available, or stopped (not before
        its own turn: a copy cancelled while queued frees nothing earlier)."""
        ready = self.begins() + self.duration
        return ready if self.stopped is None else min(ready, max(self.begins(), self.stopped))

    def progress(self, now: datetime) -> int:
        begins = self.begins()
        if now < begins:
            return 0
        return min(99, int(100 * (now - begins) / self.duration)) if self.duration else 99

    def status(self, now: datetime) -> tuple[str, int]:
        if self.stopped is not None and self.stopped < self.begins() + self.duration:
            return FAILED, self.progress(self.stopped)
        if now < self.begins() + self.duration:
            return COPYING, self.progress(now)
        return AVAILABLE, 100


class Accounts:
    """Accounts on one clock: a `Regions` per account, one lock for all (a copy in one account reads the
    snapshot another shared with it), and what crosses accounts: a revoked share or a deleted source fails
    the copies of it still in progress wherever they are."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock: Clock = clock or SimClock(datetime.now(UTC))
        self.lock = threading.RLock()
        self._regions: dict[str, Regions] = {}
        self._last_copy: dict[str, _Copy] = {}  # source ARN -> its latest copy (RDS queues copies of one source)

    def regions(self, account: str = DEFAULT_ACCOUNT) -> Regions:
        """The account's regions (made on first use)."""
        with self.lock:
            found = self._regions.get(account)
            return found if found is not None else Regions(account=account, accounts=self)

    def register(self, account: str, regions: Regions) -> None:
        with self.lock:
            if self._regions.setdefault(account, regions) is not regions:
                raise ValueError(f"account {account} already has its regions")

    def layer(self, account: str, region: str, **options: Any) -> RdsFidelity:
        """A new layer for `region` of `account` (attach it to that account's clients of that region)."""
        return self.regions(account).layer(region, **options)

    def layer_of(self, account: str, region: str) -> RdsFidelity | None:
        regions = self._regions.get(account)
        return regions.get(region) if regions is not None else None

    def __iter__(self) -> Iterator[RdsFidelity]:
        return iter([layer for regions in list(self._regions.values()) for layer in regions])

    def client(self, account: str, service: str, region: str, **options: Any) -> Any:
        """A plain boto3 client of any service (KMS, STS, ...) that talks to `account` in moto."""
        return account_client(service, region, account, **options)

    def queue_copy(self, source_arn: str, duration: timedelta) -> _Copy:
        """A copy of `source_arn` requested now, behind the copies of that source (in any region or account)
        not yet ended."""
        with self.lock:
            now = self.clock.now()
            before = self._last_copy.get(source_arn)
            if before is not None and before.ends() <= now:
                before = None
            copy = _Copy(source_arn, now, duration, after=before)
            self._last_copy[source_arn] = copy
            return copy

    def source_deleted(self, arn: str) -> None:
        """A snapshot went away: every copy of it still `copying` fails (RDS: "might" fail; here it does)."""
        with self.lock:
            for layer in self:
                layer.fail_copies_of(arn)

    def share_changed(self, arn: str, shared_with: Iterable[str]) -> None:
        """The snapshot's `restore` attribute is now `shared_with`: copies of it still `copying` in
        accounts that lost the share fail (as a copy whose source went away)."""
        owner = _arn_account(arn)
        allowed = set(shared_with)
        with self.lock:
            for layer in self:
                if layer.account != owner and not _is_shared(allowed, layer.account):
                    layer.fail_copies_of(arn)


class Regions:
    """The regions of one account on one clock: a layer per region (its own bucket, quota, pages), one
    lock for all (a copy reads its source in another region's layer), and copies between them. One of
    `Accounts` when given (its clock and lock), else alone in its own."""

    def __init__(
        self, clock: Clock | None = None, *, account: str = DEFAULT_ACCOUNT, accounts: Accounts | None = None
    ) -> None:
        if accounts is not None and clock is not None and clock is not accounts.clock:
            raise ValueError("regions of Accounts run on the accounts' clock: leave clock= out")
        self.accounts = accounts or Accounts(clock)
        self.account = account
        self.clock: Clock = self.accounts.clock
        self.lock = self.accounts.lock
        self._layers: dict[str, RdsFidelity] = {}
        self.accounts.register(account, self)

    def layer(self, region: str, **options: Any) -> RdsFidelity:
        """A new layer for `region` (attach it to that region's clients); options as for RdsFidelity."""
        return RdsFidelity(region=region, regions=self, **options)

    def __getitem__(self, region: str) -> RdsFidelity:
        return self._layers[region]

    def get(self, region: str) -> RdsFidelity | None:
        return self._layers.get(region)

    def __iter__(self) -> Iterator[RdsFidelity]:
        return iter(list(self._layers.values()))

    def register(self, region: str, layer: RdsFidelity) -> None:
        with self.lock:
            if self._layers.setdefault(region, layer) is not layer:
                raise ValueError(f"region {region} already has a layer")

    def queue_copy(self, source_arn: str, duration: timedelta) -> _Copy:
        return self.accounts.queue_copy(source_arn, duration)

    def source_deleted(self, arn: str) -> None:
        """A snapshot went away: every copy of it still `copying` fails, in any account."""
        self.accounts.source_deleted(arn)


@dataclass
class _Busy:
    attempts: int = 0
    until: datetime | None = None
    status: str | None = None


@dataclass
class _Trigger:
    operation: str
    nth: int
    action: Callable[[], None]
    seen: int = 0


@dataclass(frozen=True)
class _Listing:
    size: int
    after: str | None  # the last identifier of the previous page
    filters: dict[str, list[str]]


class _Refusal(Exception):
    """An RDS error answer (counted in `faults`)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


class _Body(BytesIO):
    """What AWSResponse reads its content from (`raw.stream()`)."""

    def stream(self, **_: Any) -> Iterable[bytes]:
        yield self.read()


class RdsFidelity:
    def __init__(
        self,
        *,
        clock: Clock | None = None,
        quota: int = 100,
        bucket: TokenBucket | None = None,
        latency: float = 0.0,
        snapshot_creating_for: timedelta = timedelta(0),
        throttle_probability: float = 0.0,
        seed: int = 0,
        marker_on_full_last_page: bool = False,
        empty_marker_on_last_page: bool = False,
        reread_each_sweep: bool = True,
        copying_for: timedelta = timedelta(hours=1),
        copy_limit: int = COPY_LIMIT,
        region: str | None = None,
        regions: Regions | None = None,
        deny_inherited_hold: bool = True,
        refuse_default_key_share: bool = True,
    ) -> None:
        """
        clock: SimClock (default, starting now) or RealClock; every time the layer uses comes from it.
        quota: manual cluster snapshots allowed (RDS default 100); automated ones do not count.
        bucket: the API token bucket (default TokenBucket(burst=300, rate=12)); TokenBucket.unlimited() for none.
        latency: seconds slept on the clock per HTTP attempt.
        snapshot_creating_for: how long a snapshot created through the layer stays `creating`.
        throttle_probability: chance that an attempt which got a token is throttled anyway (seeded).
        marker_on_full_last_page: a last page that is exactly full still carries a Marker, and the
            page after it is empty (AWS APIs do this at times; paginating code must cope).
        empty_marker_on_last_page: the last page carries an empty `<Marker></Marker>` instead of none. RDS
            documents no such page, but botocore's paginator ends a chain on an empty token, so a sweep must too
            (sent back, an empty Marker asks for the first page again).
        reread_each_sweep: read moto again at the start of every sweep, to notice changes made around the
            layer. False when every change goes through the layer (or is followed by `refresh()`): over HTTP
            that saves a full read per run.
        copying_for: how long a copy made through the layer stays `copying` (RDS: often hours).
        copy_limit: copies in progress to this region at once (RDS: 5 for cluster snapshots).
        region, regions: made by `Regions.layer` (the clock is then the regions' clock); alone, the layer
            is its own one region, learnt from the first client attached.
        deny_inherited_hold: a create of a snapshot of a cluster that copies its tags to snapshots and
            carries a `snapshot-hold` tag is refused with AccessDenied, as the stack's IAM would where RDS
            authorises inherited tags as AddTagsToResource (rds:TagsFromRequest; unconfirmed, see rds-facts).
        refuse_default_key_share: sharing a snapshot encrypted under the account's `aws/rds` key is refused, as
            RDS documents. False: the share is accepted and only the other account's copy fails
            (KMSKeyNotAccessibleFault), as a practitioner saw (awslabs/aurora-snapshot-tool#26). Either way
            nothing under that key can be copied into another account.
        """
        if regions is not None and clock is not None and clock is not regions.clock:
            raise ValueError("a layer of Regions runs on the regions' clock: leave clock= out")
        self._regions = regions or Regions(clock)
        self.clock: Clock = self._regions.clock
        self.region = region
        self.account = self._regions.account
        if region is not None:
            self._regions.register(region, self)
        self.refuse_default_key_share = refuse_default_key_share
        self.quota = quota
        self.deny_inherited_hold = deny_inherited_hold
        self.bucket = bucket or TokenBucket()
        self.latency = latency
        self.snapshot_creating_for = snapshot_creating_for
        self.throttle_probability = throttle_probability
        self.marker_on_full_last_page = marker_on_full_last_page
        self.empty_marker_on_last_page = empty_marker_on_last_page
        self.reread_each_sweep = reread_each_sweep
        self.copying_for = copying_for
        self.copy_limit = copy_limit
        self._random = random.Random(seed)
        self._lock = self._regions.lock
        self._moto: Moto | None = None
        self._clusters: dict[str, ClusterRecord] = {}
        self._snapshots: dict[str, SnapshotRecord] = {}
        self._cluster_ids: list[str] | None = None
        self._snapshot_ids: list[str] | None = None
        self._clusters_stale = True
        self._snapshots_stale = True
        self._manual_used = 0
        self._life: dict[str, _Life] = {}
        self._copies: dict[str, _Copy] = {}
        self._status: dict[str, str] = {}
        self._cluster_created: dict[str, datetime] = {}
        self._busy: dict[str, _Busy] = {}
        self._triggers: list[_Trigger] = []
        self._shifts: dict[str, int] = {}
        self._stalled: set[str] = set()
        self._lost: Counter[str] = Counter()  # operation -> answers still to lose after applying
        self.calls: Counter[str] = Counter()
        self.shares_asked: list[tuple[str, tuple[str, ...], tuple[str, ...]]] = []  # (snapshot, added, removed)
        self.throttled: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.retry_sleep = 0.0

    # ----------------------------------------------------------------------------------------- wiring

    def attach(self, client: Any) -> Any:
        """Route every HTTP attempt of this RDS client through the layer; returns the client."""
        if getattr(client, "_rds_fidelity", None) is not None:
            raise ValueError("this client already has a fidelity layer attached")
        if client.meta.service_model.service_name != "rds":
            raise ValueError(f"the fidelity layer emulates RDS, not {client.meta.service_model.service_name}")
        with self._lock:
            moto = connect(client, self.account)
            if self.region is not None and moto.region != self.region:
                raise ValueError(f"this layer serves region {self.region}, not {moto.region}")
            if self._moto is None:
                if self.region is None:
                    self.region = moto.region
                    self._regions.register(moto.region, self)
                self._moto = moto
            elif (moto.kind, moto.region) != (self._moto.kind, self._moto.region):
                raise ValueError(
                    f"one layer is one account and region: {self._moto.kind} {self._moto.region}, "
                    f"not {moto.kind} {moto.region}"
                )
            forward = self._moto.forwarder(client)
        events = client.meta.events

        def before_send(request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
            return self._attempt(request, event_name, forward)

        events.register_last("before-send.rds", before_send)
        self._route_retry_sleep(events)
        client._rds_fidelity = self
        return client

    def _route_retry_sleep(self, events: Any) -> None:
        """botocore sleeps its retry back-off with time.sleep; make that sleep the layer's clock's."""
        emitter = getattr(events, "_emitter", events)
        entry = getattr(emitter, "_unique_id_handlers", {}).get(_RETRY_HANDLER_ID)
        if not entry:
            return
        original = entry["handler"]

        def needs_retry(**kwargs: Any) -> Any:
            delay = original(**kwargs)
            if isinstance(delay, int | float) and not isinstance(delay, bool) and delay > 0:
                with self._lock:
                    self.retry_sleep += delay
                self.clock.sleep(delay)
                return 0  # retry now: the clock already waited
            return delay

        events.unregister("needs-retry.rds", unique_id=_RETRY_HANDLER_ID)
        events.register("needs-retry.rds", needs_retry, unique_id=_RETRY_HANDLER_ID)

    def for_region(self, region: str | None) -> RdsFidelity:
        """This layer, or the layer of `region` made by the same Regions (for clients of another region)."""
        if region is None or region == self.region:
            return self
        layer = self._regions.get(region)
        if layer is None:
            raise ValueError(f"no fidelity layer for region {region}: make one with Regions.layer({region!r})")
        return layer

    @property
    def moto(self) -> Moto:
        if self._moto is None:
            raise RuntimeError("attach the layer to a client first (fidelity.attach(client))")
        return self._moto

    # --------------------------------------------------------------------------------- one attempt

    def _attempt(self, request: AWSPreparedRequest, event_name: str, forward: Forward) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        request.headers[ACCOUNT_HEADER] = self.account  # moto serves this layer's account
        if self.latency:
            self.clock.sleep(self.latency)
        with self._lock:
            if not self._admit():
                self.throttled[operation] += 1
                return _response(request, 400, rds_xml.error("Throttling", "Rate exceeded"))
            self.calls[operation] += 1
            actions = self._due_triggers(operation)
        for action in actions:  # outside the lock: an action may run the engine, whose worker threads call here
            action()
        with self._lock:

            def send() -> AWSResponse:
                return forward(request, event_name)

            answer = {
                "DescribeDBClusters": self._describe_clusters,
                "DescribeDBClusterSnapshots": self._describe_snapshots,
                "DescribeAccountAttributes": self._describe_account_attributes,
                "CreateDBClusterSnapshot": self._create_snapshot,
                "DeleteDBClusterSnapshot": self._delete_snapshot,
                "CopyDBClusterSnapshot": self._copy_snapshot,
                "ModifyDBClusterSnapshotAttribute": self._modify_snapshot_attribute,
                "ListTagsForResource": self._tagging,
                "AddTagsToResource": self._tagging,
                "RemoveTagsFromResource": self._tagging,
            }.get(operation)
            if answer is None:
                response = send()
                if not operation.startswith(("Describe", "List")):
                    self.refresh()  # something the layer does not model changed moto: read it again
                return response
            try:
                response = answer(_params(request.body), request, send)
            except _Refusal as refusal:
                self.faults[refusal.code] += 1
                return _response(request, refusal.status, rds_xml.error(refusal.code, refusal.message))
            if self._lost[operation] > 0:  # applied, but the answer never reaches the caller
                self._lost[operation] -= 1
                self.faults["ReadTimeout"] += 1
                raise ReadTimeoutError(endpoint_url=request.url)
            return response

    def _admit(self) -> bool:
        if not self.bucket.take(self.clock.monotonic()):
            return False
        return not (self.throttle_probability and self._random.random() < self.throttle_probability)

    def _due_triggers(self, operation: str) -> list[Callable[[], None]]:
        actions = []
        for trigger in list(self._triggers):
            if trigger.operation == operation:
                trigger.seen += 1
                if trigger.seen == trigger.nth:
                    self._triggers.remove(trigger)
                    actions.append(trigger.action)
        return actions

    # ------------------------------------------------------------------------------------ describes

    def _listing(self, params: Mapping[str, str], allowed: frozenset[str]) -> _Listing:
        size = int(params.get("MaxRecords", PAGE_MAX))
        if not PAGE_MIN <= size <= PAGE_MAX:
            raise _Refusal("InvalidParameterValue", f"Invalid value {size} for MaxRecords. Must be between 20 and 100")
        after = None
        if params.get("Marker"):
            after = _unmark(params["Marker"])
            if after is None:
                raise _Refusal("InvalidParameterValue", f"Invalid Marker: {params['Marker']}")
        filters = _filters(params)
        unknown = sorted(set(filters) - allowed)
        if unknown:
            raise _Refusal("InvalidParameterValue", f"Unrecognized filter name: {unknown[0]}")
        return _Listing(size, after, filters)

    def _page(
        self, operation: str, ids: list[str], listing: _Listing, keep: Callable[[str], bool]
    ) -> tuple[list[str], str | None]:
        """Up to `size` identifiers after the marker that `keep` keeps, and the Marker for the rest."""
        index = 0
        if listing.after is not None:
            index = _shifted(ids, bisect_right(ids, listing.after), self._shifts.get(operation, 0), keep)
        chosen: list[str] = []
        while index < len(ids) and len(chosen) < listing.size:
            if keep(ids[index]):
                chosen.append(ids[index])
            index += 1
        more = any(keep(ident) for ident in _from(ids, index))
        if listing.after is not None and operation in self._stalled:
            return chosen, _mark(listing.after)
        if more or (self.marker_on_full_last_page and len(chosen) == listing.size):
            return chosen, _mark(chosen[-1])
        return chosen, "" if self.empty_marker_on_last_page else None

    def _describe_clusters(self, params: Mapping[str, str], request: AWSPreparedRequest, _: Send) -> AWSResponse:
        listing = self._listing(params, CLUSTER_FILTERS)
        named = _resource_id(params["DBClusterIdentifier"]) if params.get("DBClusterIdentifier") else None
        wanted = {_resource_id(value) for value in listing.filters.get("db-cluster-id", [])}
        if named:
            wanted.add(named)
        engines = set(listing.filters.get("engine", []))
        if (listing.after is None and not wanted and self.reread_each_sweep) or self._clusters_stale:
            self._sync_clusters()  # a sweep starts: read moto once, serve its later pages from this read
        if named and named not in self._clusters:
            raise _Refusal("DBClusterNotFoundFault", f"DBCluster {named} not found.", 404)

        def keep(ident: str) -> bool:
            cluster = self._clusters[ident]
            return (not wanted or ident in wanted) and (not engines or cluster.engine in engines)

        chosen, marker = self._page("DescribeDBClusters", self._sorted_clusters(), listing, keep)
        members = [self._cluster_xml(self._clusters[i]) for i in chosen]
        return _response(request, 200, rds_xml.page("DescribeDBClusters", "DBClusters", members, marker))

    def _describe_snapshots(self, params: Mapping[str, str], request: AWSPreparedRequest, _: Send) -> AWSResponse:
        listing = self._listing(params, SNAPSHOT_FILTERS)
        filters = listing.filters
        named = (
            self._snapshot_key(params["DBClusterSnapshotIdentifier"])
            if params.get("DBClusterSnapshotIdentifier")
            else None
        )
        snapshots = {self._snapshot_key(value) for value in filters.get("db-cluster-snapshot-id", [])}
        if named:
            snapshots.add(named)
        clusters = {_resource_id(value) for value in filters.get("db-cluster-id", [])}
        if params.get("DBClusterIdentifier"):
            clusters.add(_resource_id(params["DBClusterIdentifier"]))
        include_shared = params.get("IncludeShared") == "true" or any(key.startswith("arn:") for key in snapshots)
        types = {params["SnapshotType"]} if params.get("SnapshotType") else {"manual", "automated", SHARED}
        if "snapshot-type" in filters:
            types &= set(filters["snapshot-type"])
        engines = set(filters.get("engine", []))
        sweep = listing.after is None and not clusters and not snapshots
        if (sweep and self.reread_each_sweep) or self._snapshots_stale:
            self._sync_snapshots()
        records, ids = self._snapshots, self._sorted_snapshots()
        if include_shared:
            records = {**self._snapshots, **self._shared_with_me()}
            ids = sorted(records)
        if named and named not in records:
            raise _Refusal("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {named} not found.", 404)

        def keep(ident: str) -> bool:
            snap = records[ident]
            return (
                snap.snapshot_type in types
                and (not clusters or snap.cluster_id in clusters)
                and (not snapshots or ident in snapshots)
                and (not engines or snap.engine in engines)
            )

        chosen, marker = self._page("DescribeDBClusterSnapshots", ids, listing, keep)
        members = [self._snapshot_xml(records[i]) for i in chosen]
        return _response(
            request, 200, rds_xml.page("DescribeDBClusterSnapshots", "DBClusterSnapshots", members, marker)
        )

    def _describe_account_attributes(self, _: Mapping[str, str], request: AWSPreparedRequest, __: Send) -> AWSResponse:
        if self._clusters_stale:
            self._sync_clusters()
        if self._snapshots_stale:
            self._sync_snapshots()
        clusters = len(self._clusters)
        quotas = [
            ("DBClusters", clusters, max(40, clusters)),
            ("ManualClusterSnapshots", self._manual_used, self.quota),
        ]
        return _response(request, 200, rds_xml.account_quotas(quotas))

    # ------------------------------------------------------------------------------------ mutations

    def _create_snapshot(self, params: Mapping[str, str], request: AWSPreparedRequest, send: Send) -> AWSResponse:
        cluster_id = params.get("DBClusterIdentifier", "").lower()
        snapshot_id = params.get("DBClusterSnapshotIdentifier", "").lower()
        if self._clusters_stale or cluster_id not in self._clusters:
            self._sync_clusters()
        if self._snapshots_stale:
            self._sync_snapshots()
        # A missing cluster or a taken identifier: moto gives the real error.
        if cluster_id in self._clusters and snapshot_id not in self._snapshots:
            self._deny_inherited_hold(cluster_id, snapshot_id)
            self._check_snapshot_allowed(cluster_id)
        response = send()
        if response.status_code != 200:
            if b"<Code>SnapshotQuotaExceeded</Code>" in response.content and self._manual_used < self.quota:
                raise RuntimeError(
                    "moto's own snapshot limit (MOTO_RDS_SNAPSHOT_LIMIT, default 1000, counting automated "
                    "snapshots too) refused a snapshot the layer's quota allows: raise it (moto_rds() does)"
                )
            return response
        record = snapshot_from_xml(response.content)
        now = self.clock.now()
        self._life[record.id] = _Life(started=now, ready=now + self.snapshot_creating_for)
        self._add_snapshot(record)
        # RDS answers at once with the snapshot `creating`, however soon it is available (rds-facts).
        answer = rds_xml.snapshot_xml(record, status="creating", progress=0, created=now)
        return _response(request, 200, rds_xml.result("CreateDBClusterSnapshot", answer))

    def _deny_inherited_hold(self, cluster_id: str, snapshot_id: str) -> None:
        """IAM, before RDS looks: the stack denies rds:AddTagsToResource whenever a request's tag keys include
        the hold key in any letter case (aws:TagKeys, StringEqualsIgnoreCase)."""
        cluster = self._clusters[cluster_id]
        inherited = [key for key, _ in cluster.tags] if cluster.copy_tags_to_snapshot else []
        if self.deny_inherited_hold and any(key.lower() == HOLD_TAG for key in inherited):
            arn = cluster.arn.replace(":cluster:", ":cluster-snapshot:").rsplit(":", 1)[0] + f":{snapshot_id}"
            raise _Refusal(
                "AccessDenied",
                f"User: arn:aws:sts::123456789012:assumed-role/backup/function is not authorized to perform: "
                f"rds:AddTagsToResource on resource: {arn} with an explicit deny in an identity-based policy",
                status=403,
            )

    def _check_snapshot_allowed(self, cluster_id: str) -> None:
        """Refuse as RDS would: a cluster that is not available (or busy), then a full quota."""
        status = self.cluster_status(cluster_id)
        busy = self._busy.get(cluster_id)
        if busy is not None and busy.attempts > 0:
            busy.attempts -= 1
            status = status if status != AVAILABLE else "backing-up"
        elif busy is not None and busy.until is not None and self.clock.now() < busy.until:
            status = status if status != AVAILABLE else "backing-up"
        if status != AVAILABLE:
            raise _Refusal(
                "InvalidDBClusterStateFault",
                f"DB cluster {cluster_id} is {status}: your DB cluster must be in the available state "
                "to take a DB cluster snapshot",
            )
        if self._manual_used >= self.quota:
            raise _Refusal("SnapshotQuotaExceeded", f"Cannot create more than {self.quota} manual snapshots")

    def _delete_snapshot(self, params: Mapping[str, str], request: AWSPreparedRequest, send: Send) -> AWSResponse:
        snapshot_id = params.get("DBClusterSnapshotIdentifier", "").lower()
        if self._snapshots_stale:
            self._sync_snapshots()
        record = self._snapshots.get(snapshot_id)
        status = self._view(record)[0] if record is not None else AVAILABLE
        if status not in (AVAILABLE, FAILED, COPYING):  # deleting a copy while it is copying cancels the copy
            raise _Refusal(
                "InvalidDBClusterSnapshotStateFault",
                f"Cannot delete the snapshot {snapshot_id} while it is {status}; "
                "only available snapshots can be deleted",
            )
        response = send()
        if response.status_code == 200:
            self._remove_snapshot(snapshot_id)
            if record is not None:
                self._regions.source_deleted(record.arn)
        return response

    def _copy_snapshot(self, params: Mapping[str, str], request: AWSPreparedRequest, send: Send) -> AWSResponse:
        """CopyDBClusterSnapshot, called in this (the destination) region. RDS's checks moto lacks come
        first; moto then makes the record (and gives the real errors for a taken target, a missing source
        and a KmsKeyId its KMS does not know: KMSKeyNotAccessibleFault)."""
        if self._snapshots_stale:
            self._sync_snapshots()
        target = params.get("TargetDBClusterSnapshotIdentifier", "").lower()
        if target in self._snapshots:
            return send()  # DBClusterSnapshotAlreadyExistsFault
        address = _snapshot_address(params.get("SourceDBClusterSnapshotIdentifier", ""))
        if address.account not in (None, self.account):
            return self._copy_shared(params, request, address)
        source_region, source_id = address.region, address.id
        source_layer = self if source_region in (None, self.region) else self._regions.get(source_region or "")
        source = source_layer.record(source_id) if source_layer is not None else None
        if source_layer is not None and source is None:
            return send()  # DBClusterSnapshotNotFoundFault
        if source is not None and source_layer is not None:
            self._check_copy_source(source_layer, source, params, cross_region=source_layer is not self)
        self._check_copy_room()
        self._check_key(params.get("KmsKeyId", ""))
        response = send()
        if response.status_code != 200:
            return response
        source_arn = source.arn if source is not None else params["SourceDBClusterSnapshotIdentifier"]
        return self._copied(request, snapshot_from_xml(response.content), source_arn)

    def _copied(self, request: AWSPreparedRequest, record: SnapshotRecord, source_arn: str) -> AWSResponse:
        """A copy just made: `copying` for `copying_for`, queued behind the earlier copies of its source."""
        self._copies[record.id] = self._regions.queue_copy(source_arn, self.copying_for)
        self._add_snapshot(record)
        return _response(request, 200, rds_xml.result("CopyDBClusterSnapshot", self._snapshot_xml(record)))

    def _check_copy_source(
        self,
        layer: RdsFidelity,
        source: SnapshotRecord,
        params: Mapping[str, str],
        *,
        cross_region: bool,
        cross_account: bool = False,
    ) -> None:
        status = layer._view(source)[0]
        if status != AVAILABLE:
            raise _Refusal(
                "InvalidDBClusterSnapshotStateFault",
                f"Source snapshot {source.id} is {status}; only available snapshots can be copied",
            )
        key = params.get("KmsKeyId", "")
        if source.storage_encrypted and cross_account and not key:
            raise _Refusal(
                "InvalidParameterValue", "Must specify a KMS key of this account to copy an encrypted shared snapshot"
            )
        if source.storage_encrypted and cross_region and not key:
            raise _Refusal("InvalidParameterValue", "Must specify new KMS key for cross region encrypted snapshot copy")
        if not source.storage_encrypted and key:
            raise _Refusal(
                "InvalidParameterValue",
                f"Snapshot {source.id} is not encrypted: a KmsKeyId cannot be given, an unencrypted DB cluster "
                "snapshot cannot be encrypted when it is copied",
            )

    def _check_key(self, key: str) -> None:
        if key and self.moto.kms_key_arn(key) is None:
            raise _Refusal(
                "KMSKeyNotAccessibleFault",
                f"The target KMS key [{key}] does not exist, is not enabled or you do not have permissions "
                "to access it",
            )

    def _check_copy_room(self) -> None:
        """The in-flight limit, then the destination's manual snapshot quota (same wire code, own messages)."""
        now = self.clock.now()
        in_flight = sum(
            1 for ident, copy in self._copies.items() if ident in self._snapshots and copy.status(now)[0] == COPYING
        )
        if in_flight >= self.copy_limit:
            raise _Refusal(
                "SnapshotQuotaExceeded",
                f"Cannot copy more than {self.copy_limit} DB cluster snapshots at a time to region {self.region}: "
                f"{in_flight} copies are in progress",
            )
        if self._manual_used >= self.quota:
            raise _Refusal("SnapshotQuotaExceeded", f"Cannot create more than {self.quota} manual snapshots")

    # ------------------------------------------------------------------------------ across accounts

    def _snapshot_key(self, value: str) -> str:
        """How a snapshot named by identifier or ARN is keyed here: its identifier when it is this account's,
        its ARN when another account's (as RDS lists snapshots shared with the caller)."""
        if value.startswith("arn:") and _arn_account(value) not in ("", self.account):
            return value.lower()
        return _resource_id(value)

    def _shared_with_me(self) -> dict[str, SnapshotRecord]:
        """Other accounts' manual snapshots in this region shared with this account, keyed by ARN, as RDS
        lists them here: identified by their ARN, type `shared`, no tags (the owner's are not readable from
        here), status and progress as the owner's layer shows them. RDS: TagList [unconf: design for none];
        SnapshotType `shared` [unconf]; the ARN as identifier [prac]."""
        shared: dict[str, SnapshotRecord] = {}
        for owner in self._regions.accounts:
            if owner.account == self.account or owner.region != self.region or owner._moto is None:
                continue
            if owner._snapshots_stale:
                owner._sync_snapshots()
            for record in owner._snapshots.values():
                if record.snapshot_type != "manual" or not _is_shared(record.shared_with, self.account):
                    continue
                status, progress, created = owner._view(record)
                copy = owner._copies.get(record.id)
                shared[record.arn.lower()] = replace(
                    record,
                    id=record.arn.lower(),
                    snapshot_type=SHARED,
                    tags=[],
                    status=status,
                    percent_progress=progress,
                    created=created,
                    source_arn=copy.source_arn if copy is not None else "",
                    shared_with=(),
                )
        return shared

    def _copy_shared(
        self, params: Mapping[str, str], request: AWSPreparedRequest, source: _SnapshotAddress
    ) -> AWSResponse:
        """CopyDBClusterSnapshot of another account's snapshot named by its ARN (in this region or another):
        found only when shared with this account (else not found, as an unknown one); encrypted, it needs a
        KmsKeyId of this account and region, and a source key this account may use: never the owner's AWS
        managed `aws/rds` key (key policies of customer managed keys are not modelled: they are usable).
        The copy carries exactly the request's Tags (CopyTags has no tags to read across accounts)."""
        arn = params["SourceDBClusterSnapshotIdentifier"]
        owner = self._regions.accounts.layer_of(source.account or "", source.region or self.region or "")
        record = owner.record(source.id) if owner is not None else None
        if owner is None or record is None or record.snapshot_type != "manual":
            raise _Refusal("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {arn} not found.", 404)
        if not _is_shared(record.shared_with, self.account):
            raise _Refusal("DBClusterSnapshotNotFoundFault", f"DBClusterSnapshot {arn} not found.", 404)
        self._check_copy_source(owner, record, params, cross_region=owner.region != self.region, cross_account=True)
        if record.storage_encrypted and owner.moto.key_manager(record.kms_key_id) == "AWS":
            raise _Refusal(
                "KMSKeyNotAccessibleFault",
                f"The source snapshot KMS key [{record.kms_key_id}] does not exist, is not enabled or you do not "
                "have permissions to access it.",
            )
        self._check_copy_room()
        key = params.get("KmsKeyId", "")
        self._check_key(key)
        target = params.get("TargetDBClusterSnapshotIdentifier", "").lower()
        key_arn = self.moto.kms_key_arn(key) if key else None
        copy = self.moto.copy_shared(owner.moto, record, target, _request_tags(params), key_arn)
        return self._copied(request, copy, record.arn)

    def _modify_snapshot_attribute(
        self, params: Mapping[str, str], request: AWSPreparedRequest, send: Send
    ) -> AWSResponse:
        """ModifyDBClusterSnapshotAttribute (`restore`): RDS's refusals moto lacks for an encrypted snapshot,
        then moto; a share taken away fails the copies of it still in progress in that account."""
        snapshot_id = _resource_id(params.get("DBClusterSnapshotIdentifier", ""))
        record = self.record(snapshot_id)
        adding = _members(params, "ValuesToAdd")
        self.shares_asked.append((snapshot_id, tuple(adding), tuple(_members(params, "ValuesToRemove"))))
        if record is not None and adding:
            status = self._view(record)[0]
            if status != AVAILABLE:  # [unconf]: RDS lists this fault for the call; design for it
                raise _Refusal(
                    "InvalidDBClusterSnapshotStateFault",
                    f"DB cluster snapshot {record.id} is {status}; only available snapshots can be shared",
                )
            if record.storage_encrypted:
                self._check_encrypted_share(record, adding)
        response = send()
        if response.status_code != 200 or record is None:
            self._snapshots_stale = True
            return response
        shared_with = self.moto.shared_with(record.id)  # updated in place: no re-read of the whole listing
        self._snapshots[record.id] = replace(record, shared_with=shared_with)
        self._regions.accounts.share_changed(record.arn, shared_with)
        return response

    def _check_encrypted_share(self, record: SnapshotRecord, adding: list[str]) -> None:
        """RDS: an encrypted snapshot is shared with account ids only, never `all`; and not at all under the
        account's default key (aws/rds). Codes and messages [unconf]: InvalidParameterValue, in RDS's words."""
        if ALL_ACCOUNTS in adding:
            raise _Refusal(
                "InvalidParameterValue",
                f"The DB cluster snapshot {record.id} is encrypted: it can be shared with account ids, "
                "not made public (all)",
            )
        if self.refuse_default_key_share and self.moto.key_manager(record.kms_key_id) == "AWS":
            raise _Refusal(
                "InvalidParameterValue",
                f"You can't share the DB cluster snapshot {record.id}: it is encrypted using the default KMS key "
                f"of the account ({record.kms_key_id}). Copy it under a customer managed key and share the copy.",
            )

    def _tagging(self, params: Mapping[str, str], request: AWSPreparedRequest, send: Send) -> AWSResponse:
        """Tags of a resource of this account and region only: another account's shared snapshot answers as
        RDS does (dr-facts §1.4); moto would look the name up in the caller's account."""
        name = params.get("ResourceName", "")
        parts = name.split(":")
        if name.startswith("arn:") and len(parts) > 4 and (parts[3], parts[4]) != (self.region, self.account):
            raise _Refusal(
                "InvalidParameterValue", "The specified resource name does not match an RDS resource in this region."
            )
        response = send()
        action = params.get("Action")
        if action == "ListTagsForResource":
            return response
        record = self._snapshots.get(parts[-1].lower()) if ":cluster-snapshot:" in name else None
        if response.status_code == 200 and record is not None and not self._snapshots_stale:
            # A snapshot's tags changed as moto changes them: updated in place, no re-read of the listing.
            added = _request_tags(params) if action == "AddTagsToResource" else {}
            gone = set(added) | set(_members(params, "TagKeys"))
            tags = [(key, value) for key, value in record.tags if key not in gone] + list(added.items())
            self._snapshots[record.id] = replace(record, tags=tags)
        else:
            self.refresh()
        return response

    def record(self, snapshot_id: str) -> SnapshotRecord | None:
        """The snapshot's record as the layer holds it (read from moto when stale), or None."""
        with self._lock:
            if self._snapshots_stale:
                self._sync_snapshots()
            return self._snapshots.get(snapshot_id.lower())

    def fail_copies_of(self, source_arn: str) -> None:
        """The source of these copies is gone: those still copying end `failed`."""
        with self._lock:
            now = self.clock.now()
            for copy in self._copies.values():
                if copy.source_arn == source_arn and copy.status(now)[0] == COPYING:
                    copy.stopped = now

    # --------------------------------------------------------------------------------- the registry

    def refresh(self) -> None:
        """Forget what the layer read from moto; it reads again when next needed (after outside changes)."""
        with self._lock:
            self._clusters_stale = True
            self._snapshots_stale = True

    def _sync_clusters(self) -> None:
        self._clusters = {cluster.id: cluster for cluster in self.moto.clusters()}
        self._cluster_ids = None
        self._clusters_stale = False

    def _sync_snapshots(self) -> None:
        self._snapshots = {snap.id: snap for snap in self.moto.snapshots()}
        self._manual_used = sum(1 for snap in self._snapshots.values() if _counts(snap))
        self._snapshot_ids = None
        self._snapshots_stale = False

    def _sorted_clusters(self) -> list[str]:
        if self._cluster_ids is None:
            self._cluster_ids = sorted(self._clusters)
        return self._cluster_ids

    def _sorted_snapshots(self) -> list[str]:
        if self._snapshot_ids is None:
            self._snapshot_ids = sorted(self._snapshots)
        return self._snapshot_ids

    def _add_snapshot(self, record: SnapshotRecord) -> None:
        if record.id not in self._snapshots and _counts(record):
            self._manual_used += 1
        self._snapshots[record.id] = record
        self._snapshot_ids = None

    def _remove_snapshot(self, snapshot_id: str) -> None:
        record = self._snapshots.pop(snapshot_id, None)
        if record is not None and _counts(record):
            self._manual_used -= 1
        self._life.pop(snapshot_id, None)
        copy = self._copies.pop(snapshot_id, None)
        if copy is not None and copy.stopped is None:  # a copy deleted while copying is cancelled: the next begins
            copy.stopped = self.clock.now()
        self._snapshot_ids = None

    def _view(self, record: SnapshotRecord) -> tuple[str, int, datetime | None]:
        """(Status, PercentProgress, SnapshotCreateTime) as RDS would show them now."""
        copy = self._copies.get(record.id)
        if copy is not None:
            return (*copy.status(self.clock.now()), copy.started)
        life = self._life.get(record.id)
        if life is None:
            return record.status, record.percent_progress, record.created
        now = self.clock.now()
        if now < life.ready:
            done = (now - life.started) / (life.ready - life.started)
            return "creating", min(99, int(100 * done)), life.started
        return record.status, 100, life.started

    def _cluster_xml(self, record: ClusterRecord) -> str:
        created = self._cluster_created.get(record.id, record.created)
        return rds_xml.cluster_xml(record, status=self.cluster_status(record.id), created=created)

    def _snapshot_xml(self, record: SnapshotRecord) -> str:
        status, progress, created = self._view(record)
        copy = self._copies.get(record.id)
        if copy is not None:
            record = replace(record, source_arn=copy.source_arn)
        return rds_xml.snapshot_xml(record, status=status, progress=progress, created=created)

    # ------------------------------------------------------------------------- what tests control

    def cluster_status(self, cluster_id: str) -> str:
        """The cluster's Status as DescribeDBClusters shows it now."""
        cluster_id = cluster_id.lower()
        with self._lock:
            if cluster_id in self._status:
                return self._status[cluster_id]
            busy = self._busy.get(cluster_id)
            if busy is not None and busy.status and busy.until is not None and self.clock.now() < busy.until:
                return busy.status
            if self._clusters_stale:
                self._sync_clusters()
            cluster = self._clusters.get(cluster_id)
            return cluster.status if cluster is not None else "deleted"

    def set_status(self, cluster_id: str, status: str | None) -> None:
        """Show this status for the cluster (e.g. "stopped") and refuse its snapshots; None restores moto's."""
        with self._lock:
            if status is None:
                self._status.pop(cluster_id.lower(), None)
            else:
                self._status[cluster_id.lower()] = status

    def make_busy(
        self,
        cluster_id: str,
        *,
        attempts: int | None = None,
        until: datetime | None = None,
        status: str | None = None,
    ) -> None:
        """Refuse CreateDBClusterSnapshot with InvalidDBClusterStateFault for the next `attempts`, or until
        `until` on the layer's clock. DescribeDBClusters still says available (the race RDS has) unless
        `status` is given, which it then shows until `until`."""
        if (attempts is None) == (until is None):
            raise ValueError("give exactly one of attempts= or until=")
        if status is not None and until is None:
            raise ValueError("status= goes with until= (how long the cluster shows it)")
        with self._lock:
            self._busy[cluster_id.lower()] = _Busy(attempts=attempts or 0, until=until, status=status)

    def shift_pages(self, operation: str, by: int) -> None:
        """Every later page of `operation` ("DescribeDBClusters" or "DescribeDBClusterSnapshots") starts `by`
        records away from where its Marker points, as an offset-based Marker would after records were added
        (`by` < 0: the last records of the page before come again) or removed (`by` > 0: records are never
        listed) before it mid-sweep. 0 restores exact pages."""
        if operation not in ("DescribeDBClusters", "DescribeDBClusterSnapshots"):
            raise ValueError(f"pages of {operation!r} cannot shift: only the two describes page")
        if abs(by) >= PAGE_MIN:
            raise ValueError(
                f"a shift of {by} could stall a sweep at {PAGE_MIN} records a page: keep |by| < {PAGE_MIN}"
            )
        with self._lock:
            self._shifts[operation] = by

    def stall_pages(self, operation: str) -> None:
        """Every later page of `operation` answers with the very Marker it was asked for: a chain that never
        ends (a service fault botocore's paginator guards against: "The same next token was received twice")."""
        with self._lock:
            self._stalled.add(operation)

    def lose_answers(self, operation: str, *, attempts: int) -> None:
        """The next `attempts` calls of `operation` (a modelled one, e.g. "ModifyDBClusterSnapshotAttribute")
        reach RDS and are applied, but their answers are lost: botocore sees a read timeout, as when the
        connection drops after the request arrived, and retries. More attempts than the client makes (11 for
        ours) and the call fails although RDS did what it asked."""
        with self._lock:
            self._lost[operation] += attempts

    def on(self, operation: str, action: Callable[[], None], *, nth: int = 1) -> None:
        """Run `action` once, just before the layer answers the `nth` call of `operation` from now on
        (throttled attempts do not count). E.g. delete a cluster in the middle of a run."""
        with self._lock:
            self._triggers.append(_Trigger(operation, nth, action))

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttled.clear()
            self.faults.clear()
            self.retry_sleep = 0.0

    @property
    def manual_snapshots_used(self) -> int:
        with self._lock:
            if self._snapshots_stale:
                self._sync_snapshots()
            return self._manual_used

    def snapshots(self, cluster_id: str | None = None, *, snapshot_type: str | None = "manual") -> list[SnapshotView]:
        """Every cluster snapshot as the layer shows it, read afresh from moto (no API call is counted)."""
        with self._lock:
            self._sync_snapshots()
            views = []
            for ident in self._sorted_snapshots():
                record = self._snapshots[ident]
                if cluster_id is not None and record.cluster_id != cluster_id.lower():
                    continue
                if snapshot_type is not None and record.snapshot_type != snapshot_type:
                    continue
                status, progress, created = self._view(record)
                copy = self._copies.get(ident)
                views.append(
                    SnapshotView(
                        ident,
                        record.cluster_id,
                        record.snapshot_type,
                        status,
                        created,
                        dict(record.tags),
                        progress=progress,
                        encrypted=record.storage_encrypted,
                        kms_key_id=record.kms_key_id,
                        source_arn=copy.source_arn if copy is not None else "",
                    )
                )
            return views

    # ---------------------------------------------------------------------------------- the fleet

    def create_cluster(
        self,
        cluster_id: str,
        *,
        engine: str = "aurora-postgresql",
        tags: Mapping[str, str] | None = None,
        created: datetime | None = None,
        encrypted: bool = False,
        copy_tags_to_snapshot: bool = False,
        kms_key: str | None = None,
    ) -> str:
        """A cluster, `available` at once, created `created` (default: now on the layer's clock); its
        snapshots are encrypted when it is, under `kms_key` (an ARN of this account and region) or else, as
        in RDS, the account's AWS managed `aws/rds` key. Not counted as an API call. moto's automated
        snapshot of it keeps moto's wall-clock time."""
        if kms_key is not None and not encrypted:
            raise ValueError("kms_key= goes with encrypted=True")
        cluster_id = cluster_id.lower()  # RDS stores identifiers lower-case
        with self._lock:
            self.moto.create_cluster(
                cluster_id,
                engine,
                dict(tags or {}),
                encrypted=encrypted,
                copy_tags=copy_tags_to_snapshot,
                kms_key=kms_key,
            )
            self._cluster_created[cluster_id] = created or self.clock.now()
            self.refresh()
        return cluster_id

    def create_clusters(
        self,
        count: int,
        *,
        prefix: str = "db",
        engine: str = "aurora-postgresql",
        tags: Mapping[str, str] | None = None,
    ) -> list[str]:
        """`count` clusters named `{prefix}-0000`, `{prefix}-0001`, ..."""
        return [self.create_cluster(f"{prefix}-{n:04d}", engine=engine, tags=tags) for n in range(count)]

    def seed_snapshot(
        self,
        cluster_id: str,
        snapshot_id: str,
        *,
        created: datetime,
        tags: Mapping[str, str] | None = None,
        snapshot_type: str = "manual",
        creating_until: datetime | None = None,
        copy_of: str | None = None,
    ) -> str:
        """An existing snapshot taken at `created` (still `creating` until `creating_until`, if given), or
        a finished copy of the snapshot with ARN `copy_of` (its SourceDBClusterSnapshotArn), made at `created`.
        In-process it bypasses moto's own snapshot limit; it is not counted as an API call."""
        if copy_of is not None and creating_until is not None:
            raise ValueError("a seeded copy is finished: give copy_of= or creating_until=, not both")
        snapshot_id = snapshot_id.lower()
        with self._lock:
            self.moto.create_snapshot(cluster_id.lower(), snapshot_id, dict(tags or {}), snapshot_type)
            self._life[snapshot_id] = _Life(started=created, ready=creating_until or created)
            if copy_of is not None:
                self._copies[snapshot_id] = _Copy(copy_of, created, timedelta(0))
            self._snapshots_stale = True
        return snapshot_id

    def create_kms_key(self, alias: str | None = None) -> str:
        """A KMS key in this layer's region (with `alias`, such as "alias/snapshot-dr"); its ARN."""
        with self._lock:
            return self.moto.create_kms_key(alias)

    def delete_cluster(self, cluster_id: str) -> None:
        """The cluster goes away (its snapshots stay), as when someone deletes it mid-run."""
        cluster_id = cluster_id.lower()
        with self._lock:
            self.moto.delete_cluster(cluster_id)
            self._status.pop(cluster_id, None)
            self._busy.pop(cluster_id, None)
            self.refresh()


def _response(request: AWSPreparedRequest, status: int, body: bytes) -> AWSResponse:
    headers = {"Content-Type": "text/xml", "x-amzn-RequestId": rds_xml.request_id()}
    return AWSResponse(request.url, status, headers, _Body(body))


def _params(body: Any) -> dict[str, str]:
    if not body:
        return {}
    text = body.decode() if isinstance(body, bytes) else str(body)
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def _filters(params: Mapping[str, str]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for key, name in params.items():
        match = _FILTER_NAME.match(key)
        if match:
            prefix = f"Filters.Filter.{match.group(1)}.Values.Value."
            filters.setdefault(name, []).extend(value for k, value in params.items() if k.startswith(prefix))
    return filters


def _mark(last_id: str) -> str:
    """An opaque Marker: where the next page starts (after this identifier, in identifier order)."""
    return _MARKER_PREFIX + base64.urlsafe_b64encode(last_id.encode()).decode()


def _unmark(marker: str) -> str | None:
    if not marker.startswith(_MARKER_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(marker[len(_MARKER_PREFIX) :].encode()).decode() or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _resource_id(value: str) -> str:
    """An identifier or the ARN of one (arn:aws:rds:region:account:cluster:name)."""
    return (value.rsplit(":", 1)[-1] if value.startswith("arn:") else value).lower()


@dataclass(frozen=True)
class _SnapshotAddress:
    account: str | None
    region: str | None
    id: str


def _snapshot_address(value: str) -> _SnapshotAddress:
    """Account, region (None when not named) and identifier of a snapshot named by identifier or by ARN
    (arn:aws:rds:region:account:cluster-snapshot:name)."""
    if not value.startswith("arn:"):
        return _SnapshotAddress(None, None, value.lower())
    parts = value.split(":")
    region, account = [*parts[3:5], "", ""][:2]
    return _SnapshotAddress(account or None, region or None, parts[-1].lower())


def _arn_account(arn: str) -> str:
    parts = arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def _is_shared(shared_with: Iterable[str], account: str) -> bool:
    values = set(shared_with)
    return account in values or ALL_ACCOUNTS in values


def _members(params: Mapping[str, str], name: str) -> list[str]:
    """The values of a query-protocol list parameter (`ValuesToAdd.AttributeValue.1`, ...), in order."""
    found = [(key, value) for key, value in params.items() if key.startswith(f"{name}.")]
    return [value for _, value in sorted(found, key=lambda item: int(item[0].rsplit(".", 1)[-1]))]


def _request_tags(params: Mapping[str, str]) -> dict[str, str]:
    """The `Tags` of a request (`Tags.Tag.1.Key`, `Tags.Tag.1.Value`, ...)."""
    keys = {
        key.split(".")[2]: value
        for key, value in params.items()
        if key.startswith("Tags.Tag.") and key.endswith(".Key")
    }
    return {value: params.get(f"Tags.Tag.{n}.Value", "") for n, value in keys.items()}


def _counts(snapshot: SnapshotRecord) -> bool:
    """Against the manual cluster snapshot quota: manual ones, not automated, not AWS Backup's (a colon)."""
    return snapshot.snapshot_type == "manual" and ":" not in snapshot.id


def _shifted(ids: list[str], index: int, by: int, keep: Callable[[str], bool]) -> int:
    """`index` moved back (`by` < 0) or on (`by` > 0) over `abs(by)` identifiers that `keep` keeps."""
    while by < 0 and index > 0:
        index -= 1
        by += keep(ids[index])
    while by > 0 and index < len(ids):
        by -= keep(ids[index])
        index += 1
    return index


def _from(items: list[str], index: int) -> Iterable[str]:
    return (items[i] for i in range(index, len(items)))
