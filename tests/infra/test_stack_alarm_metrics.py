"""Every alarm (and dashboard graph) on a run metric watches something the real handler emits.

Given the synthesized stack, when the real handler runs under moto with the function's environment taken
from that template, then each (namespace, metric name, dimensions) of an alarm on the function's own
metrics appears in the EMF it prints.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from moto import mock_aws
from snapshot_scheduler import observability
from snapshot_scheduler.adapters import rds
from snapshot_scheduler.handlers import backup

from infra import contract
from tests.infra.synthesis import Synthesized, synth
from tests.support.fidelity import Accounts, Regions, SimClock, TokenBucket
from tests.support.harness import moto_rds, rds_client, scheduled_lambda

REGION = "us-east-1"
# The handler refuses stale and future events against the wall clock, so the runs are scheduled for this hour:
# the first creates the daily snapshot; the second (a duplicate delivery) finds it and reports its age.
THIS_HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
SCHEDULED_TIMES = (THIS_HOUR, THIS_HOUR)
MetricKey = tuple[str, str, frozenset[tuple[str, str]]]

CUSTOM = {"metricNamespace": "Backups/Prod", "deployment": "prod-eu", "policyTagKey": "backup-policy"}
DR_REGION = "us-west-2"
# A vault in eu-central-1 of account VAULT, copying what PROD shares from REGION.
PROD, VAULT, VAULT_REGION = "111111111111", "222222222222", "eu-central-1"
VAULT_CONTEXT = {
    **CUSTOM,
    "deployment": "vault",
    "vault": {"sources": [{"account": PROD, "regions": [REGION]}], "policy": "every=1d keep-daily=7"},
}


@pytest.fixture(scope="module")
def custom(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(CUSTOM, outdir=tmp_path_factory.mktemp("cross-check"))


@pytest.fixture(scope="module")
def dr_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = {**CUSTOM, "drTargets": {"dr-west": {"region": DR_REGION}}}
    return synth(context, outdir=tmp_path_factory.mktemp("cross-check-dr"))


@pytest.fixture(scope="module")
def vault_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synth(VAULT_CONTEXT, outdir=tmp_path_factory.mktemp("cross-check-vault"))


class LambdaContext:
    function_name = "snapshot-scheduler-backup"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:snapshot-scheduler-backup"
    aws_request_id = str(uuid.uuid4())
    log_group_name = "/aws/lambda/snapshot-scheduler-backup"
    log_stream_name = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 14 * 60 * 1000


def _quota_answer(**_: Any) -> tuple[AWSResponse, dict[str, Any]]:
    """moto does not implement DescribeAccountAttributes: answer it as RDS does."""
    quotas = [{"AccountQuotaName": "ManualClusterSnapshots", "Used": 3, "Max": 100}]
    return AWSResponse("", 200, HTTPHeaders(), None), {
        "AccountQuotas": quotas,
        "ResponseMetadata": {"HTTPStatusCode": 200},
    }


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_RDS", "POWERTOOLS_METRICS_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def function_env(synthesized: Synthesized) -> dict[str, str]:
    (function,) = [
        f for i, f in synthesized.resources("AWS::Lambda::Function").items() if i.startswith("BackupFunction")
    ]
    env: dict[str, str] = function["Properties"]["Environment"]["Variables"]
    return env


def run_handler(synthesized: Synthesized, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The real handler, configured from the template, over one opted-in Aurora cluster in moto."""
    env = function_env(synthesized)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    # Logger and Metrics are created at import time: make sure they use this template's configuration.
    monkeypatch.setattr(observability.metrics, "namespace", env["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setattr(observability.metrics, "service", env["POWERTOOLS_SERVICE_NAME"])
    original_build = rds.build_client

    def build_client(*args: Any, **kwargs: Any) -> Any:
        client = original_build(*args, **kwargs)
        # A before-call handler that returns a response answers the call in place of the service.
        client.meta.events.register("before-call.rds.DescribeAccountAttributes", _quota_answer)  # type: ignore[arg-type]
        return client

    monkeypatch.setattr(rds, "build_client", build_client)
    monkeypatch.setattr(backup, "build_client", build_client, raising=False)
    backup.runtime.cache_clear()

    boto3.client("rds", region_name=REGION).create_db_cluster(
        DBClusterIdentifier="orders",
        Engine="aurora-postgresql",
        MasterUsername="admin",
        MasterUserPassword="not-a-secret-1",
        Tags=[{"Key": env["SNAPSHOT_POLICY_TAG_KEY"], "Value": "daily"}],
    )
    try:
        return [backup.lambda_handler({"time": at}, LambdaContext()) for at in SCHEDULED_TIMES]
    finally:
        backup.runtime.cache_clear()


def emitted_metrics(stdout: str) -> set[MetricKey]:
    """(namespace, name, dimensions) of every metric in the EMF blobs printed to stdout."""
    found: set[MetricKey] = set()
    for line in stdout.splitlines():
        try:
            blob = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(blob, dict) or "_aws" not in blob:
            continue
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = frozenset((name, str(blob[name])) for name in dimension_set)
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], dimensions))
    return found


