"""Synthesizing the app in-process, the way app.py does, for the stack tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Environment
from aws_cdk.assertions import Template

import app
from infra.compliance import add_compliance_checks
from infra.config import Settings
from infra.stack import SnapshotSchedulerStack, add_stacks

ROOT = Path(__file__).resolve().parents[2]
CDK_JSON = ROOT / "cdk.json"
# Unit tests stage lambda_src/ as is; the full bundle is built by `make synth`.
SKIP_BUNDLING: dict[str, Any] = {"aws:cdk:bundling-stacks": []}


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text())["context"]
    return context


@dataclass(frozen=True)
class Synthesized:
    outdir: Path
    stacks: list[SnapshotSchedulerStack]

    @property
    def stack(self) -> SnapshotSchedulerStack:
        (only,) = self.stacks
        return only

    def template_json(self, stack: SnapshotSchedulerStack | None = None) -> dict[str, Any]:
        name = (stack or self.stack).artifact_id
        data: dict[str, Any] = json.loads((self.outdir / f"{name}.template.json").read_text())
        return data

    def template(self, stack: SnapshotSchedulerStack | None = None) -> Template:
        return Template.from_json(self.template_json(stack), skip_cyclical_dependencies_check=True)

    def resources(self, cfn_type: str, stack: SnapshotSchedulerStack | None = None) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.template_json(stack)["Resources"].items()
            if resource["Type"] == cfn_type
        }

    def only(self, cfn_type: str, stack: SnapshotSchedulerStack | None = None) -> dict[str, Any]:
        (resource,) = self.resources(cfn_type, stack).values()
        return resource

    def template_paths(self) -> list[Path]:
        return sorted(self.outdir.glob("*.template.json"))


def synth(
    context: dict[str, Any] | None = None,
    *,
    outdir: Path,
    nag: bool = False,
    validation: bool = False,
    bundling: bool = False,
    default_env: Environment | None = None,
) -> Synthesized:
    """cdk.json's context updated with `context`; optionally with cdk-nag and CDK's built-in validation."""
    full_context = {**cdk_json_context(), **(context or {})}
    if not bundling:
        full_context.update(SKIP_BUNDLING)
    app = App(context=full_context, outdir=str(outdir), builtin_cloud_formation_validation=validation)
    settings = Settings.from_context(app.node.get_all_context())
    stacks = add_stacks(app, settings, default_env=default_env)
    if nag:
        add_compliance_checks(app)
    app.synth()
    return Synthesized(outdir=outdir, stacks=stacks)


def run_app(monkeypatch: pytest.MonkeyPatch, outdir: Path, **context: Any) -> int:
    """app.main over the app the CDK CLI would describe: cdk.json's context with `context` on top (as `-c`
    gives it), without credentials. (The CLI passes both through the environment, which the running jsii
    kernel no longer reads, so the App is built here.)"""
    monkeypatch.delenv("CDK_DEFAULT_ACCOUNT", raising=False)
    monkeypatch.delenv("CDK_DEFAULT_REGION", raising=False)
    cdk_app = App(context={**cdk_json_context(), **SKIP_BUNDLING, **context}, outdir=str(outdir))
    return app.main(cdk_app)
