"""The stack and the Lambda code agree: environment, IAM actions, tag keys, metric names, handler path.

infra/ imports only the pure modules of lambda_src/; these tests import both and compare what crosses by value.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from snapshot_scheduler import config as lambda_config
from snapshot_scheduler import observability, tags
from snapshot_scheduler.adapters import rds

from infra import contract
from tests.infra.synthesis import Synthesized, synth

# What every Lambda function with active tracing, a log group and an SQS failure destination needs.
BASICS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "sqs:SendMessage",
}

CUSTOM = {
    "policyTagKey": "backup-policy",
    "deployment": "prod-eu",
    "namedPolicies": {"gold": "daily"},
    "defaultAt": "01:30",
    "defaultTimezone": "Europe/Berlin",
    "graceMinutes": 15,
    "policyChangeGraceHours": 720,
    "engines": ["aurora-postgresql"],
    "dryRun": True,
    "apiRate": 2.5,
    "apiBurst": 20,
    "busyRetrySeconds": 120,
    "metricNamespace": "Backups/Prod",
    "logLevel": "DEBUG",
}


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(CUSTOM, outdir=tmp_path_factory.mktemp("contract"))


def environment(synthesized: Synthesized) -> dict[str, str]:
    variables: dict[str, str] = synthesized.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    return variables


def test_function_environment_is_exactly_what_the_configuration_loader_requires(default_synth: Synthesized) -> None:
    assert set(environment(default_synth)) == set(lambda_config.ENV_VARS)


@pytest.mark.parametrize("which", ["default", "custom"])
def test_the_lambda_accepts_the_environment_the_stack_sets(
    which: str, default_synth: Synthesized, custom: Synthesized
) -> None:
    synthesized = default_synth if which == "default" else custom
    env = environment(synthesized)
    assert all(isinstance(value, str) for value in env.values()), "no CloudFormation tokens in the environment"
    settings = lambda_config.Settings.from_env(env)
    assert settings.deployment == synthesized.stack.deployment


def test_context_values_arrive_in_the_lambdas_settings(custom: Synthesized) -> None:
    settings = lambda_config.Settings.from_env(environment(custom))
    assert settings.policy_tag_key == "backup-policy"
    assert settings.deployment == "prod-eu"
    assert dict(settings.named_policies) == {"gold": "daily"}
    assert (settings.default_at, settings.default_tz) == ("01:30", "Europe/Berlin")
    assert settings.grace.total_seconds() == 15 * 60
    assert settings.engines == frozenset({"aurora-postgresql"})
    assert settings.dry_run is True
    assert (settings.api_rate, settings.api_burst) == (2.5, 20)
    assert settings.busy_retry.total_seconds() == 120
    assert settings.policy_change_grace.total_seconds() == 720 * 3600  # the longest infra allows
    assert settings.metrics_namespace == "Backups/Prod"
    assert settings.service_name == contract.SERVICE_NAME
    assert settings.log_level == "DEBUG"


def test_environment_variable_names_match_the_loaders() -> None:
    names = {value for key, value in vars(contract).items() if key.startswith("ENV_")}
    assert names == {*lambda_config.ENV_VARS, lambda_config.VAULT}  # SNAPSHOT_VAULT: on a vault only


def allowed_actions(synthesized: Synthesized) -> set[str]:
    (role_id,) = [i for i in synthesized.resources("AWS::IAM::Role") if i.startswith("BackupRole")]
    role = synthesized.template_json()["Resources"][role_id]["Properties"]
    assert "ManagedPolicyArns" not in role and "Policies" not in role
    policies = [
        p for p in synthesized.resources("AWS::IAM::Policy").values() if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    found: set[str] = set()
    for policy in policies:
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Allow":
                action: Any = statement["Action"]
                found.update([action] if isinstance(action, str) else action)
    return found


def test_the_role_grants_exactly_the_adapters_rds_actions_and_the_lambda_basics(default_synth: Synthesized) -> None:
    actions = allowed_actions(default_synth)
    assert {a for a in actions if a.startswith("rds:")} == set(rds.IAM_ACTIONS)
    assert {a for a in actions if not a.startswith("rds:")} == BASICS


def test_rds_actions_named_in_infra_are_the_adapters() -> None:
    named = {
        *contract.RDS_DESCRIBE_ACTIONS,
        contract.RDS_CREATE_SNAPSHOT,
        contract.RDS_ADD_TAGS,
        contract.RDS_DELETE_SNAPSHOT,
    }
    assert named == set(rds.IAM_ACTIONS)


def test_tag_keys_in_iam_conditions_are_the_ones_the_code_writes_and_reads() -> None:
    assert contract.MARKER_TAG == tags.MARKER
    assert contract.DR_MARKER_TAG == tags.DR_MARKER
    assert contract.VAULT_MARKER_TAG == tags.VAULT_MARKER
    assert contract.HOLD_TAG == tags.HOLD
    assert set(contract.HOLD_RELEASED_VALUES) == tags.NOT_HELD


def test_metric_names_and_dimensions_are_the_ones_the_code_emits() -> None:
    emitted = {metric.value for metric in observability.Metric}
    named = {
        value for key, value in vars(contract).items() if isinstance(value, str) and key.isupper() and value in emitted
    }
    referenced = {
        contract.SNAPSHOTS_CREATED,
        contract.SNAPSHOTS_DELETED,
        contract.SNAPSHOTS_DEFERRED,
        contract.SNAPSHOTS_FAILED,
        contract.POLICY_ERRORS,
        contract.CLUSTERS_MANAGED,
        contract.CLUSTERS_OUT_OF_POLICY,
        contract.SLOTS_MISSED,
        contract.CLUSTERS_NEWLY_OUT_OF_POLICY,
        contract.OLDEST_RECOVERY_POINT_AGE,
        contract.QUOTA_USED,
        contract.QUOTA_MAX,
        contract.QUOTA_UTILIZATION,
        contract.RUN_DURATION,
        contract.HEARTBEAT,
        contract.DELETIONS_PENDING,
        contract.MASS_DELETIONS,
        contract.DR_COPIES_STARTED,
        contract.DR_COPIES_FAILED,
        contract.DR_COPIES_STUCK,
        contract.DR_COPIES_DEFERRED,
        contract.DR_TARGETS_OUT_OF_POLICY,
        contract.DR_OLDEST_RECOVERY_POINT_AGE,
        contract.DR_QUOTA_UTILIZATION,
        *contract.VAULT_METRICS,
    }
    assert referenced <= emitted
    assert named == referenced
    assert (contract.DIMENSION_SERVICE, contract.DIMENSION_DEPLOYMENT, contract.DIMENSION_SOURCE) == (
        observability.SERVICE_DIMENSION,
        observability.DEPLOYMENT_DIMENSION,
        observability.SOURCE_DIMENSION,
    )
    assert set(contract.VAULT_METRICS) == set(observability.VAULT_METRICS)


def test_handler_path_names_the_lambda_handler(default_synth: Synthesized) -> None:
    handler = default_synth.only("AWS::Lambda::Function")["Properties"]["Handler"]
    module, _, function = handler.rpartition(".")
    assert callable(getattr(importlib.import_module(module), function))
