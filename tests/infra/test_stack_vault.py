"""A vault deployment from the same app (issue 11): the `vault` context key validated by the engine's rule, the
function's environment, the role (evaluated as IAM would: what a vault can never do, whatever its code does),
and its alarms and dashboard."""

from __future__ import annotations

import fnmatch
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App
from snapshot_scheduler import config as engine_config
from snapshot_scheduler import naming, observability, tags

import app
from infra import contract
from infra.config import ConfigError, Settings
from tests.infra import iam_model
from tests.infra import service_authorization as reference
from tests.infra.synthesis import SKIP_BUNDLING, Synthesized, cdk_json_context, synth
from tests.infra.test_stack_iam import actions, deletable_after_some_allowed_tagging, function_statements

# The template's pseudo parameters as iam_model renders them: the vault is account 123456789012 in us-east-1.
VAULT_ACCOUNT, VAULT_REGION = "123456789012", "us-east-1"
PROD, OTHER = "111111111111", "222222222222"
VAULT = {
    "sources": [{"account": PROD, "regions": ["eu-west-1", "us-east-1"], "deployment": "prod"}],
    "policy": "keep-daily=14 keep-weekly=8 keep-monthly=24",
    "kmsKey": "alias/snapshot-vault",
    "minRetentionDays": 7,
}
MARKER = contract.VAULT_MARKER_TAG
SLOT = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)
SHARED = naming.snapshot_id("orders", SLOT)  # what a source names its slot snapshot, and shares
# A vault copy's identifier: naming.vault_copy_id's once the vault engine has it, else the shape VAULT.md fixes.
_make_copy_id = getattr(naming, "vault_copy_id", None)
COPY_ID = _make_copy_id("orders", SLOT, PROD, "eu-west-1") if _make_copy_id else f"{SHARED}-v1a2b3c4d"
FOLD = pytest.mark.parametrize("fold_case", [False, True], ids=["keys-case-sensitive", "keys-case-insensitive"])


@pytest.fixture(scope="module")
def vault_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth({"vault": VAULT, "deployment": "vault"}, outdir=tmp_path_factory.mktemp("vault"))


def snapshot(identifier: str, account: str = VAULT_ACCOUNT, region: str = VAULT_REGION) -> str:
    return f"arn:aws:rds:{region}:{account}:cluster-snapshot:{identifier}"


def allowed(statements: list[dict[str, Any]], request: iam_model.Request, fold_case: bool = False) -> bool:
    return iam_model.allowed(statements, request, fold_case=fold_case)


def copy_allowed(
    statements: list[dict[str, Any]], source: str, target: str, request_tags: dict[str, str], fold_case: bool = False
) -> bool:
    """A copy is authorised against the source and the target ARN (which one RDS checks is not documented:
    both must pass), and its tags as rds:AddTagsToResource on the new copy."""
    requests = [
        iam_model.Request(contract.RDS_COPY_SNAPSHOT, source, request_tags=request_tags),
        iam_model.Request(contract.RDS_COPY_SNAPSHOT, target, request_tags=request_tags),
        iam_model.Request(contract.RDS_ADD_TAGS, target, request_tags=request_tags),
    ]
    return all(allowed(statements, r, fold_case) for r in requests)


OUR_COPY_TAGS = {MARKER: "vault", tags.CLUSTER: "orders", tags.SLOT: "2026-11-10T03:00Z"}


# ---- the context key ------------------------------------------------------------------------------------


def test_the_function_gets_the_canonical_vault_and_the_engine_reads_the_same_vault(vault_synth: Synthesized) -> None:
    env = vault_synth.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert set(env) == {*engine_config.ENV_VARS, engine_config.VAULT}
    vault = engine_config.Settings.from_env(env).vault
    expected = Settings.from_context({"vault": VAULT}).vault
    assert vault is not None and expected is not None
    assert (vault.source_keys, vault.kms_key, vault.min_retention) == (
        [(PROD, "eu-west-1"), (PROD, "us-east-1")],
        "alias/snapshot-vault",
        expected.min_retention,
    )
    assert vault.policy.spec() == expected.policy.spec() == "every=1d at=03:00 tz=UTC " + VAULT["policy"]
    assert json.loads(env[contract.ENV_VAULT])["sharesExpectedHours"] == 2 * 24 + 12  # the default, spelled out


def test_an_ordinary_deployment_tells_the_function_it_is_no_vault(default_synth: Synthesized) -> None:
    env = default_synth.only("AWS::Lambda::Function")["Properties"]["Environment"]["Variables"]
    assert contract.ENV_VAULT == engine_config.VAULT not in env
    assert engine_config.Settings.from_env(env).vault is None


