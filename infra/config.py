"""cdk.json context -> validated, frozen settings: the one place the app reads its configuration.

Every key has a default. A bad value raises ConfigError naming the key, the value and what is allowed.
Values given on the command line (`cdk synth -c memoryMb=1024`) arrive as strings, so numbers, booleans,
lists and objects are also accepted as their JSON text.

One rule, one implementation: a value that reaches the function is checked here by the rule the function
checks it with at start-up (snapshot_scheduler.settings_rules, and the engine's own parsers behind it), so
every environment the synth produces is one Settings.from_env() accepts (tests/infra/test_stack_env_accepted.py
proves it over generated values). infra/ may import the pure modules of lambda_src/ (policy, schedule, tags,
naming, dr, vault, settings_rules); never config, service, handlers or adapters.

To add a key:
1. Here: its name constant, its default in DEFAULTS (and in cdk.json), a field on Settings, and its check in
   from_context through _Context: `ctx.text(KEY, rules.x)` or `ctx.number(KEY, rules.X)` for a value the
   function also reads, a local rule (or a Range) for one only the stack uses.
2. If the function reads it: the rule in settings_rules.py (a function returning the value to use, or a
   Range), applied by config.Settings.from_env() to its variable (config.ENV_VARS, contract.ENV_*),
   rendered by backup_function.function_environment(); and its generated values in
   tests/infra/test_stack_env_accepted.py (CASES), which fails until every such key has some.
3. README's context key table: the default, the meaning, and the rule as it holds.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final, TypeVar

from snapshot_scheduler import settings_rules as rules
from snapshot_scheduler.dr import ACCOUNT, REGION, DrTarget
from snapshot_scheduler.settings_rules import Range, RuleError
from snapshot_scheduler.vault import Vault

_T = TypeVar("_T")
_N = TypeVar("_N", int, float)

# Context keys (cdk.json "context", or `-c key=value`).
STACK_NAME: Final = "stackName"
SCHEDULE: Final = "schedule"
SCHEDULE_TIMEZONE: Final = "scheduleTimezone"
HEARTBEAT_MINUTES: Final = "heartbeatMinutes"
POLICY_TAG_KEY: Final = "policyTagKey"
NAMED_POLICIES: Final = "namedPolicies"
DEFAULT_AT: Final = "defaultAt"
DEFAULT_TIMEZONE: Final = "defaultTimezone"
DEPLOYMENT: Final = "deployment"
METRIC_NAMESPACE: Final = "metricNamespace"
ALARM_EMAILS: Final = "alarmEmails"
GRACE_MINUTES: Final = "graceMinutes"
POLICY_CHANGE_GRACE_HOURS: Final = "policyChangeGraceHours"
LOG_RETENTION_DAYS: Final = "logRetentionDays"
LOG_LEVEL: Final = "logLevel"
MEMORY_MB: Final = "memoryMb"
TIMEOUT_SECONDS: Final = "timeoutSeconds"
ENGINES: Final = "engines"
DRY_RUN: Final = "dryRun"
API_RATE: Final = "apiRate"
API_BURST: Final = "apiBurst"
BUSY_RETRY_SECONDS: Final = "busyRetrySeconds"
ENVIRONMENTS: Final = "environments"
RESERVED_CONCURRENCY: Final = "reservedConcurrency"
DR_TARGETS: Final = "drTargets"
DR_POLICIES: Final = "drPolicies"
DR_TAG_KEY: Final = "drTagKey"
DR_COPY_LIMIT: Final = "drCopyLimit"
DR_STUCK_HOURS: Final = "drStuckHours"
VAULT: Final = "vault"

DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType(
    {
        STACK_NAME: "SnapshotScheduler",
        SCHEDULE: "rate(1 hour)",
        SCHEDULE_TIMEZONE: "UTC",
        HEARTBEAT_MINUTES: None,  # None: derived from the schedule
        POLICY_TAG_KEY: "snapshot-policy",
        NAMED_POLICIES: {},
        DEFAULT_AT: "03:00",
        DEFAULT_TIMEZONE: "UTC",
        DEPLOYMENT: None,  # None: the stack name
        METRIC_NAMESPACE: "SnapshotScheduler",
        ALARM_EMAILS: [],
        GRACE_MINUTES: 60,
        POLICY_CHANGE_GRACE_HOURS: 24,
        LOG_RETENTION_DAYS: 90,
        LOG_LEVEL: "INFO",
        MEMORY_MB: 512,  # from make bench: API-bound at 0.29 vCPU, memory for ~18,000 clusters (bench/README.md)
        TIMEOUT_SECONDS: 840,  # from make bench: a 3,000-cluster run with all due projects to 613-675 s
        ENGINES: ["aurora-mysql", "aurora-postgresql", "mysql", "postgres"],
        DRY_RUN: False,
        API_RATE: 10,
        API_BURST: 200,
        BUSY_RETRY_SECONDS: 300,
        ENVIRONMENTS: [],
        RESERVED_CONCURRENCY: None,  # None: nothing reserved, the account's unreserved pool
        DR_TARGETS: {},  # name -> {"region": ..., "kmsKey": ...}: where disaster-recovery copies go
        DR_POLICIES: {},  # name -> DR tag words: a DR tag may name one, as a policy tag names a named policy
        DR_TAG_KEY: "snapshot-dr",
        DR_COPY_LIMIT: 5,  # copies started at once per destination region (RDS allows 5 in progress)
        DR_STUCK_HOURS: 24,
        VAULT: {},  # {} or {"sources": [...], "policy": ...}: this deployment is a vault (issue 11)
    }
)
KEYS: Final = tuple(DEFAULTS)

# CloudWatch Logs accepts only these retention periods (days).
LOG_RETENTION_CHOICES: Final = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# The schedule interval bounds (settings_rules.SCHEDULE_MINUTES: the function checks the same gap it is given).
MIN_INTERVAL_MINUTES: Final = rules.SCHEDULE_MINUTES.low
MAX_INTERVAL_MINUTES: Final = rules.SCHEDULE_MINUTES.high
MAX_LAMBDA_TIMEOUT_SECONDS: Final = 900
# A run stops starting work this long before the function's timeout (snapshot_scheduler.service.Budget).
RUN_MARGIN_SECONDS: Final = 30
# Lambda keeps 100 units of the account's concurrency unreserved: reserving N needs a limit of 100 + N.
LAMBDA_UNRESERVED_MINIMUM: Final = 100
MAX_RESERVED_CONCURRENCY: Final = 1000
_INTERVAL_MINUTES: Final = rules.SCHEDULE_MINUTES

# Source account/region pairs a vault watches: each adds two alarms and ARNs to the role's policy (a role's
# inline policies hold at most 10,240 characters).
VAULT_MAX_SOURCE_REGIONS: Final = 25

_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}\Z")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)\Z")
_CRON = re.compile(r"^cron\(([^()]+)\)\Z")
_UNIT_MINUTES = {"minute": 1, "hour": 60, "day": 24 * 60}
_STACK_NAME_RULE = "a CloudFormation stack name: a letter, then letters, digits or hyphens, at most 128"


class ConfigError(ValueError):
    """A cdk.json context value is missing or malformed."""


@dataclass(frozen=True)
class DeployEnvironment:
    """One account/region the stack is deployed into."""

    account: str
    region: str


@dataclass(frozen=True)
class Schedule:
    """The run schedule as EventBridge Scheduler takes it, plus the longest gap between two runs."""

    expression: str
    timezone: str
    interval_minutes: int
    # The shortest gap between two runs (a lower bound for a cron that skips days).
    shortest_gap_minutes: int


@dataclass(frozen=True)
class Settings:
    """Everything the stack needs from cdk.json, validated."""

    stack_name: str
    schedule: Schedule
    heartbeat_window_minutes: int
    policy_tag_key: str
    named_policies: Mapping[str, str]
    default_at: str
    default_timezone: str
    deployment: str | None
    metric_namespace: str
    alarm_emails: tuple[str, ...]
    grace_minutes: int
    policy_change_grace_hours: int
    log_retention_days: int
    log_level: str
    memory_mb: int
    timeout_seconds: int
    engines: tuple[str, ...]
    dry_run: bool
    api_rate: float
    api_burst: int
    busy_retry_seconds: int
    environments: tuple[DeployEnvironment, ...]
    # Units of Lambda concurrency reserved for the function; None reserves nothing.
    reserved_concurrency: int | None
    dr_targets: Mapping[str, DrTarget] = field(default_factory=dict)
    dr_policies: Mapping[str, str] = field(default_factory=dict)
    dr_tag_key: str = DEFAULTS[DR_TAG_KEY]
    dr_copy_limit: int = DEFAULTS[DR_COPY_LIMIT]
    dr_stuck_hours: int = DEFAULTS[DR_STUCK_HOURS]
    vault: Vault | None = None  # set: a vault deployment (no policy-tag sweep, no DR targets)

    @classmethod
    def from_context(cls, context: Mapping[str, Any], default_account: str | None = None) -> Settings:
        """Build from a context mapping (missing keys take DEFAULTS); raise ConfigError on a bad value.
        `default_account`: the CLI's account, where the stack deploys when no environment is configured."""
        _reject_misspelt_keys(context)
        ctx = _Context(context)
        schedule = ctx.schedule()
        heartbeat = ctx.optional_number(HEARTBEAT_MINUTES, _INTERVAL_MINUTES)
        default_at = ctx.text(DEFAULT_AT, rules.time_of_day)
        default_timezone = ctx.text(DEFAULT_TIMEZONE, rules.time_zone)
        timeout_seconds = ctx.number(TIMEOUT_SECONDS, Range(int, 60, MAX_LAMBDA_TIMEOUT_SECONDS))
        reserved = ctx.optional_number(RESERVED_CONCURRENCY, Range(int, 1, MAX_RESERVED_CONCURRENCY))
        ctx.check_runs_cannot_overlap(schedule, timeout_seconds, reserved)
        environments = ctx.environments()
        named_policies = ctx.named_policies(at=default_at, tz=default_timezone)
        dr_targets = ctx.dr_targets(environments)
        return cls(
            stack_name=ctx.matching(STACK_NAME, _STACK_NAME, _STACK_NAME_RULE),
            schedule=schedule,
            heartbeat_window_minutes=2 * (heartbeat or schedule.interval_minutes),
            policy_tag_key=ctx.text(POLICY_TAG_KEY, partial(rules.tag_text, max_length=rules.POLICY_TAG_KEY_LENGTH)),
            named_policies=named_policies,
            default_at=default_at,
            default_timezone=default_timezone,
            deployment=ctx.optional_text(DEPLOYMENT, partial(rules.tag_text, max_length=rules.DEPLOYMENT_LENGTH)),
            metric_namespace=ctx.text(METRIC_NAMESPACE, rules.metric_namespace),
            alarm_emails=ctx.emails(),
            grace_minutes=ctx.number(GRACE_MINUTES, rules.GRACE_MINUTES),
            policy_change_grace_hours=ctx.number(POLICY_CHANGE_GRACE_HOURS, rules.POLICY_CHANGE_GRACE_HOURS),
            log_retention_days=ctx.choice(LOG_RETENTION_DAYS, LOG_RETENTION_CHOICES),
            log_level=ctx.text(LOG_LEVEL, rules.log_level),
            memory_mb=ctx.number(MEMORY_MB, Range(int, 128, 10_240)),
            timeout_seconds=timeout_seconds,
            engines=ctx.engines(),
            dry_run=ctx.boolean(DRY_RUN),
            api_rate=ctx.number(API_RATE, rules.API_RATE),
            api_burst=ctx.number(API_BURST, rules.API_BURST),
            busy_retry_seconds=ctx.busy_retry_seconds(schedule, timeout_seconds),
            environments=environments,
            reserved_concurrency=reserved,
            dr_targets=dr_targets,
            dr_policies=ctx.dr_policies(dr_targets, at=default_at, tz=default_timezone),
            dr_tag_key=ctx.text(DR_TAG_KEY, partial(rules.tag_text, max_length=rules.POLICY_TAG_KEY_LENGTH)),
            dr_copy_limit=ctx.number(DR_COPY_LIMIT, rules.DR_COPY_LIMIT),
            dr_stuck_hours=ctx.number(DR_STUCK_HOURS, rules.DR_STUCK_HOURS),
            vault=ctx.vault(
                [env.account for env in environments] or ([default_account] if default_account else []),
                [env.region for env in environments],
                dr_targets,
                at=default_at,
                tz=default_timezone,
            ),
        )