def alarmed_metrics(synthesized: Synthesized) -> set[MetricKey]:
    """(namespace, name, dimensions) of every alarm on the function's own (non-AWS/) metrics."""
    found: set[MetricKey] = set()
    for alarm in synthesized.resources("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props["Namespace"].startswith("AWS/"):
            continue
        dimensions = frozenset((d["Name"], d["Value"]) for d in props["Dimensions"])
        found.add((props["Namespace"], props["MetricName"], dimensions))
    return found


def charted_metrics(synthesized: Synthesized) -> set[MetricKey]:
    """(namespace, name, dimensions) of every dashboard graph line on the function's own metrics."""
    parts = synthesized.only("AWS::CloudWatch::Dashboard")["Properties"]["DashboardBody"]["Fn::Join"][1]
    body = json.loads("".join(part if isinstance(part, str) else "TOKEN" for part in parts))
    found: set[MetricKey] = set()
    for widget in body["widgets"]:
        for line in widget["properties"].get("metrics", []):
            names = [item for item in line if isinstance(item, str)]
            if not names or names[0].startswith("AWS/") or names[0] == "TOKEN":
                continue
            namespace, name, *pairs = names
            found.add((namespace, name, frozenset(zip(pairs[::2], pairs[1::2], strict=True))))
    return found


@pytest.mark.parametrize("which", ["default", "custom"])
def test_every_alarm_and_graph_on_run_metrics_matches_what_the_handler_emits(
    which: str,
    default_synth: Synthesized,
    custom: Synthesized,
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    synthesized = default_synth if which == "default" else custom
    first, second = run_handler(synthesized, monkeypatch)
    emitted = emitted_metrics(capsys.readouterr().out)

    assert [entry["cluster"] for entry in first["created"]] == ["orders"], first
    assert second["created"] == [], second
    # out of policy (level and new), missed slots, failures, policy errors, quota, heartbeat, deletions pending,
    # mass deletion
    excluded = observability.DR_METRICS | observability.VAULT_METRICS
    assert_watched_metrics_are_emitted(synthesized, emitted, alarms=9, excluded=excluded)


def test_with_dr_targets_every_alarm_and_graph_matches_what_the_handler_emits(
    dr_synth: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    """The DR alarms too: the handler configured from a template with drTargets copies one cluster to the
    target region (behind the fidelity layer: copies recognised by their source ARN, a quota in each region)."""
    env = function_env(dr_synth)
    start = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
    with moto_rds():
        regions = Regions(SimClock(start))
        east = regions.layer(REGION, bucket=TokenBucket())
        west = regions.layer(DR_REGION, bucket=TokenBucket(), copying_for=timedelta(minutes=30), quota=50)
        rds_client(east, region=REGION)
        rds_client(west, region=DR_REGION)
        east.create_cluster(
            "orders", tags={env["SNAPSHOT_POLICY_TAG_KEY"]: "daily", "snapshot-dr": "to=dr-west keep-daily=2"}
        )
        with scheduled_lambda(east, env=env) as handler:
            capsys.readouterr()
            reports = [handler.run(start + timedelta(hours=hour)) for hour in range(3)]
    emitted = emitted_metrics(capsys.readouterr().out)

    assert [[e["cluster"] for e in r["dr"]["started"]] for r in reports] == [[], ["orders"], []], reports
    assert reports[-1]["dr"]["quotas"] == {DR_REGION: {"used": 1, "max": 50}}
    # ... and DR: recovery point breached, copies failed, copy stuck, DR region quota
    assert_watched_metrics_are_emitted(dr_synth, emitted, alarms=13, excluded=observability.VAULT_METRICS)


# What a vault run emits besides its own metrics; the tag-driven and DR ones are not the vault's to watch.
VAULT_RUN_METRICS = {
    observability.Metric.HEARTBEAT,
    observability.Metric.DELETIONS_PENDING,
    observability.Metric.MASS_DELETIONS,
    observability.Metric.RUN_DURATION,
    observability.Metric.QUOTA_USED,
    observability.Metric.QUOTA_MAX,
    observability.Metric.QUOTA_UTILIZATION,
}


def test_on_a_vault_every_alarm_and_graph_matches_what_the_vault_run_emits(
    vault_synth: Synthesized, capsys: pytest.CaptureFixture[str]
) -> None:
    """The vault's alarms, per source too: the vault handler configured from a vault template copies what the
    production account's run made and shared (behind the fidelity layer's accounts), the next run finds the
    copy available: every per-source metric is emitted with its `source` dimension."""
    env = {**function_env(vault_synth), "AWS_DEFAULT_REGION": VAULT_REGION}  # as Lambda sets it there
    start = datetime(2026, 3, 10, 3, 5, tzinfo=UTC)
    with moto_rds():
        accounts = Accounts(SimClock(start))
        prod = accounts.layer(PROD, REGION, bucket=TokenBucket.unlimited())
        prod_rds = rds_client(prod)
        vault = accounts.layer(VAULT, VAULT_REGION, bucket=TokenBucket(), copying_for=timedelta(hours=1))
        rds_client(vault, region=VAULT_REGION)
        rds_client(accounts.layer(VAULT, REGION, bucket=TokenBucket()))  # where RDS lists PROD's shares
        prod.create_cluster("orders", tags={"snapshot-policy": "daily"}, created=start - timedelta(days=30))
        with scheduled_lambda(prod, env={"SNAPSHOT_DEPLOYMENT": "prod"}) as handler:
            (made,) = handler.run(start)["created"]
        prod_rds.modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=made["snapshot"], AttributeName="restore", ValuesToAdd=[VAULT]
        )
        with scheduled_lambda(vault, env=env) as handler:
            capsys.readouterr()
            reports = [handler.run(start + timedelta(hours=hour)) for hour in (1, 3)]
    emitted = emitted_metrics(capsys.readouterr().out)

    assert [len(r["vault"]["started"]) for r in reports] == [1, 0], reports  # copied, then found available
    source = frozenset({("service", contract.SERVICE_NAME), ("deployment", "vault"), ("source", f"{PROD}/{REGION}")})
    assert {
        (name, dims) for _, name, dims in emitted if "Vault" in name and ("source", f"{PROD}/{REGION}") in dims
    } == {
        (contract.VAULT_RECOVERY_POINT_AGE, source),
        (contract.VAULT_SOURCE_SILENCE, source),
    }
    # recovery point and shares missing for the one source, copies failed, copy stuck, quota, heartbeat,
    # deletions pending (an edit of the vault's policy), mass deletion
    excluded = frozenset(set(observability.Metric) - observability.VAULT_METRICS - VAULT_RUN_METRICS)
    assert_watched_metrics_are_emitted(vault_synth, emitted, alarms=8, excluded=excluded)


def assert_watched_metrics_are_emitted(
    synthesized: Synthesized, emitted: set[MetricKey], *, alarms: int, excluded: frozenset[observability.Metric]
) -> None:
    alarmed = alarmed_metrics(synthesized)
    assert len(alarmed) == alarms
    assert alarmed - emitted == set(), f"alarms on metrics the handler does not emit; it emits {sorted(emitted)}"
    charted = charted_metrics(synthesized)
    assert len(charted) >= 10
    assert charted - emitted == set(), f"graphs of metrics the handler does not emit; it emits {sorted(emitted)}"
    # ... and every run metric the stack names is watched: a new metric gets an alarm or a graph
    watched = {name for _, name, _ in alarmed | charted}
    named = {value for key, value in vars(contract).items() if key.isupper() and value in set(observability.Metric)}
    named -= set(excluded)  # DR metrics are watched only with drTargets, vault metrics only on a vault
    assert named - watched == set(), "metrics named in infra/contract.py that no alarm or graph watches"