ACCOUNT_ENV = [{"account": PROD, "region": "eu-west-1"}]


@pytest.mark.parametrize(
    ("context", "says"),
    [
        (
            {"drTargets": {"dr-west": {"region": "us-west-2"}}},
            "no 'drTargets' on a vault deployment (it names dr-west)",
        ),
        ({"environments": ACCOUNT_ENV}, f"source accounts other than {PROD}, where the vault is deployed"),
        (
            {
                "environments": [{"account": VAULT_ACCOUNT, "region": "eu-central-1"}],
                "vault": {**VAULT, "kmsKey": f"arn:aws:kms:us-east-1:{VAULT_ACCOUNT}:key/1234"},
            },
            "a kmsKey of the vault's own account and region",
        ),
        (
            {"vault": {**VAULT, "sources": [{"account": PROD}]}},
            "regions None: expected a non-empty list of region names",
        ),
        ({"vault": {**VAULT, "policy": "off"}}, "unknown policy name 'off'"),
        (
            {
                "vault": {
                    **VAULT,
                    "sources": [{"account": f"{n:012d}", "regions": ["eu-west-1", "us-east-1"]} for n in range(2, 15)],
                }
            },
            "at most 25 source account/region pairs (26 given)",
        ),
        (
            {"vault": json.dumps({**VAULT, "minRetentionDays": -1})},
            "minRetentionDays -1: expected a whole number from 0",
        ),
    ],
)
def test_a_bad_vault_fails_synth_naming_the_key_the_value_and_what_is_allowed(
    context: dict[str, Any], says: str
) -> None:
    context = {"vault": VAULT, **context}
    with pytest.raises(ConfigError) as raised:
        Settings.from_context(context)
    message = str(raised.value)
    assert message.startswith("context key 'vault' (cdk.json or -c) has invalid value "), message
    assert says in message
    shown = context["vault"] if not isinstance(context["vault"], str) else json.loads(context["vault"])
    assert repr(shown) in message


def test_cdk_synth_refuses_a_vault_in_the_clis_own_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDK_DEFAULT_ACCOUNT", PROD)  # no environments: the stack deploys to the CLI's account
    cdk_app = App(context={**cdk_json_context(), **SKIP_BUNDLING, "vault": json.dumps(VAULT)}, outdir=str(tmp_path))

    assert app.main(cdk_app) == 2
    error = capsys.readouterr().err
    assert "context key 'vault'" in error and f"source accounts other than {PROD}" in error
    assert not list(tmp_path.glob("*.template.json"))


def test_the_iam_copy_pattern_covers_every_vault_copy_identifier() -> None:
    make = getattr(naming, "vault_copy_id", None)
    if make is None:
        pytest.skip("naming.vault_copy_id lands with the vault engine")
    for cluster in ("a", "orders", "x" * 63):
        for account, region in ((PROD, "eu-west-1"), (OTHER, "ap-southeast-2")):
            identifier = make(cluster, SLOT, account, region)
            assert fnmatch.fnmatchcase(identifier, contract.VAULT_COPY_ID_PATTERN)
            assert not fnmatch.fnmatchcase(identifier, contract.SNAPSHOT_ID_PATTERN)


# ---- the role: what IAM lets a vault do -------------------------------------------------------------------


def test_a_vault_role_copies_tags_and_deletes_but_never_snapshots_shares_or_untags(vault_synth: Synthesized) -> None:
    granted = {a for s in function_statements(vault_synth) if s["Effect"] == "Allow" for a in actions(s)}
    rds_granted = {a for a in granted if a.startswith("rds:")}
    assert rds_granted == {
        *contract.RDS_DESCRIBE_ACTIONS,
        contract.RDS_COPY_SNAPSHOT,
        contract.RDS_ADD_TAGS,
        contract.RDS_DELETE_SNAPSHOT,
    }
    assert {a for a in granted if a.startswith("kms:")} == set(contract.KMS_COPY_ACTIONS)
    # none of the source role's tag-driven statements
    sids = {s.get("Sid") for s in function_statements(vault_synth)}
    assert not sids & {"SnapshotOptedInClustersOnly", "CreateSnapshotsCarryingOurMarker", "DeleteOnlyOurSnapshots"}


