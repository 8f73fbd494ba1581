"""DR targets in the stack: the context key validated by the engine's parser, the function's environment, and
the role's DR statements, checked by evaluating them as IAM would for the requests the function makes."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest
from snapshot_scheduler import config as engine_config
from snapshot_scheduler import observability, tags
from snapshot_scheduler.adapters import rds

from infra import contract
from infra.config import ConfigError, Settings
from tests.infra import iam_model, service_authorization
from tests.infra.service_authorization import PSEUDO
from tests.infra.synthesis import Synthesized, synth
from tests.infra.test_stack_iam import actions, function_statements

ACCOUNT = "111111111111"
TARGETS = {
    "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
    "dr-eu": {
        "region": "eu-west-1",
        "kmsKey": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    },
}

DR_POLICIES = {
    "dr-standard": "to=dr-west every=1d keep-daily=7 keep-weekly=4",
    "dr-both": "to=dr-west+DR-EU keep-last=3",
}


@pytest.fixture(scope="module")
def dr_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {"drTargets": TARGETS, "drPolicies": DR_POLICIES, "deployment": "prod"}
    return synth(context, outdir=tmp_path_factory.mktemp("dr"))


def resolved(value: Any, region: str = "us-east-1") -> str:
    """An ARN from the template with the pseudo parameters filled in (the stack deployed in us-east-1)."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    pseudo = {"AWS::Partition": "aws", "AWS::Region": region, "AWS::AccountId": ACCOUNT}
    return "".join(p if isinstance(p, str) else pseudo[p["Ref"]] for p in parts)


def allowed(statements: list[dict[str, Any]], action: str, arn: str, context: dict[str, Any]) -> bool:
    """IAM's verdict for one action on one ARN: an explicit Deny wins, then any matching Allow; conditions
    modelled for the operators the role uses (StringEquals, Bool, Null, StringNotEqualsIgnoreCase,
    ForAnyValue:StringEquals, ForAnyValue:StringEqualsIgnoreCase); a missing key fails a positive operator."""

    def holds(operator: str, key: str, expected: Any) -> bool:
        values = expected if isinstance(expected, list) else [expected]
        actual = context.get(key)
        if operator == "StringEquals":
            return actual is not None and actual in values
        if operator == "Bool":
            return actual is not None and str(actual).lower() == str(values[0]).lower()
        if operator == "Null":
            return (actual is None) == (str(values[0]) == "true")
        if operator == "StringNotEqualsIgnoreCase":
            return actual is None or all(actual.lower() != v.lower() for v in values)
        if operator in ("ForAnyValue:StringEquals", "ForAnyValue:StringEqualsIgnoreCase"):
            fold = operator.endswith("IgnoreCase")
            have = [a.lower() if fold else a for a in actual or []]
            return any((v.lower() if fold else v) in have for v in values)
        raise AssertionError(f"operator {operator} not modelled")

    def applies(statement: dict[str, Any]) -> bool:
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        return (
            action in actions(statement)
            and any(fnmatch.fnmatchcase(arn, resolved(r)) for r in resources)
            and all(
                holds(op, key, expected)
                for op, keys in statement.get("Condition", {}).items()
                for key, expected in keys.items()
            )
        )

    if any(applies(s) for s in statements if s["Effect"] == "Deny"):
        return False
    return any(applies(s) for s in statements if s["Effect"] == "Allow")


def snapshot_arn(region: str, name: str) -> str:
    return f"arn:aws:rds:{region}:{ACCOUNT}:cluster-snapshot:{name}"


def request_tags(tags_: dict[str, str]) -> dict[str, Any]:
    return {**{f"aws:RequestTag/{k}": v for k, v in tags_.items()}, "aws:TagKeys": list(tags_)}


def resource_tags(tags_: dict[str, str]) -> dict[str, Any]:
    return {f"rds:cluster-snapshot-tag/{k}": v for k, v in tags_.items()}


OUR_COPY_TAGS = {tags.DR_MARKER: "prod", tags.CLUSTER: "orders"}


def test_the_function_environment_carries_the_targets_and_every_engine_variable(dr_synth: Synthesized) -> None:
    (function,) = [f for i, f in dr_synth.resources("AWS::Lambda::Function").items() if i.startswith("BackupFunction")]
    env = function["Properties"]["Environment"]["Variables"]
    assert set(env) == set(engine_config.ENV_VARS)
    settings = engine_config.Settings.from_env(env)  # what synth accepts, the function accepts
    assert {t.name: (t.region, t.kms_key) for t in settings.dr_targets.values()} == {
        name: (spec["region"], spec["kmsKey"]) for name, spec in TARGETS.items()
    }


