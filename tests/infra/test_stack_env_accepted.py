"""Every environment the synth produces is one the function accepts (issue 8 item 5).

Generated context values (the edge cases found in review, odd Unicode, spaces, letter case, JSON text as
`-c` gives it) go through Settings.from_context and the function environment the stack renders from it.
Each configuration is either refused with a message naming the key, the value and what is allowed, or
Settings.from_env() accepts its environment and every named policy in it parses for a cluster. A few are
synthesized for real, through app.py, to show the template carries exactly that environment.
"""

from __future__ import annotations

import contextlib
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from snapshot_scheduler import config as lambda_config
from snapshot_scheduler.dr import DrContext
from snapshot_scheduler.errors import ConfigError as FunctionConfigError
from snapshot_scheduler.policy import parse_policy

from infra import config, contract
from infra.backup_function import function_environment
from infra.config import ConfigError, Settings
from tests.infra.synthesis import cdk_json_context, run_app, synth

SEED = 20261128
CONFIGURATIONS = 600
STACK_NAME = "SnapshotScheduler"

# Each context key the function reads (through the variable it becomes), with values to try.
ENV_OF = {
    config.POLICY_TAG_KEY: contract.ENV_POLICY_TAG_KEY,
    config.DEPLOYMENT: contract.ENV_DEPLOYMENT,
    config.NAMED_POLICIES: contract.ENV_NAMED_POLICIES,
    config.DEFAULT_AT: contract.ENV_DEFAULT_AT,
    config.DEFAULT_TIMEZONE: contract.ENV_DEFAULT_TZ,
    config.GRACE_MINUTES: contract.ENV_GRACE_MINUTES,
    config.POLICY_CHANGE_GRACE_HOURS: contract.ENV_POLICY_CHANGE_GRACE_HOURS,
    config.ENGINES: contract.ENV_ENGINES,
    config.DRY_RUN: contract.ENV_DRY_RUN,
    config.API_RATE: contract.ENV_API_RATE,
    config.API_BURST: contract.ENV_API_BURST,
    config.BUSY_RETRY_SECONDS: contract.ENV_BUSY_RETRY_SECONDS,
    config.SCHEDULE: contract.ENV_SCHEDULE_MINUTES,
    config.METRIC_NAMESPACE: contract.ENV_METRICS_NAMESPACE,
    config.LOG_LEVEL: contract.ENV_LOG_LEVEL,
    config.DR_TARGETS: contract.ENV_DR_TARGETS,
    config.DR_POLICIES: contract.ENV_DR_POLICIES,
    config.DR_TAG_KEY: contract.ENV_DR_TAG_KEY,
    config.DR_COPY_LIMIT: contract.ENV_DR_COPY_LIMIT,
    config.DR_STUCK_HOURS: contract.ENV_DR_STUCK_HOURS,
    config.VAULT: contract.ENV_VAULT,
}
ZONES = [
    "UTC", "utc", "Europe/Berlin", "europe/berlin", "GMT", "Japan", "Etc/GMT+5", "America/Indiana",
    "America/Indiana/Knox", "America/Argentina", "America/Argentina/", "posix/Europe/Berlin", "Europe/Berlin/",
    "../etc/passwd", " Europe/Berlin", "Europe/Berlin ", "Asia/Kolkata", "Europe/Ber\u0301lin", "",
]  # fmt: skip
TAG_TEXTS = [
    "snapshot-policy", " snapshot-policy", "snapshot-policy ", "Snapshot-Policy", "backup:policy", "aws:policy",
    "RDS:x", "tier\u00a0one", "tier\tone", "a\nb", "politique-sauvegarde", "\u30d0\u30c3\u30af", "x" * 128,
    "x" * 129, "d" * 256, "d" * 257, "emoji\U0001f600", "combining\u0301", "rtl\u202e", "prod-eu", "prod/eu=1+2@3",
    "", " ", "zero\u200bwidth",
]  # fmt: skip
POLICY_TEXTS = [
    "daily", "gfs", "hourly 24 daily 7", "every=4h keep-hourly=24", "EVERY=1D KEEP-DAILY=7", "keep-daily=7,",
    "tz=America/Indiana keep-daily=7", "tz=GMT keep-daily=7", "tz=europe/berlin keep-last=3",
    "at=\u0660\u0663:00 keep-last=1",
    "every=1w on=mon keep-weekly=4", "every=1d on=mon keep-daily=7", "", "keep-last=all", "silver", "off",
    "every=1h keep-within=0d", "keep-daily=1\u0663",
]  # fmt: skip
POLICY_NAMES = [
    "gold",
    "Gold",
    "GOLD",
    "silver",
    "gold tier",
    "off",
    "7day",
    "t1.x_y-z",
    "every=1d",
    "\u00e9t\u00e9",
    "",
]
# Named DR policies: mostly usable ones (to reach the function), with the refusals found in review.
DR_POLICY_TEXTS = [
    "to=dr-west keep-daily=7", "to=dr-west every=1d keep-daily=7 keep-weekly=4", "TO=DR-WEST KEEP-DAILY=3",
    "to=dr-west tz=Europe/Berlin at=01:30 keep-last=2", "to=vault every=1d", "to=dr-west+vault keep-last=2",
    "to=dr-west every=1w on=sun keep-weekly=4",
]  # fmt: skip
BAD_DR_POLICY_TEXTS = [
    "to=dr-west", "keep-daily=7", "to=dr-nowhere keep-daily=7", "to=dr-west tz=America/Indiana keep-daily=7",
    "to=dr-west+DR-WEST keep-last=1", "to=vault keep-daily=7", "dr-standard", "daily", "", "off",
    "to=dr-west every=1d on=mon keep-daily=7", "to=dr-west keep-daily=1\u0663",
]  # fmt: skip
DR_POLICY_NAMES = ["dr-standard", "DR-Standard", "dr-gold", "t1.x_y-z"]
BAD_DR_POLICY_NAMES = ["7day", "dr gold", "off", "OFF", "every=1d", "\u00e9t\u00e9", ""]
# The targets generated DR policies name: a region of this account and an account (shared with).
DR_POLICY_TARGETS = {"dr-west": {"region": "us-west-2"}, "vault": {"account": "222222222222", "region": "eu-west-1"}}
CASES: dict[str, list[Any]] = {
    config.POLICY_TAG_KEY: TAG_TEXTS,
    config.DEPLOYMENT: [*TAG_TEXTS, None],
    config.NAMED_POLICIES: [{}, "{}", '{"gold": "daily"}', ["gold"], {"gold": 7}, "not json"],  # and generated below
    config.DEFAULT_AT: [
        "03:00",
        " 03:00",
        "3:00",
        "23:59",
        "24:00",
        "\u0660\u0663:\u0660\u0660",
        "\uff10\uff13:00",
        "",
        300,
    ],
    config.DEFAULT_TIMEZONE: ZONES,
    config.GRACE_MINUTES: [0, 60, 10080, 10081, -1, "60", "6_0", "1e3", 1.5, True, "\u0666\u0660", None],
    config.POLICY_CHANGE_GRACE_HOURS: [0, 24, 720, 721, -1, "48", "2_4", "1e1", 24.0, 1.5, False, "\u0662\u0664", None],
    config.ENGINES: [["aurora-postgresql"], "aurora-mysql, postgres", "mysql,mysql", "Aurora", [], ",", ["mysql", 3]],
    config.DRY_RUN: [True, False, "true", "false", "True", "yes", 1, None],
    config.API_RATE: [0.1, 2.5, 1000, 1000.0001, 0.0999, "2.5", "nan", "inf", "1e2", 1e-7, 123.456789, True],
    config.API_BURST: [1, 10_000, 10_001, 0, "200", 2.0, "\u0662\u0660\u0660"],
    config.BUSY_RETRY_SECONDS: [0, 300, 869, 870, 3599, 3600, -1, "240", "2e2", 1.0, None],
    config.SCHEDULE: [
        "rate(1 hour)",
        "rate(2 hours)",
        "rate(12 hours)",
        "rate(13 hours)",
        "rate(5 minutes)",
        "rate(1 hours)",
        "cron(0 */2 * * ? *)",
        "cron(30 3 * * ? *)",
        "cron(0 9 ? * MON-FRI *)",
        "",
        None,
    ],
    config.METRIC_NAMESPACE: ["SnapshotScheduler", "Backups/Prod", " Spaced ", "AWS:Lambda", "x" * 255, "x" * 256, ""],
    config.LOG_LEVEL: ["INFO", "debug", " Warning ", "TRACE", "", "\u0130NFO"],
    config.DR_TARGETS: [
        {},
        "{}",
        {"dr-west": {"region": "us-west-2"}},
        '{"dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"}}',
        {"dr-eu": {"region": "eu-west-1", "kmsKey": "arn:aws:kms:eu-west-1:111111111111:key/abc"}},
        {"dr-eu": {"region": "eu-west-1", "kmsKey": "arn:aws:kms:us-west-2:111111111111:key/abc"}},
        {"a": {"region": "us-west-2"}, "B": {"region": "us-west-2"}},
        {"a": {"region": "us-west-2"}, "A": {"region": "eu-west-1"}},
        {"dr": {"region": " us-west-2"}},
        {"dr": {"region": "us-west-2", "account": "222222222222"}},
        {"dr w": {"region": "us-west-2"}},
        {"\u00e9t\u00e9": {"region": "us-west-2"}},
        ["us-west-2"],
        "not json",
    ],
    config.DR_POLICIES: [{}, "{}", '{"dr-standard": "to=dr-west keep-daily=7"}', ["dr-standard"], {"x": 7}, "not json"],
    config.DR_TAG_KEY: TAG_TEXTS,
    config.DR_COPY_LIMIT: [1, 5, 0, 6, "3", 2.0, True],
    config.DR_STUCK_HOURS: [1, 24, 720, 721, 0, "24", None],
    config.VAULT: [
        {},
        "{}",
        {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "gfs"},
        '{"sources": [{"account": "111111111111", "regions": ["eu-west-1", "us-east-1"]}], "policy": "gold"}',
        {
            "sources": [{"account": "111111111111", "regions": ["eu-west-1"], "deployment": "\u30d0"}],
            "policy": "daily",
            "kmsKey": "arn:aws:kms:eu-west-1:222222222222:key/abc",
            "minRetentionDays": 3650,
            "sharesExpectedHours": 1,
        },
        {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "every=1w keep-weekly=4"},
        {
            "sources": [{"account": "111111111111", "regions": ["eu-west-1"]}],
            "policy": "tz=America/Indiana keep-last=1",
        },
        {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "off"},
        {"sources": [{"account": "111111111111", "regions": [" eu-west-1"]}], "policy": "daily"},
        {"sources": [{"account": 111111111111, "regions": ["eu-west-1"]}], "policy": "daily"},
        {"sources": [], "policy": "daily"},
        {
            "sources": [{"account": "111111111111", "regions": ["eu-west-1"]}],
            "policy": "daily",
            "minRetentionDays": 1.5,
        },
        {"sources": [{"account": "111111111111", "regions": ["eu-west-1"]}], "policy": "daily", "kmsKey": "vault"},
        ["111111111111"],
        "not json",
        None,
    ],
}