@FOLD
@pytest.mark.parametrize("source_region", ["eu-west-1", "us-east-1"])
def test_a_vault_copies_only_what_a_configured_source_shares_into_copies_carrying_its_marker(
    vault_synth: Synthesized, source_region: str, fold_case: bool
) -> None:
    statements = function_statements(vault_synth)
    shared = snapshot(SHARED, PROD, source_region)
    assert copy_allowed(statements, shared, snapshot(COPY_ID), OUR_COPY_TAGS, fold_case)
    # not from an account or region no source names, nor a snapshot not named as a slot's
    assert not copy_allowed(statements, snapshot(SHARED, OTHER, source_region), snapshot(COPY_ID), OUR_COPY_TAGS)
    assert not copy_allowed(statements, snapshot(SHARED, PROD, "ap-south-1"), snapshot(COPY_ID), OUR_COPY_TAGS)
    assert not copy_allowed(statements, snapshot("orders-final", PROD, source_region), snapshot(COPY_ID), OUR_COPY_TAGS)
    # not without our marker or with another vault's, not into a name that is no vault copy's
    unmarked = {k: v for k, v in OUR_COPY_TAGS.items() if k != MARKER}
    assert not copy_allowed(statements, shared, snapshot(COPY_ID), unmarked, fold_case)
    assert not copy_allowed(statements, shared, snapshot(COPY_ID), {**OUR_COPY_TAGS, MARKER: "other"}, fold_case)
    assert not copy_allowed(statements, shared, snapshot(SHARED), OUR_COPY_TAGS, fold_case)
    # not into another account or region
    assert not copy_allowed(statements, shared, snapshot(COPY_ID, OTHER), OUR_COPY_TAGS, fold_case)
    assert not copy_allowed(statements, shared, snapshot(COPY_ID, region="eu-west-1"), OUR_COPY_TAGS, fold_case)
    # never with a hold, which the vault can neither set nor clear
    held = {**OUR_COPY_TAGS, "Snapshot-Hold": "true"}
    assert not allowed(statements, iam_model.Request(contract.RDS_ADD_TAGS, snapshot(COPY_ID), request_tags=held))


@FOLD
def test_a_vault_deletes_only_its_own_unheld_copies(vault_synth: Synthesized, fold_case: bool) -> None:
    statements = function_statements(vault_synth)

    def deletable(identifier: str, snapshot_tags: dict[str, str], account: str = VAULT_ACCOUNT) -> bool:
        request = iam_model.Request(contract.RDS_DELETE_SNAPSHOT, snapshot(identifier, account), snapshot_tags)
        return allowed(statements, request, fold_case)

    assert deletable(COPY_ID, OUR_COPY_TAGS)
    assert not deletable(COPY_ID, {tags.CLUSTER: "orders"})  # no vault marker
    assert not deletable(COPY_ID, {**OUR_COPY_TAGS, MARKER: "other"})  # another vault's
    assert not deletable(COPY_ID, {tags.MARKER: "vault"})  # the snapshot marker is not the vault's
    assert not deletable(SHARED, OUR_COPY_TAGS)  # a name that is no vault copy's
    for hold in ("snapshot-hold", "SNAPSHOT-HOLD"):
        assert not deletable(COPY_ID, {**OUR_COPY_TAGS, hold: "yes"})
    # never what a source shares: the vault cannot touch a snapshot of another account
    assert not deletable(SHARED, {}, PROD)
    assert not deletable(COPY_ID, OUR_COPY_TAGS, PROD)


SHARE_ACTIONS = ("rds:ModifyDBClusterSnapshotAttribute", "rds:ModifyDBSnapshotAttribute", "rds:RemoveTagsFromResource")


@pytest.mark.parametrize("action", [*SHARE_ACTIONS, "rds:CreateDBClusterSnapshot", "rds:RestoreDBClusterFromSnapshot"])
def test_a_vault_can_never_share_untag_snapshot_or_restore(vault_synth: Synthesized, action: str) -> None:
    statements = function_statements(vault_synth)
    for arn in (snapshot(COPY_ID), snapshot(SHARED), snapshot(SHARED, PROD, "eu-west-1"), "*"):
        assert not allowed(statements, iam_model.Request(action, arn, OUR_COPY_TAGS, {"owner": "x"}))


# Request tags the role could write, one or two at a time: its marker, another vault's, a hold, anything else.
TAG_MOVES = [
    dict(pair)
    for size in (1, 2)
    for pair in itertools.combinations([(MARKER, "vault"), (MARKER, "other"), (tags.HOLD, "false"), ("o", "x")], size)
    if len({key for key, _ in pair}) == size
]


