"""The rules of the deployment's settings. Pure: one implementation for the function and for the CDK app.

config.Settings.from_env() applies them to the function's environment variables and infra/config.py to the
cdk.json context, so every value `cdk synth` accepts is one the function accepts on every run. A rule takes
the value as the deployment gives it and returns the value to use, or raises RuleError saying what is
allowed; the caller names the setting (an environment variable or a context key) and shows the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from snapshot_scheduler import policy, tags
from snapshot_scheduler.dr import (
    DrPolicyError,
    DrTarget,
    check_dr_policy_name,
    check_targets,
    parse_dr_policy,
    parse_dr_targets,
    share_only_names,
)

if TYPE_CHECKING:  # loaded by `vault` below, in a vault only: a source's cold start skips the vault role
    from snapshot_scheduler.vault import Vault

_N = TypeVar("_N", int, float)


class RuleError(ValueError):
    """A value that breaks its setting's rule; the message says what is allowed."""


@dataclass(frozen=True)
class Range(Generic[_N]):
    """A number from low to high; `kind` int takes whole numbers only."""

    kind: type[_N]
    low: _N
    high: _N

    @property
    def allowed(self) -> str:
        noun = "a whole number" if self.kind is int else "a number"
        return f"{noun} from {self.low:g} to {self.high:g}"

    def check(self, value: object) -> _N:
        wrong_kind = self.kind is int and not isinstance(value, int)
        if isinstance(value, bool) or not isinstance(value, int | float) or wrong_kind:
            raise RuleError(self.allowed)
        number = self.kind(value)
        if not self.low <= number <= self.high:  # also refuses NaN
            raise RuleError(self.allowed)
        return number


GRACE_MINUTES = Range(int, 0, 7 * 24 * 60)
API_RATE = Range(float, 0.1, 1000.0)
API_BURST = Range(int, 1, 10_000)
# A busy cluster is retried within a run for at most this long (RDS's own backups and maintenance can keep a
# cluster busy for most of an hour; the next run catches up within the slot). The Lambda's timeout is at most
# 900 s and a run stops starting work 30 s before it: a longer window could never be used.
BUSY_RETRY_SECONDS = Range(int, 0, 870)
# Deletions a change of policy caused wait at most this long (policy_change): 0 deletes at once.
POLICY_CHANGE_GRACE_HOURS = Range(int, 0, 30 * 24)
# The longest gap between two scheduled runs: at least 5 minutes, at most 12 hours (the heartbeat alarm
# watches twice the gap, and a CloudWatch alarm window is at most a day).
SCHEDULE_MINUTES = Range(int, 5, 12 * 60)
DR_COPY_LIMIT = Range(int, 1, 5)  # RDS allows 5 cluster snapshot copies in progress per destination region
DR_STUCK_HOURS = Range(int, 1, 30 * 24)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
POLICY_TAG_KEY_LENGTH = 128  # RDS: a tag key holds at most 128 characters
DEPLOYMENT_LENGTH = 256  # the marker's value: a tag value holds at most 256

_ENGINE = re.compile(r"^[a-z][a-z0-9-]*\Z")
_NAMESPACE = re.compile(r"^[^:]{1,255}\Z")


def busy_retry_within_schedule(seconds: int, schedule_minutes: int) -> int:
    """Retrying a busy cluster up to the next run would overlap that run, which retries it anyway."""
    if seconds >= schedule_minutes * 60:
        raise RuleError(f"fewer seconds than the gap between two runs ({schedule_minutes * 60} s)")
    return seconds


def tag_text(value: str, *, max_length: int) -> str:
    """Text for a tag (the policy tag key, the marker's value), exactly as IAM conditions, alarm dimensions
    and the function will see it: no surrounding spaces to be stripped by one side and kept by another."""
    if (
        not value
        or value != value.strip()
        or len(value) > max_length
        or not tags.is_text(value)
        or value.lower().startswith(("aws:", "rds:"))
    ):
        raise RuleError(f"1-{max_length} {tags.TEXT_RULE}, without surrounding spaces, not starting with aws: or rds:")
    return value