def named_policies(rng: random.Random) -> dict[str, str]:
    return {rng.choice(POLICY_NAMES): rng.choice(POLICY_TEXTS) for _ in range(rng.randint(1, 3))}


def configurations() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    out = []
    for _ in range(CONFIGURATIONS):
        context: dict[str, Any] = {}
        for key in rng.sample(sorted(CASES), rng.randint(1, 4)):
            context[key] = rng.choice(CASES[key])
        if config.NAMED_POLICIES in context and rng.random() < 0.7:
            named = named_policies(rng)
            context[config.NAMED_POLICIES] = json.dumps(named) if rng.random() < 0.3 else named
        if config.DR_POLICIES in context and rng.random() < 0.7:
            named = {
                rng.choice(BAD_DR_POLICY_NAMES if rng.random() < 0.1 else DR_POLICY_NAMES): rng.choice(
                    BAD_DR_POLICY_TEXTS if rng.random() < 0.2 else DR_POLICY_TEXTS
                )
                for _ in range(rng.randint(1, 3))
            }
            context[config.DR_POLICIES] = json.dumps(named) if rng.random() < 0.3 else named
            if rng.random() < 0.8:
                context[config.DR_TARGETS] = DR_POLICY_TARGETS
        out.append(context)
    return out


def test_every_key_the_function_reads_has_generated_values() -> None:
    assert set(CASES) == set(ENV_OF)
    assert {*ENV_OF.values(), contract.ENV_SERVICE_NAME} == {*lambda_config.ENV_VARS, lambda_config.VAULT}


