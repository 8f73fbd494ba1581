"""Fixtures for the stack tests: each template is synthesized once and shared."""

from __future__ import annotations

import os
import shutil
import subprocess

# Keep the test log readable on an end-of-life Node: jsii silences that banner only when the variable
# lists the running major version. Set before aws_cdk (and so jsii) is first imported.
_EOL = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"
_node = shutil.which("node")
if _node:
    _major = subprocess.run([_node, "--version"], capture_output=True, text=True, check=False).stdout
    _major = _major.strip().lstrip("v").split(".")[0]
    os.environ[_EOL] = ",".join(filter(None, [os.environ.get(_EOL, ""), _major]))
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

import pytest  # noqa: E402

from tests.infra.synthesis import Synthesized, synth  # noqa: E402


@pytest.fixture(scope="session")
def default_synth(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The app as cdk.json configures it (bundling skipped, CDK's own validation off)."""
    return synth(outdir=tmp_path_factory.mktemp("default"))