FOREIGN = {
    "another vault's copy": (COPY_ID, {MARKER: "other"}, True),
    "a held copy": (COPY_ID, {MARKER: "vault", "snapshot-hold": "true"}, True),
    "a person's, named freely": ("orders-before-migration", {"owner": "dba"}, True),
    "a snapshot named as a slot's": (SHARED, {"owner": "dba"}, True),
    "AWS Backup's": ("awsbackup:job-8f1c2e4a", {}, True),
    # As on the source side: IAM cannot tell a copy being made from an unmarked snapshot a person named to fit
    # the copy pattern (the engine never tags an existing snapshot; README says so).
    "a person's, unmarked, named like a vault copy": (COPY_ID, {"owner": "dba"}, False),
}


@pytest.mark.parametrize(("identifier", "start", "protected"), FOREIGN.values(), ids=FOREIGN.keys())
def test_no_sequence_of_allowed_calls_deletes_a_snapshot_the_vault_did_not_copy(
    vault_synth: Synthesized, identifier: str, start: dict[str, str], protected: bool
) -> None:
    statements = function_statements(vault_synth)
    for fold_case in (False, True):
        deletable = deletable_after_some_allowed_tagging(
            statements, identifier, start, fold_case=fold_case, moves=TAG_MOVES
        )
        assert deletable != protected


def test_kms_on_the_vault_key_and_the_sources_keys_only_for_grants_to_aws_resources(vault_synth: Synthesized) -> None:
    statements = function_statements(vault_synth)
    for_rds = {"kms:GrantIsForAWSResource": "true"}
    vault_alias = {"kms:ResourceAliases": ["alias/snapshot-vault"]}

    def kms(action: str, key: str, **context: Any) -> bool:
        return allowed(statements, iam_model.Request(action, key, context=context))

    vault_key = f"arn:aws:kms:{VAULT_REGION}:{VAULT_ACCOUNT}:key/aaaa"
    source_key = f"arn:aws:kms:eu-west-1:{PROD}:key/bbbb"
    assert kms("kms:DescribeKey", vault_key, **vault_alias)
    assert kms("kms:CreateGrant", vault_key, **vault_alias, **for_rds)
    assert not kms("kms:CreateGrant", vault_key, **vault_alias)  # a grant to anyone but an AWS service
    assert not kms("kms:CreateGrant", vault_key, **for_rds, **{"kms:ResourceAliases": ["alias/other"]})
    assert kms("kms:DescribeKey", source_key) and kms("kms:CreateGrant", source_key, **for_rds)
    assert not kms("kms:CreateGrant", source_key, **{"kms:GrantIsForAWSResource": "false"})
    assert not kms("kms:CreateGrant", f"arn:aws:kms:eu-west-1:{OTHER}:key/cccc", **for_rds)
    assert not kms("kms:CreateGrant", f"arn:aws:kms:ap-south-1:{PROD}:key/dddd", **for_rds)
    assert not kms("kms:Decrypt", source_key) and not kms("kms:ScheduleKeyDeletion", vault_key)


def test_every_vault_statement_agrees_with_the_service_authorization_reference(vault_synth: Synthesized) -> None:
    template = vault_synth.template_json()
    sids = {statement.get("Sid") for _, statement in reference.statements(template)}
    assert {"VaultCopyOnlyFromConfiguredSources", "VaultGrantSourceKeysToRds", "VaultDescribeVaultKey"} <= sids
    assert [str(finding) for finding in reference.check_template(template)] == []


def test_no_condition_key_in_the_reference_reads_a_snapshots_age() -> None:
    """README says IAM cannot protect a copy by its age: every condition key that applies to a cluster snapshot
    (its actions' and its resource type's) compares tags, text only; none is a date or a number. (The global
    aws:CurrentTime and aws:EpochTime are the request's clock, not the snapshot's.)"""
    types = {name: entry["type"] for name, entry in reference._service("rds", "conditionKeys").items()}
    snapshot_keys = set(reference._service("rds", "resourceTypes")["cluster-snapshot"]["conditionKeys"])
    for action in ("copydbclustersnapshot", "deletedbclustersnapshot", "modifydbclustersnapshotattribute"):
        entry = reference._service("rds", "actions")[action]
        snapshot_keys |= {*entry["conditionKeys"], *(key for r in entry["resourceTypes"] for key in r["conditionKeys"])}
    assert {types[key.lower()] for key in snapshot_keys} == {"String", "ArrayOfString"}, snapshot_keys
    assert not [name for name, kind in types.items() if kind == "Date"]  # nor any other RDS key