def forms(value: Any) -> list[Any]:
    """The ways an error may show a value: as given, stripped, or decoded from JSON text as `-c` gives it."""
    out = [value]
    if isinstance(value, str):
        out.append(value.strip())
        with contextlib.suppress(json.JSONDecodeError):
            out.append(json.loads(value))
    return out


def refused_or_accepted(context: dict[str, Any]) -> str:
    """'refused' (with a clear message) or 'accepted' (by the function too); fails the test otherwise."""
    try:
        settings = Settings.from_context(context)
    except ConfigError as error:
        message = str(error)
        named = [key for key in context if f"context key {key!r}" in message]
        assert named, f"the error names none of the keys given: {message}"
        assert any(repr(form) in message for form in forms(context[named[0]])), message
        assert ": expected " in message, message
        return "refused"
    env = function_environment(settings, settings.deployment or STACK_NAME)
    try:
        accepted = lambda_config.Settings.from_env(env)
    except FunctionConfigError as error:  # pragma: no cover - the defect this file guards against
        pytest.fail(f"the synth accepted {context!r} but the function refuses its environment: {error}")
    for name in accepted.named_policies:
        parse_policy(name, accepted.named_policies, at=accepted.default_at, tz=accepted.default_tz)
    # ... and the function runs with the values the synth checked: none rounded, stripped or re-read otherwise
    assert accepted.policy_tag_key == settings.policy_tag_key  # the key IAM conditions are written on
    assert accepted.deployment == (settings.deployment or STACK_NAME)  # the marker and the alarms' dimension
    assert accepted.metrics_namespace == settings.metric_namespace  # the namespace the alarms watch
    assert dict(accepted.named_policies) == dict(settings.named_policies)
    assert dict(accepted.dr_policies) == dict(settings.dr_policies)
    dr = DrContext(
        "snapshot-dr",
        accepted.deployment,
        "us-east-1",
        accepted.dr_targets,
        named=accepted.dr_policies,
        default_at=accepted.default_at,
        default_tz=accepted.default_tz,
    )
    for name in accepted.dr_policies:  # every named DR policy is one a DR tag can select and use
        dr.parse(name.upper())
    assert (accepted.default_at, accepted.default_tz) == (settings.default_at, settings.default_timezone)
    assert accepted.grace.total_seconds() == settings.grace_minutes * 60
    assert accepted.busy_retry.total_seconds() == settings.busy_retry_seconds
    assert (accepted.api_rate, accepted.api_burst) == (settings.api_rate, settings.api_burst)
    assert accepted.engines == frozenset(settings.engines)
    assert (accepted.dry_run, accepted.log_level) == (settings.dry_run, settings.log_level)
    assert accepted.run_interval == timedelta(minutes=settings.schedule.interval_minutes)  # missed slots' clock
    assert (accepted.vault is None) == (settings.vault is None)  # the role and alarms the stack built for it
    if accepted.vault is not None and settings.vault is not None:
        assert accepted.vault.policy.spec() == settings.vault.policy.spec()
        assert accepted.vault.source_keys == settings.vault.source_keys  # the alarms' `source` dimensions
        assert (accepted.vault.min_retention, accepted.vault.shares_expected) == (
            settings.vault.min_retention,
            settings.vault.shares_expected,
        )
    return "accepted"


