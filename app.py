#!/usr/bin/env python3
"""The CDK app: settings from cdk.json context, one stack per configured environment, cdk-nag checks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# infra/ validates the context with the engine's own pure parsers: import them from this checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent / "lambda_src"))

from aws_cdk import App, Environment

from infra.compliance import add_compliance_checks
from infra.config import ConfigError, Settings
from infra.stack import add_stacks


def main(app: App | None = None) -> int:
    """Synthesize `app` (by default the one the CDK CLI describes through CDK_CONTEXT_JSON and CDK_OUTDIR)."""
    app = app or App()
    # With no configured environments: the CLI's default account and region (none without credentials,
    # which gives an environment-agnostic stack that still synthesizes).
    default_env = Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION")
    )
    try:
        settings = Settings.from_context(app.node.get_all_context(), default_account=default_env.account)
    except ConfigError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2
    add_stacks(app, settings, default_env=default_env)
    add_compliance_checks(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