# ---- alarms and dashboard ----------------------------------------------------------------------------------


def alarms(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"].removeprefix("SnapshotScheduler-"): a["Properties"]
        for a in synthesized.resources("AWS::CloudWatch::Alarm").values()
    }


def description(props: dict[str, Any]) -> str:
    text = props["AlarmDescription"]
    return text if isinstance(text, str) else "".join(p for p in text["Fn::Join"][1] if isinstance(p, str))


def dimensions(props: dict[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in props.get("Dimensions", [])}


def test_each_configured_source_has_its_recovery_point_and_silence_alarm(vault_synth: Synthesized) -> None:
    found = alarms(vault_synth)
    for region in ("eu-west-1", "us-east-1"):
        source = {"service": contract.SERVICE_NAME, "deployment": "vault", "source": f"{PROD}/{region}"}
        breached = found[f"VaultRecoveryPointBreached-{PROD}-{region}"]
        assert (breached["MetricName"], breached["Statistic"], dimensions(breached)) == (
            "VaultRecoveryPointAge",
            "Maximum",
            source,
        )
        assert breached["Threshold"] == (24 + 1 + 24) * 3600  # interval + graceMinutes + drStuckHours
        missing = found[f"VaultSharesMissing-{PROD}-{region}"]
        assert (missing["MetricName"], dimensions(missing), missing["Threshold"]) == (
            "VaultSourceSilence",
            source,
            (2 * 24 + 12) * 3600,
        )
        assert missing["ComparisonOperator"] == "GreaterThanThreshold"
        # A source never heard from has no data: that breaches, over two runs' window (a late run is no gap)
        for alarm in (breached, missing):
            assert (alarm["TreatMissingData"], alarm["Period"]) == ("breaching", 2 * 3600)
        assert "possible compromise" in description(missing)


def test_a_vault_alarms_on_its_copies_and_heartbeat_and_not_on_clusters(
    vault_synth: Synthesized, default_synth: Synthesized
) -> None:
    found = alarms(vault_synth)
    run = {"service": contract.SERVICE_NAME, "deployment": "vault"}
    assert (found["VaultCopiesFailed"]["MetricName"], dimensions(found["VaultCopiesFailed"])) == (
        "VaultCopiesFailed",
        run,
    )
    assert found["VaultCopyStuck"]["MetricName"] == "VaultCopiesStuck"
    assert found["HeartbeatMissing"]["TreatMissingData"] == "breaching"
    assert "THE VAULT COPIES NOTHING" in description(found["HeartbeatMissing"])
    assert "ManualSnapshotQuota" in found
    for tag_driven in ("ClustersOutOfPolicy", "SlotsMissed", "PolicyErrors", "SnapshotsFailed"):
        assert tag_driven not in found and tag_driven in alarms(default_synth)
    # An edit of the vault's policy that keeps fewer copies alarms before its grace ends, as on the source
    pending = found["DeletionsPending"]
    assert (pending["MetricName"], pending["Statistic"], dimensions(pending)) == ("DeletionsPending", "Maximum", run)
    assert "VAULT'S POLICY" in description(pending) and "policyChangeGraceHours" in description(pending)
    assert not any(name.startswith("Vault") for name in alarms(default_synth))
    # every alarm names what to do
    assert all(len(description(props)) > 150 for name, props in found.items() if name.startswith("Vault"))


def test_the_vault_alarms_watch_the_metric_names_the_engine_emits(vault_synth: Synthesized) -> None:
    """VAULT.md fixes the names; once observability.Metric has them (the vault engine), they must agree."""
    watched = {props["MetricName"] for props in alarms(vault_synth).values()}
    vault_watched = {name for name in watched if name.startswith("Vault")}
    assert vault_watched == {"VaultRecoveryPointAge", "VaultSourceSilence", "VaultCopiesFailed", "VaultCopiesStuck"}
    emitted = {metric.value for metric in observability.Metric}
    if any(name.startswith("Vault") for name in emitted):
        assert set(contract.VAULT_METRICS) <= emitted


def test_the_vault_dashboard_charts_copies_and_each_source(vault_synth: Synthesized) -> None:
    body = json.dumps(vault_synth.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"])
    for title in ("Vault copies per run", "Newest vault copy per source (hours)", "each source's newest share"):
        assert title in body
    for name in contract.VAULT_METRICS:
        assert f'\\"{name}\\"' in body
    assert f"{PROD}/eu-west-1" in body and f"{PROD}/us-east-1" in body
    assert "Snapshots per run" not in body