def test_every_generated_configuration_is_refused_clearly_or_accepted_by_the_function() -> None:
    outcomes = [refused_or_accepted(context) for context in configurations()]
    # The generator reaches both sides, so the property is not vacuous.
    assert outcomes.count("accepted") > 50 and outcomes.count("refused") > 50


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_value_alone_is_refused_clearly_or_accepted_by_the_function(key: str) -> None:
    for value in CASES[key]:
        refused_or_accepted({key: value})


EDGE_ACCEPTED = {
    config.POLICY_TAG_KEY: "tier\u00a0one",
    config.DEPLOYMENT: "\u30d0\u30c3\u30af/prod",
    config.NAMED_POLICIES: {"GOLD": "EVERY=4H KEEP-HOURLY=6 tz=America/Indiana/Knox", "t1.x_y-z": "gfs"},
    config.DEFAULT_AT: " 23:59",
    config.DEFAULT_TIMEZONE: "utc",
    config.API_RATE: "123.456789",
    config.LOG_LEVEL: " debug ",
    config.METRIC_NAMESPACE: " Backups/Prod ",
}


def test_the_synthesized_template_carries_an_environment_the_function_accepts(tmp_path: Path) -> None:
    synthesized = synth(EDGE_ACCEPTED, outdir=tmp_path)
    variables = synthesized.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    settings = Settings.from_context({**cdk_json_context(), **EDGE_ACCEPTED})

    assert variables == function_environment(settings, synthesized.stack.deployment)
    accepted = lambda_config.Settings.from_env(variables)
    assert (accepted.policy_tag_key, accepted.deployment) == ("tier\u00a0one", "\u30d0\u30c3\u30af/prod")
    gold = parse_policy("gold", accepted.named_policies, at=accepted.default_at, tz=accepted.default_tz)
    assert (gold.every.value, gold.tz) == (4, "America/Indiana/Knox")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        (config.NAMED_POLICIES, '{"gold": "hourly 24 daily 7"}', "'hourly' is not a key=value word"),
        (config.DEFAULT_TIMEZONE, "Japan", "legacy alias"),
        (config.SCHEDULE_TIMEZONE, "America/Indiana", "America/Indiana is a group of 8 zones"),
        (config.DEFAULT_TIMEZONE, "America/Argentina", "America/Argentina is a group of"),
        (config.NAMED_POLICIES, '{"gold": "tz=America/Indiana keep-daily=7"}', "America/Indiana is a group of"),
        (config.POLICY_TAG_KEY, "snapshot-policy ", "without surrounding spaces"),
    ],
)
def test_cdk_synth_refuses_with_the_key_the_value_and_what_is_allowed(
    key: str,
    value: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_app(monkeypatch, tmp_path, **{key: value}) == 2
    error = capsys.readouterr().err
    assert f"context key {key!r}" in error and allowed in error
    assert any(repr(form) in error for form in forms(value))
    assert not list(tmp_path.glob("*.template.json"))
