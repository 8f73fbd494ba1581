"""Settings.from_env(): the one place that reads and validates the function's environment.

infra/ sets exactly ENV_VARS on the function; tests/infra checks that the two agree.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import TypeVar

from snapshot_scheduler import tags
from snapshot_scheduler.errors import ConfigError
from snapshot_scheduler.policy import PolicyError, check_name, parse_clock, parse_policy, parse_zone

POLICY_TAG_KEY = "SNAPSHOT_POLICY_TAG_KEY"
DEPLOYMENT = "SNAPSHOT_DEPLOYMENT"
NAMED_POLICIES = "SNAPSHOT_NAMED_POLICIES"
DEFAULT_AT = "SNAPSHOT_DEFAULT_AT"
DEFAULT_TZ = "SNAPSHOT_DEFAULT_TZ"
GRACE_MINUTES = "SNAPSHOT_GRACE_MINUTES"
ENGINES = "SNAPSHOT_ENGINES"
DRY_RUN = "SNAPSHOT_DRY_RUN"
API_RATE = "SNAPSHOT_API_RATE"
API_BURST = "SNAPSHOT_API_BURST"
BUSY_RETRY_SECONDS = "SNAPSHOT_BUSY_RETRY_SECONDS"
SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"

ENV_VARS = (
    POLICY_TAG_KEY,
    DEPLOYMENT,
    NAMED_POLICIES,
    DEFAULT_AT,
    DEFAULT_TZ,
    GRACE_MINUTES,
    ENGINES,
    DRY_RUN,
    API_RATE,
    API_BURST,
    BUSY_RETRY_SECONDS,
    SERVICE_NAME,
    METRICS_NAMESPACE,
    LOG_LEVEL,
)

_ENGINE = re.compile(r"^[a-z][a-z0-9-]*$")
_INT = re.compile(r"^[0-9]+$")
_DECIMAL = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_N = TypeVar("_N", int, float)
# A busy cluster is retried within a run for at most this long (RDS's own backups and maintenance can keep a
# cluster busy for most of an hour; the next run catches up within the slot). The Lambda's timeout is at most
# 900 s and a run stops starting work 30 s before it: a longer window could never be used.
MAX_BUSY_RETRY_SECONDS = 870


@dataclass(frozen=True)
class Settings:
    policy_tag_key: str
    deployment: str
    default_at: str
    default_tz: str
    grace: timedelta
    engines: frozenset[str]
    dry_run: bool
    api_rate: float
    api_burst: int
    busy_retry: timedelta
    service_name: str
    metrics_namespace: str
    log_level: str
    named_policies: Mapping[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build from the environment; raise ConfigError naming the variable, its value and what is allowed."""
        env = _Env(os.environ if environ is None else environ)
        settings = cls(
            policy_tag_key=env.tag_text(POLICY_TAG_KEY, max_len=128),
            deployment=env.tag_text(DEPLOYMENT, max_len=256),
            default_at=env.parsed(DEFAULT_AT, parse_clock, "a time HH:MM such as 03:00"),
            default_tz=env.parsed(DEFAULT_TZ, parse_zone, "an IANA time zone such as UTC or Europe/Berlin"),
            grace=timedelta(minutes=env.number(GRACE_MINUTES, int, low=0, high=7 * 24 * 60)),
            engines=env.engines(ENGINES),
            dry_run=env.boolean(DRY_RUN),
            api_rate=env.number(API_RATE, float, low=0.1, high=1000),
            api_burst=env.number(API_BURST, int, low=1, high=10_000),
            busy_retry=timedelta(seconds=env.number(BUSY_RETRY_SECONDS, int, low=0, high=MAX_BUSY_RETRY_SECONDS)),
            service_name=env.required(SERVICE_NAME),
            metrics_namespace=env.required(METRICS_NAMESPACE),
            log_level=env.choice(LOG_LEVEL, _LOG_LEVELS),
            named_policies=env.named_policies(NAMED_POLICIES),
        )
        settings.check_named_policies()
        return settings

    def check_named_policies(self) -> None:
        """A named policy that does not parse is a deployment error, caught at start-up, not per cluster."""
        seen: dict[str, str] = {}
        for name, spec in self.named_policies.items():
            if name.lower() in seen:
                raise ConfigError(
                    f"{NAMED_POLICIES}: policy names {seen[name.lower()]!r} and {name!r} differ only in case"
                )
            seen[name.lower()] = name
            try:
                check_name(name)
                parse_policy(name, self.named_policies, at=self.default_at, tz=self.default_tz)
            except PolicyError as error:
                raise ConfigError(f"{NAMED_POLICIES}: policy {name!r} ({spec!r}) is invalid: {error}") from error


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def required(self, name: str) -> str:
        value = self._environ.get(name)
        if value is None or not value.strip():
            raise ConfigError(f"environment variable {name} is missing; the deployment must set it")
        return value.strip()

    def _bad(self, name: str, value: str, allowed: str) -> ConfigError:
        return ConfigError(f"environment variable {name}={value!r} is invalid: expected {allowed}")

    def tag_text(self, name: str, *, max_len: int) -> str:
        value = self.required(name)
        if len(value) > max_len or not tags.TEXT.match(value) or value.lower().startswith(("aws:", "rds:")):
            allowed = f"at most {max_len} letters, digits, spaces or _ . : / = + - @, not starting with aws: or rds:"
            raise self._bad(name, value, allowed)
        return value

    def parsed(self, name: str, parse: object, allowed: str) -> str:
        value = self.required(name)
        try:
            parse(value)  # type: ignore[operator]
        except PolicyError as error:
            raise self._bad(name, value, allowed) from error
        return value

    def number(self, name: str, kind: type[_N], *, low: _N, high: _N) -> _N:
        value = self.required(name)
        # Plain decimal digits only: int() and float() would also take "6_0", "1e3" or "inf".
        pattern = _INT if kind is int else _DECIMAL
        number = kind(value) if pattern.match(value) else None
        if number is None or not low <= number <= high:
            raise self._bad(name, value, f"a {kind.__name__} from {low} to {high}")
        return number

    def boolean(self, name: str) -> bool:
        return self.choice(name, ("true", "false")) == "true"

    def choice(self, name: str, allowed: tuple[str, ...]) -> str:
        value = self.required(name)
        for option in allowed:
            if value.lower() == option.lower():
                return option
        raise self._bad(name, value, "one of " + ", ".join(allowed))

    def engines(self, name: str) -> frozenset[str]:
        value = self.required(name)
        engines = frozenset(part.strip() for part in value.split(",") if part.strip())
        if not engines or not all(_ENGINE.match(engine) for engine in engines):
            raise self._bad(name, value, "a comma-separated list of RDS engine names such as aurora-postgresql")
        return engines

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
