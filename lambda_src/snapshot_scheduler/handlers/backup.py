"""The scheduled Lambda: event -> scheduled time and dry-run; context -> time budget; then one run (a vault's
run when SNAPSHOT_VAULT is set)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from snapshot_scheduler import service
from snapshot_scheduler.adapters import kms
from snapshot_scheduler.adapters.rds import Pacer, RdsAdapter, build_client
from snapshot_scheduler.config import DR_TARGETS, VAULT, Settings
from snapshot_scheduler.dr import region_targets
from snapshot_scheduler.errors import ConfigError
from snapshot_scheduler.observability import logger, metrics, publish

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient


@dataclass(frozen=True)
class Runtime:
    """What a warm container keeps between invocations: settings, the paced RDS adapter, how to wait and
    how to read the wall clock (a late event must not back-fill its old slot)."""

    settings: Settings
    rds: RdsAdapter
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    regions: Mapping[str, RdsAdapter] = field(default_factory=dict)  # one adapter per DR target region
    kms: kms.KmsAdapter | None = None  # when a DR target is an account: is a snapshot's key the default one


@functools.cache
def runtime() -> Runtime:
    """Built once per container; a configuration error fails the invocation with a clear message."""
    settings = Settings.from_env()
    rds, regions = adapters(settings)
    return Runtime(settings=settings, rds=rds, regions=regions, kms=key_reader(settings, rds.region))


def key_reader(settings: Settings, region: str, profile: str | None = None) -> kms.KmsAdapter | None:
    """KMS in the function's region, when a DR target is an account: a snapshot under the account's default
    key cannot be shared, and is skipped for it (`kms-default-key`) rather than refused by RDS."""
    shares = any(target.shares for target in settings.dr_targets.values())
    return kms.KmsAdapter(kms.build_client(region, profile)) if shares else None


def adapters(
    settings: Settings, build: Callable[[str | None], RDSClient] | None = None
) -> tuple[RdsAdapter, dict[str, RdsAdapter]]:
    """The function's own region's adapter and one per DR target region (a vault: per source region), each
    with its own pacer: every
    region has its own RDS token bucket. `build` makes a region's client (None: the default region); the
    CLI passes its own, with the operator's profile."""
    client = build or build_client
    rds = RdsAdapter(client(None), Pacer(settings.api_rate, settings.api_burst))
    regions = {}
    for target in region_targets(settings.dr_targets).values():
        if target.region == rds.region:
            raise ConfigError(
                f"{DR_TARGETS}: target {target.name!r} is in {target.region}, the function's own region; "
                "a DR target must be another region"
            )
        regions[target.region] = RdsAdapter(client(target.region), Pacer(settings.api_rate, settings.api_burst))
    for region in sorted({region for _, region in settings.vault.source_keys} if settings.vault else ()):
        if region != rds.region:  # a vault lists what is shared with it in each source region, there
            regions[region] = RdsAdapter(client(region), Pacer(settings.api_rate, settings.api_burst))
    return rds, regions


def check_own_account(settings: Settings, function_arn: str) -> None:
    """A DR target's account, and a vault's source, is another account: sharing a snapshot with its own
    account would protect nothing, and a vault of its own account's snapshots is no vault. The function's
    account is the one in its ARN (no STS call)."""
    parts = function_arn.split(":")
    own = parts[4] if len(parts) > 4 else ""
    for target in settings.dr_targets.values():
        if target.account is not None and target.account == own:
            raise ConfigError(
                f"{DR_TARGETS}: target {target.name!r} names account {own}, the function's own account; a "
                "target's account must be another account (the vault)"
            )
    for source in settings.vault.sources if settings.vault is not None else ():
        if source.account == own:
            raise ConfigError(
                f"{VAULT}: a source names account {own}, the vault's own account; a source must be another "
                "account (the production account that shares with the vault)"
            )


def scheduled_time(event: dict[str, Any]) -> datetime:
    """EventBridge Scheduler puts <aws.scheduler.scheduled-time> in event["time"]; a hand-made test
    event without it runs at the current time."""
    value = event.get("time")
    if value is None:
        logger.warning("event has no 'time'; running for the current time")
        return datetime.now(UTC)
    try:
        at = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as error:
        raise ValueError(f"event time {value!r} is not an ISO 8601 timestamp such as 2026-11-27T03:00:00Z") from error
    if at.tzinfo is None:
        raise ValueError(f"event time {value!r} has no time zone; expected UTC such as 2026-11-27T03:00:00Z")
    return at.astimezone(UTC)


def event_dry_run(event: dict[str, Any]) -> bool:
    """`dry_run` as JSON true/false or the text "true"/"false" (a templated Scheduler input gives text)."""
    value = event.get("dry_run")
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"event dry_run {value!r} is not a boolean; expected true or false")


@logger.inject_lambda_context(log_event=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    deps = runtime()
    check_own_account(deps.settings, context.invoked_function_arn)
    at = scheduled_time(event)
    dry_run = deps.settings.dry_run or event_dry_run(event)
    budget = service.Budget(remaining=lambda: context.get_remaining_time_in_millis() / 1000, sleep=deps.sleep)
    if deps.settings.vault is not None:  # a vault: copies what its sources share, snapshots nothing
        from snapshot_scheduler import vault_service  # noqa: PLC0415 - a source's cold start skips the vault role

        report = vault_service.run(
            deps.settings, deps.rds, at, now=deps.now(), dry_run=dry_run, budget=budget, regions=deps.regions
        )
    else:
        report = service.run(
            deps.settings,
            deps.rds,
            at,
            now=deps.now(),
            dry_run=dry_run,
            budget=budget,
            regions=deps.regions,
            kms=deps.kms,
        )
    publish(report, deps.settings.deployment)
    answer = report.to_dict()
    logger.info("run finished", extra={"report": answer})
    return answer
