"""cdk-nag (AwsSolutions and Serverless packs) finds nothing unacknowledged, and every acknowledgment
answers a finding that really exists, on the resource it names, with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import Acknowledgment, Validations

from tests.infra.synthesis import synth

# Every optional resource present: e-mail subscriptions, a dry-run schedule input, a cron schedule.
CONTEXT = {"alarmEmails": ["oncall@example.com"], "dryRun": True, "schedule": "cron(0 * * * ? *)"}
# A vault (issue 11) in an account and region, its key by alias, two sources: its own statements and findings.
VAULT = {
    **CONTEXT,
    "environments": [{"account": "222222222222", "region": "eu-central-1"}],
    "vault": {
        "sources": [{"account": "111111111111", "regions": ["eu-west-1", "eu-central-1"]}],
        "policy": "keep-daily=14",
        "kmsKey": "alias/snapshot-vault",
    },
}
# DR targets: a key by alias, a key by ARN on a retired target (no copy, no KMS there), one without a key, and
# a vault account that snapshots are shared with (its share statements and key describe).
DR = {
    **CONTEXT,
    "drTargets": {
        "vault": {"account": "222222222222", "region": "eu-central-1"},
        "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
        "dr-eu": {"region": "eu-west-1", "kmsKey": "arn:aws:kms:eu-west-1:111111111111:key/1234abcd", "retired": True},
        "dr-ap": {"region": "ap-southeast-2"},
    },
}
CONTEXTS = pytest.mark.parametrize("context", [CONTEXT, VAULT, DR], ids=["source", "vault", "dr"])


def violations(outdir: Path) -> set[tuple[str, str]]:
    """(rule, construct path) of every finding in the validation report."""
    report = json.loads((outdir / "validation-report.json").read_text())
    return {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    }


@CONTEXTS
def test_full_synth_with_cdk_nag_and_cdk_validation_reports_no_finding(tmp_path: Path, context: dict[str, Any]) -> None:
    synth(context, outdir=tmp_path, nag=True, validation=True)
    assert violations(tmp_path) == set()


@dataclass(frozen=True)
class Ack:
    path: str
    rule: str
    reason: str


@pytest.fixture
def recorded_acks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Ack]]:
    """Record acknowledgments instead of applying them, so the packs report what they would find."""
    recorded: list[Ack] = []
    real_of = Validations.of

    class Recorder:
        def __init__(self, scope: Any) -> None:
            self._scope = scope
            self._real = real_of(scope)

        def acknowledge(self, *rules: Acknowledgment) -> None:
            recorded.extend(Ack(self._scope.node.path, rule.id, rule.reason) for rule in rules)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._real, name)

    monkeypatch.setattr(Validations, "of", Recorder)
    yield recorded


@CONTEXTS
def test_every_acknowledgment_answers_a_real_finding_on_its_own_resource(
    tmp_path: Path, recorded_acks: list[Ack], context: dict[str, Any]
) -> None:
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        synth(context, outdir=tmp_path, nag=True)
    found = violations(tmp_path)

    assert recorded_acks, "no acknowledgments recorded"
    for ack in recorded_acks:
        assert ack.path.count("/") >= 2, f"{ack.rule} is acknowledged for a whole stack or app, not a resource"
        assert len(ack.reason) >= 60, f"{ack.rule} on {ack.path}: the reason is not specific"
        matching = {path for rule, path in found if rule == ack.rule and path.startswith(ack.path + "/")}
        assert matching, f"{ack.rule} acknowledged on {ack.path} but not reported there: stale acknowledgment"
    for rule, path in found:
        assert any(rule == ack.rule and path.startswith(ack.path + "/") for ack in recorded_acks), (rule, path)