def test_the_function_environment_carries_the_named_dr_policies(dr_synth: Synthesized) -> None:
    (function,) = [f for i, f in dr_synth.resources("AWS::Lambda::Function").items() if i.startswith("BackupFunction")]
    env = function["Properties"]["Environment"]["Variables"]

    assert json.loads(env[contract.ENV_DR_POLICIES]) == DR_POLICIES
    assert dict(engine_config.Settings.from_env(env).dr_policies) == DR_POLICIES


@pytest.mark.parametrize(
    ("policies", "says"),
    [
        ({"dr-standard": "to=dr-nowhere keep-daily=7"}, "target 'dr-nowhere' is not configured"),
        ({"dr-standard": "to=dr-west"}, "keeps nothing"),
        ({"dr standard": "to=dr-west keep-daily=7"}, "DR policy name 'dr standard' cannot be selected by a tag"),
        ('{"a": "to=dr-west keep-last=1", "A": "to=dr-eu keep-last=1"}', "differ only in letter case"),
    ],
)
def test_a_bad_named_dr_policy_fails_synth_naming_the_key_the_value_and_what_is_allowed(
    policies: Any, says: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_context({"drTargets": TARGETS, "drPolicies": policies})

    message = str(raised.value)
    assert "context key 'drPolicies'" in message and says in message
    shown = json.loads(policies) if isinstance(policies, str) else policies
    assert repr(shown) in message and "expected an object of DR policy name to DR tag words" in message


@pytest.mark.parametrize(
    ("targets", "says"),
    [
        ({"dr-west": {"region": "west"}}, "not a region name"),
        ({"a": {"region": "us-west-2"}, "b": {"region": "us-west-2"}}, "one target per region"),
        ({"dr": {"region": "us-west-2", "kmsKey": "arn:aws:kms:eu-west-1:111111111111:key/x"}}, "not a KMS key of"),
    ],
)
def test_bad_targets_fail_synth_with_the_engines_message(targets: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match="drTargets") as raised:
        Settings.from_context({"drTargets": targets})
    assert says in str(raised.value)


def test_a_target_in_the_stacks_own_region_fails_synth() -> None:
    with pytest.raises(ConfigError, match="where the stack is deployed"):
        Settings.from_context(
            {
                "drTargets": {"dr": {"region": "us-east-1"}},
                "environments": [{"account": ACCOUNT, "region": "us-east-1"}],
            }
        )


def test_the_role_grants_the_copy_action_only_with_dr_targets(
    default_synth: Synthesized, dr_synth: Synthesized
) -> None:
    def rds_actions(synthesized: Synthesized) -> set[str]:
        return {
            a
            for s in function_statements(synthesized)
            if s["Effect"] == "Allow"
            for a in actions(s)
            if a.startswith("rds:")
        }

    assert rds_actions(default_synth) == set(rds.IAM_ACTIONS)
    assert rds_actions(dr_synth) == set(rds.IAM_ACTIONS) | set(rds.DR_IAM_ACTIONS)


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_a_copy_is_allowed_only_from_our_snapshots_into_copies_carrying_our_dr_marker(
    dr_synth: Synthesized, region: str
) -> None:
    statements = function_statements(dr_synth)
    ours = resource_tags({"snapshot-scheduler:deployment": "prod"})
    copy = snapshot_arn(region, "orders-20260310-0300-dr-useast1")
    source = snapshot_arn("us-east-1", "orders-20260310-0300")

    assert allowed(statements, "rds:CopyDBClusterSnapshot", copy, request_tags(OUR_COPY_TAGS))
    assert allowed(statements, "rds:AddTagsToResource", copy, request_tags(OUR_COPY_TAGS))
    assert allowed(statements, "rds:CopyDBClusterSnapshot", source, ours)
    # not without our DR marker, not with another deployment's, not from someone else's snapshot
    assert not allowed(statements, "rds:CopyDBClusterSnapshot", copy, request_tags({tags.CLUSTER: "orders"}))
    assert not allowed(statements, "rds:CopyDBClusterSnapshot", copy, request_tags({tags.DR_MARKER: "other"}))
    assert not allowed(statements, "rds:CopyDBClusterSnapshot", source, resource_tags({"x": "y"}))
    # not into a region that is no target
    assert not allowed(
        statements, "rds:CopyDBClusterSnapshot", snapshot_arn("ap-south-1", "x"), request_tags(OUR_COPY_TAGS)
    )
    # never a hold tag on a copy
    held = request_tags({**OUR_COPY_TAGS, "Snapshot-Hold": "true"})
    assert not allowed(statements, "rds:AddTagsToResource", copy, held)


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_in_a_dr_region_only_our_un_held_copies_may_be_deleted(dr_synth: Synthesized, region: str) -> None:
    statements = function_statements(dr_synth)
    copy = snapshot_arn(region, "orders-20260310-0300-dr-useast1")

    assert allowed(statements, "rds:DeleteDBClusterSnapshot", copy, resource_tags(OUR_COPY_TAGS))
    for held in ("snapshot-hold", "SNAPSHOT-HOLD"):
        assert not allowed(
            statements, "rds:DeleteDBClusterSnapshot", copy, resource_tags({**OUR_COPY_TAGS, held: "yes"})
        )
    # a destination deployment's own snapshot, even of the same deployment name, is not ours to delete there
    theirs = resource_tags({"snapshot-scheduler:deployment": "prod"})
    assert not allowed(statements, "rds:DeleteDBClusterSnapshot", copy, theirs)
    assert not allowed(statements, "rds:DeleteDBClusterSnapshot", copy, resource_tags({tags.DR_MARKER: "other"}))


def test_kms_only_on_the_configured_keys_and_grants_only_for_aws_resources(dr_synth: Synthesized) -> None:
    statements = function_statements(dr_synth)
    west_key = f"arn:aws:kms:us-west-2:{ACCOUNT}:key/aaaa"
    eu_key = TARGETS["dr-eu"]["kmsKey"]
    for_rds = {"kms:GrantIsForAWSResource": "true"}
    alias = {"kms:ResourceAliases": ["alias/snapshot-dr"]}

    assert allowed(statements, "kms:DescribeKey", west_key, alias)
    assert allowed(statements, "kms:CreateGrant", west_key, {**alias, **for_rds})
    assert allowed(statements, "kms:CreateGrant", eu_key, for_rds)
    assert not allowed(statements, "kms:CreateGrant", eu_key, {"kms:GrantIsForAWSResource": "false"})
    assert not allowed(statements, "kms:CreateGrant", west_key, {**for_rds, "kms:ResourceAliases": ["alias/other"]})
    assert not allowed(statements, "kms:DescribeKey", f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/other", {})
    assert not any(
        a.startswith("kms:") and a not in ("kms:DescribeKey", "kms:CreateGrant") for s in statements for a in actions(s)
    )


def test_without_targets_no_dr_statement_exists(default_synth: Synthesized) -> None:
    sids = {s.get("Sid", "") for s in function_statements(default_synth)}
    assert not any(sid.startswith("Dr") for sid in sids)
    assert not any(a.startswith("kms:") for s in function_statements(default_synth) for a in actions(s))
    assert json.dumps(function_statements(default_synth)).count("rds:CopyDBClusterSnapshot") == 0


def test_dr_alarms_and_dashboard_row_exist_only_with_targets(default_synth: Synthesized, dr_synth: Synthesized) -> None:
    def alarms(synthesized: Synthesized) -> dict[str, str]:
        return {
            a["Properties"]["AlarmName"].rsplit("-", 1)[-1]: a["Properties"]["MetricName"]
            for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
            if "MetricName" in a["Properties"]
        }

    dr = {k: v for k, v in alarms(dr_synth).items() if k.startswith("Dr")}
    assert dr == {
        "DrRecoveryPointBreached": "DrTargetsOutOfPolicy",
        "DrCopiesFailed": "DrCopiesFailed",
        "DrCopyStuck": "DrCopiesStuck",
        "DrManualSnapshotQuota": "DrQuotaUtilization",
    }
    assert not any(k.startswith("Dr") for k in alarms(default_synth))
    body = json.dumps(dr_synth.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    assert "DR copies per run" in body
    # every DR metric the stack names is watched by an alarm or a graph
    named = {v for k, v in vars(contract).items() if k.isupper() and v in set(observability.DR_METRICS)}
    assert named and all(f'\\"{name}\\"' in body or name in dr.values() for name in named)


def test_the_dr_quota_alarm_fires_at_the_own_quota_alarms_threshold(dr_synth: Synthesized) -> None:
    found = {
        a["Properties"]["AlarmName"].rsplit("-", 1)[-1]: a["Properties"]
        for a in dr_synth.resources("AWS::CloudWatch::Alarm").values()
    }
    own, dr = found["ManualSnapshotQuota"], found["DrManualSnapshotQuota"]

    assert (dr["MetricName"], dr["Statistic"], dr["Dimensions"]) == ("DrQuotaUtilization", "Maximum", own["Dimensions"])
    assert (
        (dr["ComparisonOperator"], dr["Threshold"])
        == (own["ComparisonOperator"], own["Threshold"])
        == (
            "GreaterThanOrEqualToThreshold",
            80,
        )
    )
    description = json.dumps(dr["AlarmDescription"])
    assert "(eu-west-1, us-west-2;" in description and "dr.quotas" in description


# ------------------------------------------------------------------------------------- a retired target

RETIRED_TARGETS = {
    "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
    "dr-eu": {**TARGETS["dr-eu"], "retired": True},
}
PSEUDO_ACCOUNT = PSEUDO["AWS::AccountId"]  # the account iam_model renders the template's ARNs with


@pytest.fixture(scope="module")
def retired_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"drTargets": RETIRED_TARGETS, "deployment": "prod"}, outdir=tmp_path_factory.mktemp("retired"))


def model_arn(region: str, name: str) -> str:
    return f"arn:aws:rds:{region}:{PSEUDO_ACCOUNT}:cluster-snapshot:{name}"


def test_a_retired_target_reaches_the_function_as_retired(retired_synth: Synthesized) -> None:
    (function,) = [
        f for i, f in retired_synth.resources("AWS::Lambda::Function").items() if i.startswith("BackupFunction")
    ]
    settings = engine_config.Settings.from_env(function["Properties"]["Environment"]["Variables"])
    assert {t.name: t.retired for t in settings.dr_targets.values()} == {"dr-west": False, "dr-eu": True}


@pytest.mark.parametrize("fold_case", [False, True])
def test_into_a_retired_targets_region_the_role_cannot_copy_and_deletes_only_our_un_held_copies(
    retired_synth: Synthesized, fold_case: bool
) -> None:
    statements = function_statements(retired_synth)
    eu_copy, west_copy = (model_arn(r, "orders-20260310-0300-dr-useast1") for r in ("eu-west-1", "us-west-2"))

    def may(
        action: str, arn: str, *, resource: dict[str, str] | None = None, request: dict[str, str] | None = None
    ) -> bool:
        call = iam_model.Request(action, arn, resource_tags=resource or {}, request_tags=request or {})
        return iam_model.allowed(statements, call, fold_case=fold_case)

    # no copy into it, not even one carrying our DR marker; the active target still takes them
    assert not may("rds:CopyDBClusterSnapshot", eu_copy, request=OUR_COPY_TAGS)
    assert not may("rds:AddTagsToResource", eu_copy, request=OUR_COPY_TAGS)
    assert may("rds:CopyDBClusterSnapshot", west_copy, request=OUR_COPY_TAGS)
    # its copies are still pruned: ours only, never a held one
    assert may("rds:DeleteDBClusterSnapshot", eu_copy, resource=OUR_COPY_TAGS)
    assert not may("rds:DeleteDBClusterSnapshot", eu_copy, resource={**OUR_COPY_TAGS, "snapshot-hold": "yes"})
    assert not may("rds:DeleteDBClusterSnapshot", eu_copy, resource={tags.DR_MARKER: "other"})
    assert not may("rds:DeleteDBClusterSnapshot", eu_copy, resource={"snapshot-scheduler:deployment": "prod"})
    # and no KMS there: neither its key nor any key of its region
    kms = [s for s in statements if any(a.startswith("kms:") for a in actions(s))]
    assert kms and "eu-west-1" not in json.dumps(kms) and "1234abcd" not in json.dumps(kms)


def test_with_every_target_retired_nothing_can_be_copied_and_no_key_is_used(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    context = {"drTargets": {name: {**spec, "retired": True} for name, spec in TARGETS.items()}, "deployment": "prod"}
    statements = function_statements(synth(context, outdir=tmp_path_factory.mktemp("all-retired")))
    granted = {a for s in statements if s["Effect"] == "Allow" for a in actions(s)}

    assert contract.RDS_COPY_SNAPSHOT not in granted and not any(a.startswith("kms:") for a in granted)
    for region in ("us-west-2", "eu-west-1"):
        copy = model_arn(region, "orders-20260310-0300-dr-useast1")
        request = iam_model.Request("rds:DeleteDBClusterSnapshot", copy, resource_tags=OUR_COPY_TAGS)
        assert iam_model.allowed(statements, request, fold_case=False)


def test_dr_templates_agree_with_the_service_authorization_reference(
    dr_synth: Synthesized, retired_synth: Synthesized
) -> None:
    for synthesized in (dr_synth, retired_synth):
        template = synthesized.template_json()
        assert [str(finding) for finding in service_authorization.check_template(template)] == []
