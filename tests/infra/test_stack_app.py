"""app.py end to end, in-process, as `cdk synth` runs it: context from the CLI, cdk-nag and CDK's own
validation on, one stack per environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Environment

from tests.infra.synthesis import run_app, synth

TWO_ENVIRONMENTS = [
    {"account": "111111111111", "region": "eu-west-1"},
    {"account": "222222222222", "region": "us-east-1"},
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    outdir = tmp_path_factory.mktemp("fleet")
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert run_app(monkeypatch, outdir, environments=TWO_ENVIRONMENTS, alarmEmails=["oncall@example.com"]) == 0
    return outdir


def stacks(outdir: Path) -> dict[str, dict[str, Any]]:
    manifest = json.loads((outdir / "manifest.json").read_text())
    return {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }


def test_two_environments_give_two_stacks_with_distinct_names_in_their_own_account_and_region(fleet: Path) -> None:
    found = stacks(fleet)
    assert {name: artifact["environment"] for name, artifact in found.items()} == {
        "SnapshotScheduler-111111111111-eu-west-1": "aws://111111111111/eu-west-1",
        "SnapshotScheduler-222222222222-us-east-1": "aws://222222222222/us-east-1",
    }


def test_each_stack_of_a_fleet_has_its_own_deployment_marker_and_names(fleet: Path) -> None:
    for name in stacks(fleet):
        template = json.loads((fleet / f"{name}.template.json").read_text())
        resources = template["Resources"].values()
        (function,) = [r for r in resources if r["Type"] == "AWS::Lambda::Function"]
        assert function["Properties"]["Environment"]["Variables"]["SNAPSHOT_DEPLOYMENT"] == name
        alarm_names = [r["Properties"]["AlarmName"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"]
        assert alarm_names and all(alarm.startswith(f"{name}-") for alarm in alarm_names)
        (dashboard,) = [r for r in resources if r["Type"] == "AWS::CloudWatch::Dashboard"]
        assert dashboard["Properties"]["DashboardName"] == name  # it ends with the region already


# Resource types whose names are global to the account, and the property that names them.
ACCOUNT_GLOBAL_NAMES = {
    "AWS::CloudWatch::Dashboard": "DashboardName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::S3::Bucket": "BucketName",
}


def test_one_stack_name_in_two_regions_of_one_account_names_no_account_global_resource_alike(tmp_path: Path) -> None:
    names: dict[str, list[str]] = {}
    for region in ("eu-west-1", "us-east-1"):
        # The same stackName deployed with credentials for two regions (no `environments`: the CLI's default).
        synthesized = synth(outdir=tmp_path / region, default_env=Environment(account="111111111111", region=region))
        for resource in synthesized.template_json()["Resources"].values():
            key = ACCOUNT_GLOBAL_NAMES.get(resource["Type"])
            if key and key in resource["Properties"]:  # unnamed: CloudFormation makes a unique name
                names.setdefault(resource["Type"], []).append(resource["Properties"][key])
    assert names == {"AWS::CloudWatch::Dashboard": ["SnapshotScheduler-eu-west-1", "SnapshotScheduler-us-east-1"]}


def test_the_full_synth_ran_cdk_nag_and_cdk_validation_and_found_nothing(fleet: Path) -> None:
    report = json.loads((fleet / "validation-report.json").read_text())
    assert report["pluginReports"] == []
    acknowledged = (fleet / f"{next(iter(stacks(fleet)))}.metadata.json").read_text()
    assert "aws:cdk:acknowledged-rules" in acknowledged  # the packs ran, and saw the acknowledgments


def test_no_environments_give_one_environment_agnostic_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_app(monkeypatch, tmp_path) == 0
    assert {name: artifact["environment"] for name, artifact in stacks(tmp_path).items()} == {
        "SnapshotScheduler": "aws://unknown-account/unknown-region"
    }


def test_a_configuration_error_stops_synth_with_a_message_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_app(monkeypatch, tmp_path, memoryMb=64) == 2
    error = capsys.readouterr().err
    assert "'memoryMb'" in error
    assert "64" in error
    assert "from 128 to 10240" in error
    assert not list(tmp_path.glob("*.template.json"))