def time_of_day(value: str) -> str:
    try:
        policy.parse_clock(value.strip())
    except policy.PolicyError as error:
        raise RuleError("a time of day HH:MM from 00:00 to 23:59 in ASCII digits, such as 03:00") from error
    return value.strip()


def time_zone(value: str) -> str:
    """The zone's canonical name (UTC in capitals)."""
    try:
        return policy.parse_zone(value.strip()).key
    except policy.PolicyError as error:
        raise RuleError(policy.ZONE_RULE + policy.zone_hint(value.strip())) from error


def log_level(value: str) -> str:
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise RuleError("one of " + ", ".join(LOG_LEVELS))
    return level


def metric_namespace(value: str) -> str:
    namespace = value.strip()
    if not _NAMESPACE.match(namespace):
        raise RuleError("a CloudWatch namespace: 1-255 characters without ':'")
    return namespace


def engines(names: Iterable[str]) -> tuple[str, ...]:
    listed = tuple(name.strip() for name in names)
    if not listed or not all(_ENGINE.match(name) for name in listed) or len(set(listed)) != len(listed):
        raise RuleError("a non-empty list of RDS engine names such as aurora-postgresql, without duplicates")
    return listed


def dr_targets(value: object) -> dict[str, DrTarget]:
    """drTargets: {"dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"}}, one target per region;
    "retired": true stops new copies to a target whose copies are still pruned. A target that names an
    account (a vault) is shared with: {"vault": {"account": "222222222222", "region": ..., "shareHours": 72}}."""
    try:
        return parse_dr_targets(value)
    except ValueError as error:
        raise RuleError(
            f'an object of target name to {{"region": ..., "kmsKey": ..., "retired": ...}} or '
            f'{{"account": ..., "region": ..., "shareHours": ...}}: {error}'
        ) from error


def dr_policies(value: object, *, targets: Mapping[str, DrTarget], at: str, tz: str) -> dict[str, str]:
    """drPolicies (SNAPSHOT_DR_POLICIES): {"dr-standard": "to=dr-west every=1d keep-daily=7 keep-weekly=4"}.
    Every name a word a DR tag can select (whatever its case: no two differ only in case), every text a DR
    policy whose to= names targets of drTargets (a retired one too: a cluster selecting it is told, as one
    whose tag names it, and its copies there are pruned by their recorded policy). `at` and `tz` are the
    deployment's defaultAt and defaultTimezone, as for a DR tag."""
    allowed = 'an object of DR policy name to DR tag words such as "to=dr-west keep-daily=7"'
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise RuleError(allowed)
    accounts = share_only_names(targets)
    for name in value:
        try:
            check_dr_policy_name(name)
            check_targets(parse_dr_policy(name, value, at=at, tz=tz, accounts=accounts), targets)
        except DrPolicyError as error:
            raise RuleError(f"{allowed}, each selectable by a DR tag and usable: {error}") from error
    return dict(value)


def vault(value: object, *, at: str, tz: str) -> Vault:
    """vault (SNAPSHOT_VAULT): the sources whose shared snapshots this deployment copies, and the vault's own
    policy, kmsKey, minRetentionDays and sharesExpectedHours (vault.parse_vault). `at` and `tz` are the
    deployment's defaultAt and defaultTimezone, as for a policy tag."""
    from snapshot_scheduler.vault import parse_vault  # noqa: PLC0415 - see the TYPE_CHECKING import

    try:
        return parse_vault(value, at=at, tz=tz)
    except ValueError as error:
        raise RuleError(f"a vault object: {error}") from error


def named_policies(named: Mapping[str, str], *, at: str, tz: str) -> None:
    """Every named policy selectable by a tag and usable as the engine parses it for a cluster.

    The function does not apply this rule when it starts: a cluster tagged with a bad named policy gets
    the same PolicyError from parse_policy, and the other clusters are backed up. The synth refuses it."""
    for name in named:
        try:
            policy.check_name(name)
            policy.parse_policy(name, named, at=at, tz=tz)
        except policy.PolicyError as error:
            raise RuleError(f"policies a tag can select and that parse: {error}") from error
