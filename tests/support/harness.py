"""Run things against moto with the fidelity layer: an RDS client, and the service's real Lambda handler.

    with moto_rds():
        fidelity = RdsFidelity(clock=SimClock(start))
        client = rds_client(fidelity)                       # a plain boto3 client, layer attached
        with scheduled_lambda(fidelity, env={"SNAPSHOT_DEPLOYMENT": "blue"}) as handler:
            report = handler.run(start + timedelta(hours=1))  # {"time": ...} on the layer's clock

The handler part only touches the engine's published seams (`adapters.rds.build_client`, the handler
module's cached `runtime()`, its `Runtime.sleep` and `Pacer`), and does so defensively: whatever seam is
missing is left alone.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from tests.support.clock import Clock
from tests.support.fidelity import DEFAULT_ACCOUNT, RdsFidelity
from tests.support.moto_access import account_credentials

REGION = "us-east-1"

# The function's environment with the stack's defaults (contracts.md); tests override what they need.
DEFAULT_ENV: Mapping[str, str] = {
    "SNAPSHOT_POLICY_TAG_KEY": "snapshot-policy",
    "SNAPSHOT_DEPLOYMENT": "test-deployment",
    "SNAPSHOT_NAMED_POLICIES": "{}",
    "SNAPSHOT_DEFAULT_AT": "03:00",
    "SNAPSHOT_DEFAULT_TZ": "UTC",
    "SNAPSHOT_GRACE_MINUTES": "60",
    "SNAPSHOT_POLICY_CHANGE_GRACE_HOURS": "24",
    "SNAPSHOT_ENGINES": "aurora-mysql,aurora-postgresql,mysql,postgres",
    "SNAPSHOT_DRY_RUN": "false",
    "SNAPSHOT_API_RATE": "10",
    "SNAPSHOT_API_BURST": "200",
    "SNAPSHOT_BUSY_RETRY_SECONDS": "300",
    "SNAPSHOT_SCHEDULE_MINUTES": "60",
    "SNAPSHOT_DR_TARGETS": "{}",
    "SNAPSHOT_DR_POLICIES": "{}",
    "SNAPSHOT_DR_TAG_KEY": "snapshot-dr",
    "SNAPSHOT_DR_COPY_LIMIT": "5",
    "SNAPSHOT_DR_STUCK_HOURS": "24",
    "POWERTOOLS_SERVICE_NAME": "snapshot-scheduler",
    "POWERTOOLS_METRICS_NAMESPACE": "SnapshotScheduler",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


@contextmanager
def moto_rds(region: str = REGION) -> Iterator[None]:
    """moto in-process, with fake credentials and moto's own snapshot limit out of the layer's way."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS", "AWS_SESSION_TOKEN", "MOTO_ACCOUNT_ID"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", region)
        patch.setenv("MOTO_RDS_SNAPSHOT_LIMIT", "10000000")
        with mock_aws():
            yield


def rds_client(
    fidelity: RdsFidelity | None = None,
    *,
    attempts: int = 11,
    region: str = REGION,
    endpoint_url: str | None = None,
) -> Any:
    """A boto3 RDS client with standard-mode retries, the layer attached when given. `attempts` counts the
    first try too (botocore's total_max_attempts; the engine's max_attempts=10 retries is 11 attempts)."""
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    client = boto3.client("rds", region_name=region, endpoint_url=endpoint_url, config=config)
    return fidelity.attach(client) if fidelity is not None else client


class FakeLambdaContext:
    """The parts of the Lambda context the handler and Powertools read; time left follows `clock`; the
    function's ARN names its account and region."""

    function_name = "snapshot-scheduler-backup"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    log_group_name = "/aws/lambda/snapshot-scheduler-backup"
    log_stream_name = "local"

    def __init__(
        self,
        clock: Clock,
        budget: timedelta = timedelta(minutes=15),
        *,
        account: str = DEFAULT_ACCOUNT,
        region: str = REGION,
    ) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{self.function_name}"
        self._clock = clock
        self._deadline = clock.monotonic() + budget.total_seconds()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._clock.monotonic()) * 1000))


def scheduled_event(at: datetime, **extra: Any) -> dict[str, Any]:
    """What EventBridge Scheduler sends: {"time": "<scheduled time, ISO 8601 UTC>"}."""
    return {"time": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), **extra}