def _reject_misspelt_keys(context: Mapping[str, Any]) -> None:
    """A key that is almost one of ours is a typo that would silently fall back to the default."""
    for key in context:
        if key in DEFAULTS or ":" in key or "/" in key:
            continue
        close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.8)
        if close:
            raise ConfigError(f"unknown context key {key!r} (cdk.json or -c): did you mean {close[0]!r}?")


class _Context:
    def __init__(self, context: Mapping[str, Any]) -> None:
        self._context = context

    def raw(self, key: str) -> Any:
        value = self._context.get(key)
        return DEFAULTS[key] if value is None else value

    def bad(self, key: str, value: object, allowed: str) -> ConfigError:
        return ConfigError(f"context key {key!r} (cdk.json or -c) has invalid value {value!r}: expected {allowed}")

    def decoded(self, key: str, kind: type | tuple[type, ...]) -> Any:
        """The value, decoding JSON text from the command line when the key wants a non-string."""
        value = self.raw(key)
        if isinstance(value, str) and kind is not str:
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                return value
        return value

    def string(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value.strip():
            raise self.bad(key, value, "a non-empty string")
        return value.strip()

    def matching(self, key: str, pattern: re.Pattern[str], allowed: str) -> str:
        value = self.string(key)
        if not pattern.match(value):
            raise self.bad(key, value, allowed)
        return value

    def text(self, key: str, rule: Callable[[str], _T]) -> _T:
        """A text value checked by a rule of settings_rules (or any rule raising RuleError)."""
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.bad(key, value, "text")
        try:
            return rule(value)
        except RuleError as error:
            raise self.bad(key, value, str(error)) from error

    def optional_text(self, key: str, rule: Callable[[str], _T]) -> _T | None:
        return None if self.raw(key) is None else self.text(key, rule)

    def number(self, key: str, bounds: Range[_N]) -> _N:
        value = self.decoded(key, bounds.kind)
        try:
            return bounds.check(value)
        except RuleError as error:
            raise self.bad(key, value, str(error)) from error

    def optional_number(self, key: str, bounds: Range[_N]) -> _N | None:
        return None if self.raw(key) is None else self.number(key, bounds)

    def boolean(self, key: str) -> bool:
        value = self.decoded(key, bool)
        if not isinstance(value, bool):
            raise self.bad(key, value, "true or false")
        return value

    def choice(self, key: str, allowed: Sequence[int]) -> int:
        value = self.decoded(key, int)
        if isinstance(value, bool) or value not in allowed:
            raise self.bad(key, value, "one of " + ", ".join(str(option) for option in allowed))
        return int(value)

    def string_list(self, key: str, allowed: str) -> list[str]:
        value = self.decoded(key, list)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.bad(key, value, allowed)
        if len(set(value)) != len(value):
            raise self.bad(key, value, allowed + " without duplicates")
        return value

    def engines(self) -> tuple[str, ...]:
        value = self.decoded(ENGINES, list)
        names = value.split(",") if isinstance(value, str) else value
        try:
            if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
                raise RuleError("a list of RDS engine names such as aurora-postgresql")
            return rules.engines(names)
        except RuleError as error:
            raise self.bad(ENGINES, value, str(error)) from error

    def emails(self) -> tuple[str, ...]:
        allowed = "a list of e-mail addresses (may be empty)"
        emails = self.string_list(ALARM_EMAILS, allowed)
        for email in emails:
            if not _EMAIL.match(email):
                raise self.bad(ALARM_EMAILS, email, "an e-mail address such as oncall@example.com")
        return tuple(emails)

    def dr_targets(self, environments: Sequence[DeployEnvironment]) -> Mapping[str, DrTarget]:
        """Validated by the engine's own parser (snapshot_scheduler.dr), so synth accepts what the function does."""
        value = self.decoded(DR_TARGETS, dict)
        try:
            targets = rules.dr_targets(value)
        except RuleError as error:
            raise self.bad(DR_TARGETS, value, str(error)) from error
        for target in targets.values():
            for environment in environments:
                if target.shares and environment.account == target.account:
                    raise self.bad(
                        DR_TARGETS,
                        value,
                        f"target {target.name!r} names account {target.account}, where the stack is deployed: "
                        "a target's account must be another account (the vault)",
                    )
                if not target.shares and environment.region == target.region:
                    raise self.bad(
                        DR_TARGETS,
                        value,
                        f"target {target.name!r} is in {target.region}, where the stack is deployed: "
                        "a DR target must be another region",
                    )
        return MappingProxyType(targets)

    def dr_policies(self, targets: Mapping[str, DrTarget], *, at: str, tz: str) -> Mapping[str, str]:
        value = self.decoded(DR_POLICIES, dict)
        try:
            return MappingProxyType(rules.dr_policies(value, targets=targets, at=at, tz=tz))
        except RuleError as error:
            raise self.bad(DR_POLICIES, value, str(error)) from error

    def vault(
        self,
        accounts: Sequence[str],
        regions: Sequence[str],
        dr_targets: Mapping[str, DrTarget],
        *,
        at: str,
        tz: str,
    ) -> Vault | None:
        """Validated by the engine's rule ({}: no vault); here also against the DR targets, the size of the
        role's policy, and the accounts and regions the stack deploys to."""
        value = self.decoded(VAULT, dict)
        if value == {}:
            return None
        try:
            vault = rules.vault(value, at=at, tz=tz)
        except RuleError as error:
            raise self.bad(VAULT, value, str(error)) from error
        if dr_targets:
            targets = ", ".join(sorted(dr_targets))
            raise self.bad(VAULT, value, f"no {DR_TARGETS!r} on a vault deployment (it names {targets}): remove them")
        if len(vault.source_keys) > VAULT_MAX_SOURCE_REGIONS:
            raise self.bad(
                VAULT,
                value,
                f"at most {VAULT_MAX_SOURCE_REGIONS} source account/region pairs ({len(vault.source_keys)} given): "
                "each adds two alarms and ARNs to the role's policy, whose size IAM limits",
            )
        for source in vault.sources:
            if source.account in accounts:
                raise self.bad(
                    VAULT,
                    value,
                    f"source accounts other than {source.account}, where the vault is deployed: a vault in the "
                    "account it guards is deleted along with it",
                )
        key_account, key_region = _arn_account_region(vault.kms_key)
        if (key_account and any(key_account != a for a in accounts)) or (
            key_region and any(key_region != r for r in regions)
        ):
            where = ", ".join(sorted({*accounts, *regions}))
            raise self.bad(
                VAULT,
                value,
                f"a kmsKey of the vault's own account and region ({where}): an alias, a key id, or an ARN there",
            )
        return vault

    def named_policies(self, *, at: str, tz: str) -> Mapping[str, str]:
        value = self.decoded(NAMED_POLICIES, dict)
        if not isinstance(value, dict) or not all(
            isinstance(name, str) and isinstance(text, str) for name, text in value.items()
        ):
            raise self.bad(
                NAMED_POLICIES, value, 'a JSON object of policy name to policy text, such as {"gold": "gfs"}'
            )
        try:
            rules.named_policies(value, at=at, tz=tz)
        except RuleError as error:
            raise self.bad(NAMED_POLICIES, value, str(error)) from error
        return MappingProxyType(dict(value))

    def busy_retry_seconds(self, schedule: Schedule, timeout_seconds: int) -> int:
        """How long a run retries busy clusters: within the run's time, and shorter than the gap to the next
        run (which retries them anyway)."""
        value = self.number(BUSY_RETRY_SECONDS, rules.BUSY_RETRY_SECONDS)
        usable = timeout_seconds - RUN_MARGIN_SECONDS
        gap = schedule.interval_minutes * 60
        try:
            rules.busy_retry_within_schedule(value, schedule.interval_minutes)  # the function's own check
            fits = value < usable
        except RuleError:
            fits = False
        if not fits:
            raise self.bad(
                BUSY_RETRY_SECONDS,
                value,
                f"fewer seconds than {TIMEOUT_SECONDS!r} ({timeout_seconds}) less the run's {RUN_MARGIN_SECONDS} s "
                f"margin, and than the gap between two runs of {SCHEDULE!r} ({gap} s): at most {min(usable, gap) - 1}",
            )
        return value

    def environments(self) -> tuple[DeployEnvironment, ...]:
        value = self.decoded(ENVIRONMENTS, list)
        allowed = 'a list of {"account": "123456789012", "region": "eu-west-1"} objects (may be empty)'
        if not isinstance(value, list):
            raise self.bad(ENVIRONMENTS, value, allowed)
        environments: list[DeployEnvironment] = []
        for item in value:
            if not isinstance(item, dict) or set(item) != {"account", "region"}:
                raise self.bad(ENVIRONMENTS, item, allowed)
            account, region = item["account"], item["region"]
            if not isinstance(account, str) or not ACCOUNT.fullmatch(account):
                raise self.bad(ENVIRONMENTS, item, "an account id of 12 digits, as a string")
            if not isinstance(region, str) or not REGION.fullmatch(region):
                raise self.bad(ENVIRONMENTS, item, "a region name such as eu-west-1")
            environments.append(DeployEnvironment(account=account, region=region))
        if len(set(environments)) != len(environments):
            raise self.bad(ENVIRONMENTS, value, "each account/region pair at most once")
        return tuple(environments)

    def check_runs_cannot_overlap(self, schedule: Schedule, timeout_seconds: int, reserved: int | None) -> None:
        """Without a reservation of 1 nothing makes Lambda run one invocation at a time: the schedule must
        leave each run time to end (its timeout) before the next starts."""
        if reserved == 1 or schedule.shortest_gap_minutes * 60 > timeout_seconds:
            return
        raise self.bad(
            SCHEDULE,
            schedule.expression,
            f"runs further apart than {TIMEOUT_SECONDS!r} ({timeout_seconds} s), so that a run ends before "
            f"the next starts (this one starts runs {schedule.shortest_gap_minutes} minutes apart). Lengthen "
            f"the schedule, lower {TIMEOUT_SECONDS!r}, or set {RESERVED_CONCURRENCY!r} to 1 (Lambda then "
            f"throttles an overlapping run; the account needs a concurrency limit of at least "
            f"{LAMBDA_UNRESERVED_MINIMUM + 1})",
        )

    def schedule(self) -> Schedule:
        expression = self.string(SCHEDULE)
        timezone = self.text(SCHEDULE_TIMEZONE, rules.time_zone)
        heartbeat_given = self.raw(HEARTBEAT_MINUTES) is not None
        try:
            interval = schedule_interval_minutes(expression)
            shortest_gap = min(_schedule_gaps(expression))
        except _ScheduleError as error:
            raise self.bad(SCHEDULE, expression, str(error)) from error
        if interval is None:
            if not heartbeat_given:
                raise self.bad(
                    SCHEDULE,
                    expression,
                    f"a schedule that runs every day (or set {HEARTBEAT_MINUTES!r} to the longest gap "
                    "between two runs, in minutes, so the heartbeat alarm knows when a run is overdue)",
                )
            interval = self.number(HEARTBEAT_MINUTES, _INTERVAL_MINUTES)
        if not MIN_INTERVAL_MINUTES <= interval <= MAX_INTERVAL_MINUTES:
            raise self.bad(
                SCHEDULE,
                expression,
                f"runs at most {MAX_INTERVAL_MINUTES // 60} hours and at least {MIN_INTERVAL_MINUTES} "
                f"minutes apart (this one leaves gaps of {interval} minutes)",
            )
        return Schedule(
            expression=expression, timezone=timezone, interval_minutes=interval, shortest_gap_minutes=shortest_gap
        )


def _arn_account_region(arn: str | None) -> tuple[str | None, str | None]:
    """(account, region) of an ARN; (None, None) for anything else (an alias, a key id, nothing)."""
    if arn is None or not arn.startswith("arn:"):
        return None, None
    parts = arn.split(":")
    return parts[4], parts[3]


class _ScheduleError(ValueError):
    pass


_SCHEDULE_FORMS = "rate(N minutes|hours|days) or cron(minutes hours day-of-month month day-of-week year)"


def schedule_interval_minutes(expression: str) -> int | None:
    """The longest gap between two runs of an EventBridge Scheduler expression, in minutes.

    None for a valid cron expression that does not run every day (weekdays only, some months...):
    its longest gap is not worth deriving here, the caller must be told it explicitly.
    """
    gaps = _schedule_gaps(expression)
    cron = _CRON.match(expression)
    if cron:
        _, _, day_of_month, month, day_of_week, year = cron.group(1).split()
        every_day = day_of_month in ("*", "?") and day_of_week in ("*", "?") and month == "*" and year == "*"
        if not every_day:
            return None
    return max(gaps)


def _schedule_gaps(expression: str) -> list[int]:
    """The gaps between consecutive runs within a day and across midnight, in minutes; for a cron that
    skips days the real gaps can only be longer than the one across midnight."""
    rate = _RATE.match(expression)
    if rate:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1 or (value == 1) != (not unit.endswith("s")):
            raise _ScheduleError(f"{_SCHEDULE_FORMS}; a rate of 1 takes a singular unit, others a plural")
        return [value * _UNIT_MINUTES[unit.rstrip("s")]]
    cron = _CRON.match(expression)
    if not cron:
        raise _ScheduleError(_SCHEDULE_FORMS)
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise _ScheduleError(f"{_SCHEDULE_FORMS}: a cron expression has 6 fields")
    minutes, hours, day_of_month, _month, day_of_week, _year = fields
    if (day_of_month == "?") == (day_of_week == "?"):
        raise _ScheduleError(f"{_SCHEDULE_FORMS}: exactly one of day-of-month and day-of-week must be '?'")
    times = sorted(hour * 60 + minute for hour in _cron_values(hours, 0, 23) for minute in _cron_values(minutes, 0, 59))
    gaps = [later - earlier for earlier, later in pairwise(times)]
    gaps.append(times[0] + 24 * 60 - times[-1])  # from the last run of a day to the first of the next
    return gaps


def _cron_values(field: str, low: int, high: int) -> set[int]:
    """The values of one numeric cron field: *, N, A-B, */S, A/S, A-B/S and comma lists of them."""
    values: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if base == "*":
                start, end = low, high
            elif "-" in base:
                first, last = base.split("-", 1)
                start, end = int(first), int(last)
            else:
                start = int(base)
                end = high if step_text else start
        except ValueError as error:
            raise _ScheduleError(f"{_SCHEDULE_FORMS}: cannot read cron field {field!r}") from error
        if step < 1 or not low <= start <= end <= high:
            raise _ScheduleError(f"{_SCHEDULE_FORMS}: cron field {field!r} is out of range {low}-{high}")
        values.update(range(start, end + 1, step))
    return values
