"""Settings.from_env(): the one place that reads and validates the function's environment.

infra/ sets exactly ENV_VARS on the function; tests/infra checks that the two agree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from snapshot_scheduler import settings_rules as rules
from snapshot_scheduler.dr import COPY_LIMIT, DrTarget
from snapshot_scheduler.errors import ConfigError

if TYPE_CHECKING:  # the vault role's modules load only in a vault (cold start of every source)
    from snapshot_scheduler.vault import Vault

POLICY_TAG_KEY = "SNAPSHOT_POLICY_TAG_KEY"
DEPLOYMENT = "SNAPSHOT_DEPLOYMENT"
NAMED_POLICIES = "SNAPSHOT_NAMED_POLICIES"
DEFAULT_AT = "SNAPSHOT_DEFAULT_AT"
DEFAULT_TZ = "SNAPSHOT_DEFAULT_TZ"
GRACE_MINUTES = "SNAPSHOT_GRACE_MINUTES"
POLICY_CHANGE_GRACE_HOURS = "SNAPSHOT_POLICY_CHANGE_GRACE_HOURS"
ENGINES = "SNAPSHOT_ENGINES"
DRY_RUN = "SNAPSHOT_DRY_RUN"
API_RATE = "SNAPSHOT_API_RATE"
API_BURST = "SNAPSHOT_API_BURST"
BUSY_RETRY_SECONDS = "SNAPSHOT_BUSY_RETRY_SECONDS"
SCHEDULE_MINUTES = "SNAPSHOT_SCHEDULE_MINUTES"
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"
# Disaster-recovery copies (the stack's drTargets, drPolicies, drTagKey, drCopyLimit, drStuckHours).
DR_TARGETS = "SNAPSHOT_DR_TARGETS"
DR_POLICIES = "SNAPSHOT_DR_POLICIES"
DR_TAG_KEY = "SNAPSHOT_DR_TAG_KEY"
DR_COPY_LIMIT = "SNAPSHOT_DR_COPY_LIMIT"
DR_STUCK_HOURS = "SNAPSHOT_DR_STUCK_HOURS"
DR_ENV_VARS = (DR_TARGETS, DR_POLICIES, DR_TAG_KEY, DR_COPY_LIMIT, DR_STUCK_HOURS)
# Set only on a vault deployment (the stack's `vault`): the run copies what its sources share, nothing else.
VAULT = "SNAPSHOT_VAULT"
# The stack's DR defaults (no target), for the CLI.
DR_DEFAULTS: Mapping[str, str] = {
    DR_TARGETS: "{}",
    DR_POLICIES: "{}",
    DR_TAG_KEY: "snapshot-dr",
    DR_COPY_LIMIT: "5",
    DR_STUCK_HOURS: "24",
}

ENV_VARS = (
    POLICY_TAG_KEY,
    DEPLOYMENT,
    NAMED_POLICIES,
    DEFAULT_AT,
    DEFAULT_TZ,
    GRACE_MINUTES,
    POLICY_CHANGE_GRACE_HOURS,
    ENGINES,
    DRY_RUN,
    API_RATE,
    API_BURST,
    BUSY_RETRY_SECONDS,
    SCHEDULE_MINUTES,
    SERVICE_NAME,
    METRICS_NAMESPACE,
    LOG_LEVEL,
    *DR_ENV_VARS,
)

# Set by the stack on every function; a CLI may run without them.
OPTIONAL_ENV_VARS = frozenset({SCHEDULE_MINUTES})

_INT = re.compile(r"^[0-9]+\Z")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?\Z")
_T = TypeVar("_T")
_N = TypeVar("_N", int, float)


@dataclass(frozen=True)
class Settings:
    policy_tag_key: str
    deployment: str
    default_at: str
    default_tz: str
    grace: timedelta
    policy_change_grace: timedelta  # deletions caused by a change of policy wait this long (0: not at all)
    engines: frozenset[str]
    dry_run: bool
    api_rate: float
    api_burst: int
    busy_retry: timedelta
    # The deployment's schedule (the longest gap between two runs); None when unknown (the CLI without it).
    run_interval: timedelta | None
    service_name: str
    metrics_namespace: str
    log_level: str
    named_policies: Mapping[str, str]
    dr_targets: Mapping[str, DrTarget] = field(default_factory=dict)
    dr_policies: Mapping[str, str] = field(default_factory=dict)  # name -> DR tag words (drPolicies)
    dr_tag_key: str = DR_DEFAULTS[DR_TAG_KEY]
    dr_copy_limit: int = COPY_LIMIT
    dr_stuck: timedelta = timedelta(hours=24)  # also a vault's copies
    vault: Vault | None = None  # SNAPSHOT_VAULT: this deployment is a vault

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from the environment; raise ConfigError naming the variable, its value and what is allowed.

        Values are checked by settings_rules, the rules infra/config.py checks the cdk.json context with. A
        named policy that does not parse is not a start-up error: the clusters tagged with it get a policy
        error, and every other cluster is backed up. Named DR policies are checked here like the DR targets
        they name (the synth refuses the same ones, so only a hand-edited environment fails)."""
        env = _Env(os.environ if environ is None else environ)
        default_at, default_tz = env.checked(DEFAULT_AT, rules.time_of_day), env.checked(DEFAULT_TZ, rules.time_zone)
        dr_targets = MappingProxyType(env.checked(DR_TARGETS, lambda text: rules.dr_targets(_json(text))))
        settings = cls(
            policy_tag_key=env.checked(POLICY_TAG_KEY, partial(rules.tag_text, max_length=rules.POLICY_TAG_KEY_LENGTH)),
            deployment=env.checked(DEPLOYMENT, partial(rules.tag_text, max_length=rules.DEPLOYMENT_LENGTH)),
            default_at=default_at,
            default_tz=default_tz,
            grace=timedelta(minutes=env.number(GRACE_MINUTES, rules.GRACE_MINUTES)),
            policy_change_grace=timedelta(hours=env.number(POLICY_CHANGE_GRACE_HOURS, rules.POLICY_CHANGE_GRACE_HOURS)),
            engines=frozenset(env.checked(ENGINES, lambda text: rules.engines(_comma_list(text)))),
            dry_run=env.choice(DRY_RUN, ("true", "false")) == "true",
            api_rate=env.number(API_RATE, rules.API_RATE),
            api_burst=env.number(API_BURST, rules.API_BURST),
            busy_retry=timedelta(seconds=env.number(BUSY_RETRY_SECONDS, rules.BUSY_RETRY_SECONDS)),
            run_interval=env.optional_minutes(SCHEDULE_MINUTES, rules.SCHEDULE_MINUTES),
            service_name=env.required(SERVICE_NAME).strip(),
            metrics_namespace=env.checked(METRICS_NAMESPACE, rules.metric_namespace),
            log_level=env.checked(LOG_LEVEL, rules.log_level),
            named_policies=env.named_policies(NAMED_POLICIES),
            dr_targets=dr_targets,
            dr_policies=MappingProxyType(
                env.checked(
                    DR_POLICIES,
                    lambda text: rules.dr_policies(_json(text), targets=dr_targets, at=default_at, tz=default_tz),
                )
            ),
            dr_tag_key=env.checked(DR_TAG_KEY, partial(rules.tag_text, max_length=rules.POLICY_TAG_KEY_LENGTH)),
            dr_copy_limit=env.number(DR_COPY_LIMIT, rules.DR_COPY_LIMIT),
            dr_stuck=timedelta(hours=env.number(DR_STUCK_HOURS, rules.DR_STUCK_HOURS)),
            vault=env.optional(VAULT, lambda text: rules.vault(_json(text), at=default_at, tz=default_tz)),
        )
        settings.check_busy_retry()
        if settings.vault is not None and settings.dr_targets:
            raise ConfigError(
                f"environment variables {VAULT} and {DR_TARGETS} are both set: a vault deployment copies what its "
                f"sources share and has no DR targets; set {DR_TARGETS}={{}}"
            )
        return settings

    def check_busy_retry(self) -> None:
        if self.run_interval is None:
            return
        seconds, minutes = int(self.busy_retry.total_seconds()), int(self.run_interval.total_seconds() // 60)
        try:
            rules.busy_retry_within_schedule(seconds, minutes)
        except rules.RuleError as error:
            raise ConfigError(
                f"environment variable {BUSY_RETRY_SECONDS}={seconds} is invalid with {SCHEDULE_MINUTES}={minutes}: "
                f"expected {error}"
            ) from error


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise rules.RuleError(f"JSON ({error})") from error


def _comma_list(text: str) -> list[str]:
    return [part for part in text.split(",") if part.strip()]


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def required(self, name: str) -> str:
        """The value as set (a blank one counts as missing)."""
        value = self._environ.get(name)
        if value is None or not value.strip():
            raise ConfigError(f"environment variable {name} is missing; the deployment must set it")
        return value

    def _bad(self, name: str, value: str, allowed: str) -> ConfigError:
        return ConfigError(f"environment variable {name}={value!r} is invalid: expected {allowed}")

    def checked(self, name: str, rule: Callable[[str], _T]) -> _T:
        value = self.required(name)
        try:
            return rule(value)
        except rules.RuleError as error:
            raise self._bad(name, value, str(error)) from error

    def number(self, name: str, bounds: rules.Range[_N]) -> _N:
        value = self.required(name)
        # Plain decimal digits only: int() and float() would also take "6_0", "1e3" or "inf".
        pattern = _INT if bounds.kind is int else _DECIMAL
        if not pattern.match(value):
            raise self._bad(name, value, bounds.allowed)
        return self.checked(name, lambda text: bounds.check(bounds.kind(text)))

    def optional(self, name: str, rule: Callable[[str], _T]) -> _T | None:
        """The checked value, or None when the variable is not set (or blank)."""
        if not self._environ.get(name, "").strip():
            return None
        return self.checked(name, rule)

    def optional_minutes(self, name: str, bounds: rules.Range[int]) -> timedelta | None:
        """Minutes, or None when the variable is not set."""
        if not self._environ.get(name, "").strip():
            return None
        return timedelta(minutes=self.number(name, bounds))

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.required(name)
        for option in allowed:
            if value.strip().lower() == option.lower():
                return option
        raise self._bad(name, value, "one of " + ", ".join(allowed))

    def named_policies(self, name: str) -> Mapping[str, str]:
        value = self.required(name)
        try:
            loaded = json.loads(value)
        except json.JSONDecodeError as error:
            raise self._bad(name, value, f"a JSON object of policy name to policy text ({error})") from error
        if not isinstance(loaded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
        ):
            raise self._bad(name, value, "a JSON object of policy name to policy text")
        return MappingProxyType(dict(loaded))