class ScheduledLambda:
    """The real handler, its RDS clients behind the layer, its waits on the layer's clock."""

    def __init__(self, fidelity: RdsFidelity, handler: Any, budget: timedelta, runtime: Any) -> None:
        self.fidelity = fidelity
        self.budget = budget
        self._handler = handler
        self._runtime = runtime

    def invoke(self, event: Mapping[str, Any], *, budget: timedelta | None = None) -> dict[str, Any]:
        context = FakeLambdaContext(
            self.fidelity.clock,
            budget or self.budget,
            account=self.fidelity.account,
            region=self.fidelity.region or REGION,
        )
        result: dict[str, Any] = self._handler(dict(event), context)
        return result

    def run(self, at: datetime, *, budget: timedelta | None = None, **extra: Any) -> dict[str, Any]:
        """Invoke for the scheduled time `at`, first moving a simulated clock up to it."""
        advance_to = getattr(self.fidelity.clock, "advance_to", None)
        if advance_to is not None:
            advance_to(at)
        return self.invoke(scheduled_event(at, **extra), budget=budget)

    def cold_start(self) -> None:
        """Forget the warm container: the next invocation builds its settings and clients again."""
        cache_clear = getattr(self._runtime, "cache_clear", None)
        if cache_clear is not None:
            cache_clear()


@contextmanager
def scheduled_lambda(
    fidelity: RdsFidelity,
    *,
    env: Mapping[str, str] | None = None,
    budget: timedelta = timedelta(minutes=15),
) -> Iterator[ScheduledLambda]:
    """Patch the engine's seams for the duration; every RDS client it builds gets `fidelity` attached. The
    function runs in the layer's account: in another than moto's default, with credentials of that account
    in its environment (as Lambda gives them), so its other clients (KMS, STS, ...) talk to it too."""
    clock = fidelity.clock
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**DEFAULT_ENV, **(env or {})}.items():
            patch.setenv(name, value)
        if fidelity.account != DEFAULT_ACCOUNT:
            for name, value in account_credentials(fidelity.account, fidelity.region or REGION).items():
                patch.setenv(name, value)
        _point_metrics_at(patch, {**DEFAULT_ENV, **(env or {})})
        rds = importlib.import_module("snapshot_scheduler.adapters.rds")
        backup = importlib.import_module("snapshot_scheduler.handlers.backup")
        original_build = rds.build_client

        def build_client(*args: Any, **kwargs: Any) -> Any:
            region = kwargs.get("region", args[0] if args else None)
            return fidelity.for_region(region).attach(original_build(*args, **kwargs))

        patch.setattr(rds, "build_client", build_client)
        if getattr(backup, "build_client", None) is original_build:  # imported by name
            patch.setattr(backup, "build_client", build_client)
        pacer = getattr(backup, "Pacer", None)
        if pacer is not None and {"monotonic", "sleep"} <= set(inspect.signature(pacer).parameters):
            patch.setattr(backup, "Pacer", functools.partial(pacer, monotonic=clock.monotonic, sleep=clock.sleep))
        runtime = getattr(backup, "runtime", None)
        if runtime is not None:
            patch.setattr(backup, "runtime", _runtime_on(runtime, clock))
        _cache_clear(runtime)
        try:
            yield ScheduledLambda(fidelity, backup.lambda_handler, budget, runtime)
        finally:
            _cache_clear(runtime)


def _point_metrics_at(patch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Powertools Metrics reads its namespace and service from the environment when created, at import;
    in a test process the module may have been imported before this environment was set."""
    observability = importlib.import_module("snapshot_scheduler.observability")
    metrics = getattr(observability, "metrics", None)
    if metrics is not None:
        patch.setattr(metrics, "namespace", env["POWERTOOLS_METRICS_NAMESPACE"])
        patch.setattr(metrics, "service", env["POWERTOOLS_SERVICE_NAME"])


def _runtime_on(runtime: Any, clock: Clock) -> Any:
    """The engine's cached runtime(), with its `sleep` (budget waits, back-off) and `now` on the layer's clock."""

    def runtime_on_clock() -> Any:
        built = runtime()
        if dataclasses.is_dataclass(built) and "sleep" in {field.name for field in dataclasses.fields(built)}:
            return dataclasses.replace(built, sleep=clock.sleep, now=clock.now)
        return built

    return runtime_on_clock


def _cache_clear(runtime: Any) -> None:
    cache_clear = getattr(runtime, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()
