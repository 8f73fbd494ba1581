"""Settings.from_env: the one place the environment is read. A bad setting is a clear startup error.

Every ConfigError must name the variable, show the value and say what is allowed, because it is the only
thing an operator sees when the function fails on its first invocation.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import timedelta

import pytest
from snapshot_scheduler import settings_rules as rules
from snapshot_scheduler.config import DR_DEFAULTS, ENV_VARS, OPTIONAL_ENV_VARS, Settings
from snapshot_scheduler.dr import DrContext
from snapshot_scheduler.errors import ConfigError, SnapshotSchedulerError
from snapshot_scheduler.policy import PolicyError, parse_policy

VALID = {
    "SNAPSHOT_POLICY_TAG_KEY": "snapshot-policy",
    "SNAPSHOT_DEPLOYMENT": "SnapshotScheduler-prod",
    "SNAPSHOT_NAMED_POLICIES": json.dumps({"gold": "every=4h keep-hourly=12 keep-daily=30", "daily": "keep-daily=14"}),
    "SNAPSHOT_DEFAULT_AT": "02:30",
    "SNAPSHOT_DEFAULT_TZ": "Europe/Berlin",
    "SNAPSHOT_GRACE_MINUTES": "90",
    "SNAPSHOT_POLICY_CHANGE_GRACE_HOURS": "48",
    "SNAPSHOT_ENGINES": "aurora-mysql, aurora-postgresql,mysql,postgres",
    "SNAPSHOT_DRY_RUN": "false",
    "SNAPSHOT_API_RATE": "8.5",
    "SNAPSHOT_API_BURST": "150",
    "SNAPSHOT_BUSY_RETRY_SECONDS": "240",
    "SNAPSHOT_SCHEDULE_MINUTES": "10",
    "POWERTOOLS_SERVICE_NAME": "snapshot-scheduler",
    "POWERTOOLS_METRICS_NAMESPACE": "SnapshotScheduler",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "SNAPSHOT_DR_TARGETS": "{}",
    "SNAPSHOT_DR_POLICIES": "{}",
    "SNAPSHOT_DR_TAG_KEY": "snapshot-dr",
    "SNAPSHOT_DR_COPY_LIMIT": "5",
    "SNAPSHOT_DR_STUCK_HOURS": "24",
}


REQUIRED = [name for name in ENV_VARS if name not in OPTIONAL_ENV_VARS]


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
    assert settings.policy_change_grace == timedelta(hours=48)
    assert settings.engines == frozenset({"aurora-mysql", "aurora-postgresql", "mysql", "postgres"})
    assert settings.dry_run is False
    assert settings.api_rate == 8.5
    assert settings.api_burst == 150
    assert settings.busy_retry == timedelta(minutes=4)
    assert settings.run_interval == timedelta(minutes=10)
    assert settings.service_name == "snapshot-scheduler"
    assert settings.metrics_namespace == "SnapshotScheduler"
    assert settings.log_level == "INFO"


def test_the_schedule_may_be_unknown_to_the_cli() -> None:
    assert Settings.from_env(env(SNAPSHOT_SCHEDULE_MINUTES=None)).run_interval is None


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


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_variable_is_a_startup_error_naming_it(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env(**{name: None}))

    assert name in str(caught.value)
    assert "missing" in str(caught.value)


@pytest.mark.parametrize("name", REQUIRED)
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
    ("SNAPSHOT_GRACE_MINUTES", "abc", "whole number"),
    ("SNAPSHOT_GRACE_MINUTES", "-1", "from 0"),
    ("SNAPSHOT_GRACE_MINUTES", "1.5", "whole number"),
    ("SNAPSHOT_GRACE_MINUTES", "99999999", "10080"),
    ("SNAPSHOT_GRACE_MINUTES", "6_0", "whole number"),  # int() would take Python's digit grouping
    ("SNAPSHOT_GRACE_MINUTES", "1e3", "whole number"),
    ("SNAPSHOT_POLICY_CHANGE_GRACE_HOURS", "-1", "from 0 to 720"),
    ("SNAPSHOT_POLICY_CHANGE_GRACE_HOURS", "721", "from 0 to 720"),
    ("SNAPSHOT_POLICY_CHANGE_GRACE_HOURS", "1.5", "whole number"),
    ("SNAPSHOT_POLICY_CHANGE_GRACE_HOURS", "24h", "whole number"),
    ("SNAPSHOT_ENGINES", ",", "engine names"),
    ("SNAPSHOT_ENGINES", "Aurora MySQL", "engine names"),
    ("SNAPSHOT_ENGINES", "aurora-mysql;postgres", "engine names"),
    ("SNAPSHOT_DRY_RUN", "yes", "true, false"),
    ("SNAPSHOT_DRY_RUN", "1", "true, false"),
    ("SNAPSHOT_API_RATE", "0", "from 0.1"),
    ("SNAPSHOT_API_RATE", "fast", "a number from"),
    ("SNAPSHOT_API_RATE", "nan", "a number from"),
    ("SNAPSHOT_API_RATE", "inf", "1000"),
    ("SNAPSHOT_API_RATE", "-5", "from 0.1"),
    ("SNAPSHOT_API_RATE", "1_0", "a number from"),
    ("SNAPSHOT_API_RATE", "1e2", "a number from"),
    ("SNAPSHOT_API_BURST", "0", "from 1"),
    ("SNAPSHOT_API_BURST", "2.5", "whole number"),
    ("SNAPSHOT_API_BURST", "lots", "whole number"),
    ("SNAPSHOT_BUSY_RETRY_SECONDS", "-1", "whole number"),
    ("SNAPSHOT_BUSY_RETRY_SECONDS", "900", "from 0 to 870"),
    ("SNAPSHOT_SCHEDULE_MINUTES", "4", "from 5 to 720"),
    ("SNAPSHOT_SCHEDULE_MINUTES", "1.5", "whole number"),
    ("SNAPSHOT_BUSY_RETRY_SECONDS", "600", "SNAPSHOT_SCHEDULE_MINUTES=10: expected fewer seconds than the gap"),
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


# --- a bad named policy fails the clusters that use it, not the start-up -----------------------------------
# (the synth refuses it: infra/config.py checks namedPolicies with settings_rules.named_policies)


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
def test_bad_named_policy_is_a_policy_error_for_its_clusters_not_a_startup_error(
    policies: dict[str, str], fragments: list[str]
) -> None:
    settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps(policies)))
    (bad,) = [name for name in policies if name != "gold"] or ["gold"]

    with pytest.raises(PolicyError) as caught:
        parse_policy(bad, settings.named_policies, at=settings.default_at, tz=settings.default_tz)

    for fragment in fragments:
        assert fragment in str(caught.value)
    with pytest.raises(rules.RuleError, match=re.escape(bad)):
        rules.named_policies(settings.named_policies, at=settings.default_at, tz=settings.default_tz)


def test_a_named_policy_is_usable_by_a_cluster_exactly_when_the_rule_accepts_it() -> None:
    settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({"gold": "silver", "silver": "keep-daily=3"})))

    with pytest.raises(PolicyError, match="unknown policy name 'silver'"):
        parse_policy("gold", settings.named_policies, at=settings.default_at, tz=settings.default_tz)
    with pytest.raises(rules.RuleError, match="'gold'"):
        rules.named_policies(settings.named_policies, at=settings.default_at, tz=settings.default_tz)


@pytest.mark.parametrize("name", ["gold tier", "every=1d", "gold,silver", "", "off", "7day"])
def test_named_policy_that_no_tag_could_name_is_refused_by_the_rule(name: str) -> None:
    with pytest.raises(rules.RuleError) as caught:
        rules.named_policies({name: "keep-daily=7"}, at="03:00", tz="UTC")

    assert repr(name) in str(caught.value)


def test_named_policies_differing_only_in_case_fail_the_clusters_that_name_them() -> None:
    # tag values select names whatever their case, so a tag cannot say which of the two it means
    settings = Settings.from_env(
        env(SNAPSHOT_NAMED_POLICIES=json.dumps({"Gold": "keep-daily=7", "gold": "keep-daily=3"}))
    )

    with pytest.raises(PolicyError) as caught:
        parse_policy("GOLD", settings.named_policies)

    assert "'Gold' and 'gold'" in str(caught.value)
    assert parse_policy("gfs", settings.named_policies).retention.daily == 7  # others are unaffected


def test_named_policy_may_be_a_presets_name() -> None:
    settings = Settings.from_env(env(SNAPSHOT_NAMED_POLICIES=json.dumps({"standard": "gfs"})))

    policy = parse_policy("standard", settings.named_policies)
    assert policy.retention == parse_policy("gfs").retention


# ------------------------------------------------------------------------------------------ DR targets


def test_the_stacks_dr_defaults_mean_no_dr_target() -> None:
    settings = Settings.from_env({**VALID, **DR_DEFAULTS})

    assert dict(settings.dr_targets) == {}
    assert (settings.dr_tag_key, settings.dr_copy_limit, settings.dr_stuck) == ("snapshot-dr", 5, timedelta(hours=24))


def test_dr_targets_are_read_with_their_region_and_key() -> None:
    targets = {"dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"}, "dr-eu": {"region": "eu-west-1"}}

    settings = Settings.from_env({**VALID, "SNAPSHOT_DR_TARGETS": json.dumps(targets), "SNAPSHOT_DR_COPY_LIMIT": "3"})

    west, eu = settings.dr_targets["dr-west"], settings.dr_targets["dr-eu"]
    assert (west.region, west.kms_key, eu.region, eu.kms_key) == ("us-west-2", "alias/snapshot-dr", "eu-west-1", None)
    assert settings.dr_copy_limit == 3
    assert not west.retired and not eu.retired


def test_a_retired_dr_target_is_read_as_retired() -> None:
    targets = {"dr-west": {"region": "us-west-2", "retired": True}, "dr-eu": {"region": "eu-west-1", "retired": False}}

    settings = Settings.from_env({**VALID, "SNAPSHOT_DR_TARGETS": json.dumps(targets)})

    assert (settings.dr_targets["dr-west"].retired, settings.dr_targets["dr-eu"].retired) == (True, False)
    assert {name: t.spec() for name, t in settings.dr_targets.items()} == {
        "dr-west": {"region": "us-west-2", "retired": True},
        "dr-eu": {"region": "eu-west-1"},
    }


def test_an_account_target_is_shared_with_for_share_hours_and_may_share_a_region_with_a_region_target() -> None:
    targets = {
        "vault": {"account": "222222222222", "region": "us-west-2", "shareHours": 24},
        "vault-eu": {"account": "333333333333", "region": "eu-west-1"},
        "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
    }

    settings = Settings.from_env({**VALID, "SNAPSHOT_DR_TARGETS": json.dumps(targets)})

    vault, eu, west = (settings.dr_targets[name] for name in ("vault", "vault-eu", "dr-west"))
    assert (vault.account, vault.region, vault.share_for, vault.kms_key) == (
        "222222222222",
        "us-west-2",
        timedelta(hours=24),
        None,
    )
    assert (eu.account, eu.share_for) == ("333333333333", timedelta(hours=72))  # the default
    assert vault.shares and eu.shares and not west.shares


@pytest.mark.parametrize(
    ("targets", "says"),
    [
        ('{"dr-west": {"region": "mars-1"}}', "region 'mars-1' is not a region name"),
        ('{"dr-west": {"region": "us-west-2\\n"}}', "is not a region name"),  # `$` matches before a final newline
        ('{"dr-west": {"region": "us-west-2", "kmsKey": "alias/k\\n"}}', "is not a KMS key"),
        ('{"a": {"region": "us-west-2"}, "b": {"region": "us-west-2"}}', "one target per region"),
        (
            '{"dr-west": {"region": "us-west-2", "kmsKey": "arn:aws:kms:eu-west-1:123456789012:key/x"}}',
            "not a KMS key of us-west-2",
        ),
        ('{"dr-west": {"region": "us-west-2", "vault": "222222222222"}}', "unknown key 'vault'"),
        ('{"v": {"region": "us-west-2", "account": "22222222222"}}', "account '22222222222' is not an AWS account id"),
        ('{"v": {"region": "us-west-2", "account": "all"}}', "account 'all' is not an AWS account id"),
        ('{"v": {"region": "us-west-2", "account": "222222222222\\n"}}', "is not an AWS account id"),
        ('{"v": {"region": "us-west-2", "account": 222222222222}}', "account 222222222222 is not text"),
        ('{"v": {"region": "us-west-2", "account": "222222222222", "kmsKey": "alias/k"}}', "kmsKey is not used"),
        ('{"v": {"region": "us-west-2", "account": "222222222222", "shareHours": 0}}', "shareHours 0"),
        ('{"v": {"region": "us-west-2", "account": "222222222222", "shareHours": 721}}', "from 1 to 720"),
        ('{"v": {"region": "us-west-2", "account": "222222222222", "shareHours": "72"}}', "shareHours '72'"),
        ('{"v": {"region": "us-west-2", "account": "222222222222", "shareHours": true}}', "shareHours True"),
        ('{"dr": {"region": "us-west-2", "shareHours": 72}}', "shareHours is for a target that names an account"),
        (
            '{"a": {"region": "us-west-2", "account": "222222222222"}, '
            '"b": {"region": "eu-west-1", "account": "222222222222"}}',
            "one target per account",
        ),
        ('{"1bad": {"region": "us-west-2"}}', "target name '1bad'"),
        ('{"dr-west": {"region": "us-west-2", "retired": "true"}}', "retired 'true' is not true or false"),
        ('{"dr-west": {"region": "us-west-2", "retired": 1}}', "retired 1 is not true or false"),
        ('{"dr-west": {"region": "us-west-2", "kmsKey": null}}', "kmsKey None is not text"),
        ('{"dr-west": {"region": ["us-west-2"]}}', "region ['us-west-2'] is not text"),
        ('["us-west-2"]', "expected an object"),
        ("{", "JSON"),
    ],
)
def test_bad_dr_targets_are_a_config_error_naming_the_variable_and_the_value(targets: str, says: str) -> None:
    with pytest.raises(ConfigError, match="SNAPSHOT_DR_TARGETS") as raised:
        Settings.from_env({**VALID, "SNAPSHOT_DR_TARGETS": targets})

    assert says in str(raised.value)


# ---------------------------------------------------------------------------------------- named DR policies

DR_TARGETS = {
    "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
    "dr-old": {"region": "eu-west-1", "retired": True},
    "vault": {"account": "222222222222", "region": "eu-central-1"},
}


def dr_env(policies: object) -> dict[str, str]:
    text = policies if isinstance(policies, str) else json.dumps(policies)
    return {**VALID, "SNAPSHOT_DR_TARGETS": json.dumps(DR_TARGETS), "SNAPSHOT_DR_POLICIES": text}


def test_named_dr_policies_are_read_as_given_and_a_dr_tag_selects_one_whatever_its_case() -> None:
    policies = {
        "dr-standard": "to=dr-west every=1d keep-daily=7 keep-weekly=4",
        "Vaulted": "to=vault every=1d",  # shared with an account: the vault keeps by its own policy
        "migrating": "to=dr-west+dr-old keep-last=3",  # a retired target: allowed, each run says so
    }

    settings = Settings.from_env(dr_env(policies))

    assert dict(settings.dr_policies) == policies
    dr = DrContext("snapshot-dr", "prod", "us-east-1", settings.dr_targets, named=settings.dr_policies)
    standard = dr.parse("DR-STANDARD")
    assert standard.name == "DR-STANDARD"
    assert standard.spec() == "to=dr-west every=1d at=03:00 tz=UTC keep-daily=7 keep-weekly=4"
    assert dr.parse("vaulted").targets == ("vault",)


def test_named_dr_policies_take_the_deployments_default_time_and_zone() -> None:
    settings = Settings.from_env(dr_env({"dr-standard": "to=dr-west keep-daily=7"}))
    dr = DrContext(
        "snapshot-dr",
        "prod",
        "us-east-1",
        settings.dr_targets,
        named=settings.dr_policies,
        default_at=settings.default_at,
        default_tz=settings.default_tz,
    )

    assert dr.parse("dr-standard").spec() == "to=dr-west every=1d at=02:30 tz=Europe/Berlin keep-daily=7"


@pytest.mark.parametrize(
    ("policies", "says"),
    [
        ({"dr gold": "to=dr-west keep-daily=7"}, "DR policy name 'dr gold' cannot be selected by a tag"),
        ({"off": "to=dr-west keep-daily=7"}, "DR policy name 'off' cannot be selected"),
        ({"every=1d": "to=dr-west keep-daily=7"}, "DR policy name 'every=1d' cannot be selected"),
        ({"7day": "to=dr-west keep-daily=7"}, "DR policy name '7day' cannot be selected"),
        ({"gold": "to=dr-west keep-daily=7", "GOLD": "to=dr-west keep-daily=1"}, "differ only in letter case"),
        ({"gold": "keep-daily=7"}, "DR policy 'gold' ('keep-daily=7') is invalid: DR policy 'keep-daily=7' names no"),
        ({"gold": "to=dr-west"}, "keeps nothing"),
        (
            {"gold": "to=dr-east keep-daily=7"},
            "target 'dr-east' is not configured; configured targets: dr-old, dr-west",
        ),
        ({"gold": "to=vault keep-daily=7"}, "only targets that are accounts"),
        ({"gold": "silver", "silver": "to=dr-west keep-daily=7"}, "DR policy 'gold' ('silver') is invalid"),
        ({"gold": "to=dr-west tz=Mars/Base keep-daily=7"}, "Mars/Base"),
        ({"gold": 7}, "an object of DR policy name to DR tag words"),
        (["gold"], "an object of DR policy name to DR tag words"),
        ("{", "JSON"),
    ],
)
def test_a_bad_named_dr_policy_is_a_config_error_naming_the_variable_the_value_and_what_is_allowed(
    policies: object, says: str
) -> None:
    with pytest.raises(ConfigError, match="SNAPSHOT_DR_POLICIES") as raised:
        Settings.from_env(dr_env(policies))

    assert says in str(raised.value)
    shown = policies if isinstance(policies, str) else json.dumps(policies)
    assert repr(shown) in str(raised.value)


def test_the_dr_policies_rule_is_the_one_the_synth_applies() -> None:
    targets = rules.dr_targets(DR_TARGETS)

    assert rules.dr_policies({}, targets={}, at="03:00", tz="UTC") == {}
    assert rules.dr_policies({"a": "to=DR-WEST keep-last=1"}, targets=targets, at="03:00", tz="UTC") == {
        "a": "to=DR-WEST keep-last=1"
    }
    with pytest.raises(rules.RuleError, match="'dr-west' is not configured; configured targets: none"):
        rules.dr_policies({"a": "to=dr-west keep-last=1"}, targets={}, at="03:00", tz="UTC")


@pytest.mark.parametrize("limit", ["0", "6", "five"])
def test_the_copy_limit_is_one_to_five(limit: str) -> None:
    with pytest.raises(ConfigError, match="SNAPSHOT_DR_COPY_LIMIT"):
        Settings.from_env({**VALID, "SNAPSHOT_DR_COPY_LIMIT": limit})


# ------------------------------------------------------------------------------------------------- vault

VAULT = {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "keep-daily=14"}


def test_a_deployment_without_snapshot_vault_is_no_vault() -> None:
    assert Settings.from_env(VALID).vault is None
    assert Settings.from_env({**VALID, "SNAPSHOT_VAULT": " "}).vault is None


def test_snapshot_vault_makes_a_vault_whose_policy_takes_the_deployments_defaults() -> None:
    settings = Settings.from_env({**VALID, "SNAPSHOT_VAULT": json.dumps({**VAULT, "minRetentionDays": 7})})

    assert settings.vault is not None
    assert settings.vault.policy.spec() == "every=1d at=02:30 tz=Europe/Berlin keep-daily=14"
    assert settings.vault.min_retention == timedelta(days=7)
    assert settings.vault.sources[0].regions == ("eu-west-1",)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("{", "JSON"),
        (json.dumps({**VAULT, "minRetentionDays": 4000}), "minRetentionDays 4000: expected a whole number from 0"),
        (json.dumps({**VAULT, "sources": [{"account": "1111", "regions": ["eu-west-1"]}]}), "account '1111'"),
        (json.dumps({**VAULT, "policy": "keep-daily=x"}), "keep-daily=x is not a count"),
    ],
)
def test_a_bad_snapshot_vault_is_a_config_error_naming_the_variable_and_the_value(value: str, says: str) -> None:
    with pytest.raises(ConfigError, match="SNAPSHOT_VAULT") as raised:
        Settings.from_env({**VALID, "SNAPSHOT_VAULT": value})

    assert says in str(raised.value)
    assert value in str(raised.value)


def test_a_vault_with_dr_targets_is_refused() -> None:
    targets = json.dumps({"dr-west": {"region": "us-west-2"}})

    with pytest.raises(ConfigError, match="SNAPSHOT_VAULT and SNAPSHOT_DR_TARGETS are both set"):
        Settings.from_env({**VALID, "SNAPSHOT_VAULT": json.dumps(VAULT), "SNAPSHOT_DR_TARGETS": targets})


@pytest.mark.parametrize(("name", "value"), [("SNAPSHOT_API_RATE", "10\n"), ("SNAPSHOT_API_BURST", "200\n")])
def test_a_number_with_a_trailing_newline_is_a_startup_error(name: str, value: str) -> None:
    # `$` matches before a final newline: every pattern ends at \Z, the end of the text.
    with pytest.raises(ConfigError, match=name):
        Settings.from_env(env(**{name: value}))
