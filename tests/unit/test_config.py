"""Settings.from_env: the one place the environment is read. A bad setting is a clear startup error.

Every ConfigError must name the variable, show the value and say what is allowed, because it is the only
thing an operator sees when the function fails on its first invocation.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from snapshot_scheduler import config
from snapshot_scheduler.config import ENV_VARS, Settings
from snapshot_scheduler.errors import ConfigError, SnapshotSchedulerError
from snapshot_scheduler.policy import parse_policy

VALID = {
    "SNAPSHOT_POLICY_TAG_KEY": "snapshot-policy",
    "SNAPSHOT_DEPLOYMENT": "SnapshotScheduler-prod",
    "SNAPSHOT_NAMED_POLICIES": json.dumps({"gold": "every=4h keep-hourly=12 keep-daily=30", "daily": "keep-daily=14"}),
    "SNAPSHOT_DEFAULT_AT": "02:30",
    "SNAPSHOT_DEFAULT_TZ": "Europe/Berlin",
    "SNAPSHOT_GRACE_MINUTES": "90",
    "SNAPSHOT_ENGINES": "aurora-mysql, aurora-postgresql,mysql,postgres",
    "SNAPSHOT_DRY_RUN": "false",
    "SNAPSHOT_API_RATE": "8.5",
    "SNAPSHOT_API_BURST": "150",
    "SNAPSHOT_BUSY_RETRY_SECONDS": "240",
    "POWERTOOLS_SERVICE_NAME": "snapshot-scheduler",
    "POWERTOOLS_METRICS_NAMESPACE": "SnapshotScheduler",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}


def env(**changes: str | None) -> dict[str, str]:
    """The valid environment with some variables changed (None: removed)."""
    out = dict(VALID)
    for name, value in changes.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def test_the_valid_environment_sets_every_variable_the_function_reads() -> None:
    assert set(VALID) == set(ENV_VARS)


def test_full_valid_environment_gives_typed_settings() -> None:
    settings = Settings.from_env(VALID)

    assert settings.policy_tag_key == "snapshot-policy"
    assert settings.deployment == "SnapshotScheduler-prod"
    assert dict(settings.named_policies) == json.loads(VALID["SNAPSHOT_NAMED_POLICIES"])
    assert settings.default_at == "02:30"
    assert settings.default_tz == "Europe/Berlin"
    assert settings.grace == timedelta(minutes=90)
    assert settings.engines == frozenset({"aurora-mysql", "aurora-postgresql", "mysql", "postgres"})
    assert settings.dry_run is False
    assert settings.api_rate == 8.5
    assert settings.api_burst == 150
    assert settings.busy_retry == timedelta(minutes=4)
    assert settings.service_name == "snapshot-scheduler"
    assert settings.metrics_namespace == "SnapshotScheduler"
    assert settings.log_level == "INFO"


def test_reads_os_environ_when_given_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in VALID.items():
        monkeypatch.setenv(name, value)

    assert Settings.from_env() == Settings.from_env(VALID)


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("TRUE", True), ("False", False)])
def test_dry_run_is_a_boolean(value: str, expected: bool) -> None:
    assert Settings.from_env(env(SNAPSHOT_DRY_RUN=value)).dry_run is expected


def test_empty_named_policies_is_allowed() -> None:
    assert dict(Settings.from_env(env(SNAPSHOT_NAMED_POLICIES="{}")).named_policies) == {}


def test_settings_are_frozen_and_named_policies_read_only() -> None:
    settings = Settings.from_env(VALID)

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.deployment = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.named_policies["gold"] = "keep-last=1"  # type: ignore[index]


def test_config_error_is_a_snapshot_scheduler_error() -> None:
    assert issubclass(ConfigError, SnapshotSchedulerError)


# --- missing ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ENV_VARS)
def test_missing_variable_is_a_startup_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(**{name: None}))

    assert name in str(caught.value)
    assert "missing" in str(caught.value)


@pytest.mark.parametrize("name", ENV_VARS)
def test_blank_variable_counts_as_missing(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(**{name: "   "}))

    assert name in str(caught.value)


# --- malformed ----------------------------------------------------------------------------------------------

MALFORMED = [
    # (variable, value, fragment of what is allowed)
    ("SNAPSHOT_POLICY_TAG_KEY", "aws:snapshot-policy", "aws:"),
    ("SNAPSHOT_POLICY_TAG_KEY", "rds:policy", "rds:"),
    ("SNAPSHOT_POLICY_TAG_KEY", "policy#1", "letters, digits"),
    ("SNAPSHOT_POLICY_TAG_KEY", "p" * 129, "128"),
    ("SNAPSHOT_DEPLOYMENT", "my,stack", "letters, digits"),
    ("SNAPSHOT_DEPLOYMENT", "AWS:stack", "aws:"),
    ("SNAPSHOT_DEPLOYMENT", "d" * 257, "256"),
    ("SNAPSHOT_NAMED_POLICIES", "gold=keep-daily=7", "JSON object"),
    ("SNAPSHOT_NAMED_POLICIES", '["keep-daily=7"]', "JSON object"),
    ("SNAPSHOT_NAMED_POLICIES", '{"gold": 7}', "policy text"),
    ("SNAPSHOT_NAMED_POLICIES", '{"gold": {"keep-daily": 7}}', "policy text"),
    ("SNAPSHOT_DEFAULT_AT", "3am", "HH:MM"),
    ("SNAPSHOT_DEFAULT_AT", "25:00", "HH:MM"),
    ("SNAPSHOT_DEFAULT_AT", "3:00", "HH:MM"),
    ("SNAPSHOT_DEFAULT_TZ", "Mars/Olympus_Mons", "IANA"),
    ("SNAPSHOT_DEFAULT_TZ", "+02:00", "IANA"),
    ("SNAPSHOT_GRACE_MINUTES", "abc", "int"),
    ("SNAPSHOT_GRACE_MINUTES", "-1", "from 0"),
    ("SNAPSHOT_GRACE_MINUTES", "1.5", "int"),
    ("SNAPSHOT_GRACE_MINUTES", "99999999", "10080"),
    ("SNAPSHOT_GRACE_MINUTES", "6_0", "int"),  # int() would take Python's digit grouping
    ("SNAPSHOT_GRACE_MINUTES", "1e3", "int"),
    ("SNAPSHOT_ENGINES", ",", "comma-separated"),
    ("SNAPSHOT_ENGINES", "Aurora MySQL", "engine names"),
    ("SNAPSHOT_ENGINES", "aurora-mysql;postgres", "comma-separated"),
    ("SNAPSHOT_DRY_RUN", "yes", "true, false"),
    ("SNAPSHOT_DRY_RUN", "1", "true, false"),
    ("SNAPSHOT_API_RATE", "0", "from 0.1"),
    ("SNAPSHOT_API_RATE", "fast", "float"),
    ("SNAPSHOT_API_RATE", "nan", "float"),
    ("SNAPSHOT_API_RATE", "inf", "1000"),
    ("SNAPSHOT_API_RATE", "-5", "from 0.1"),
    ("SNAPSHOT_API_RATE", "1_0", "float"),
    ("SNAPSHOT_API_RATE", "1e2", "float"),
    ("SNAPSHOT_API_BURST", "0", "from 1"),
    ("SNAPSHOT_API_BURST", "2.5", "int"),
    ("SNAPSHOT_API_BURST", "lots", "int"),
    ("SNAPSHOT_BUSY_RETRY_SECONDS", "-1", "int"),
    ("SNAPSHOT_BUSY_RETRY_SECONDS", "900", "from 0 to 870"),
    ("POWERTOOLS_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
]


@pytest.mark.parametrize(("name", "value", "allowed"), MALFORMED)
def test_malformed_variable_is_a_startup_error_naming_it_its_value_and_what_is_allowed(
    name: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(**{name: value}))

    message = str(caught.value)
    assert name in message
    assert value[:40] in message
    assert allowed in message


# --- named policies are checked at startup ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "fragments"),
    [
        ({"gold": "every=1d keep-daily=seven"}, ["gold", "keep-daily=seven", "whole number"]),
        ({"gold": "every=1d"}, ["gold", "keep"]),
        ({"gold": "every=1d colour=gold keep-daily=7"}, ["gold", "colour=gold", "allowed keys"]),
        ({"daily": "every=1d keep-daily=7,"}, ["daily", "','"]),
        ({"gold": "every=1d keep-daily=7", "silver": "tz=Nowhere keep-daily=3"}, ["silver", "tz=Nowhere"]),
    ],
)
def test_bad_named_policy_is_a_startup_error(policies: dict[str, str], fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps(policies)))

    message = str(caught.value)
    assert config.NAMED_POLICIES in message
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("name", ["gold tier", "every=1d", "gold,silver", "", "off", "7day"])
def test_named_policy_that_no_tag_could_name_is_a_startup_error(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({name: "keep-daily=7"})))

    assert config.NAMED_POLICIES in str(caught.value)
    assert repr(name) in str(caught.value)


def test_named_policy_accepted_at_startup_is_one_a_cluster_can_use() -> None:
    named = {"gold": "silver", "silver": "keep-daily=3"}

    try:
        settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps(named)))
    except ConfigError:
        return  # rejected at startup: consistent
    # accepted at startup: then a cluster tagged with it must get a policy, not a PolicyError
    parse_policy("gold", settings.named_policies, at=settings.default_at, tz=settings.default_tz)


def test_named_policies_differing_only_in_case_are_a_startup_error() -> None:
    # tag values select names whatever their case, so these two would be one name
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({"Gold": "keep-daily=7", "gold": "keep-daily=3"})))

    assert "'Gold'" in str(caught.value) and "'gold'" in str(caught.value)


def test_named_policy_may_be_a_presets_name() -> None:
    settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({"standard": "gfs"})))

    policy = parse_policy("standard", settings.named_policies)
    assert policy.retention == parse_policy("gfs").retention


def test_named_policies_are_checked_with_the_deployment_defaults() -> None:
    # a policy that names no zone takes the default zone, which must exist; this one is fine
    settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({"gold": "keep-daily=7"})))

    assert dict(settings.named_policies) == {"gold": "keep-daily=7"}
