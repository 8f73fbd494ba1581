"""cfn-lint passes on every synthesized template: the default, a two-environment fleet, one with every
optional resource, a vault, and DR targets (one retired). (The one ignored rule, W3005 on the function, is
set on that resource in infra/backup_function.py with its reason.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint_file  # type: ignore[import-untyped]

from tests.infra.synthesis import Synthesized, synth

VARIANTS: dict[str, dict[str, Any]] = {
    "fleet": {
        "environments": [
            {"account": "111111111111", "region": "eu-west-1"},
            {"account": "222222222222", "region": "us-east-1"},
        ]
    },
    "everything": {
        "alarmEmails": ["oncall@example.com", "dba@example.com"],
        "dryRun": True,
        "schedule": "cron(0 * * * ? *)",
        "scheduleTimezone": "Europe/Berlin",
        "namedPolicies": {"gold": "daily"},
    },
    "vault": {
        "alarmEmails": ["oncall@example.com"],
        "vault": {
            "sources": [{"account": "111111111111", "regions": ["eu-west-1", "us-east-1"]}],
            "policy": "gfs",
            "kmsKey": "alias/snapshot-vault",
        },
    },
    "dr": {
        "drTargets": {
            "dr-west": {"region": "us-west-2", "kmsKey": "alias/snapshot-dr"},
            "dr-eu": {"region": "eu-west-1", "retired": True},
        },
    },
}


def templates(synthesized: Synthesized) -> list[Path]:
    paths = synthesized.template_paths()
    assert paths
    return paths


def lint(path: Path) -> list[str]:
    regions = ["us-east-1", "eu-west-1"]
    return [str(match) for match in lint_file(path, config=ManualArgs(regions=regions))]


def test_default_template_passes_cfn_lint(default_synth: Synthesized) -> None:
    for path in templates(default_synth):
        assert lint(path) == []


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_templates_pass_cfn_lint(variant: str, tmp_path: Path) -> None:
    for path in templates(synth(VARIANTS[variant], outdir=tmp_path)):
        assert lint(path) == []
