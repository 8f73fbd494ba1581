"""The function's code asset is built on this machine, without Docker."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import metadata
from itertools import pairwise
from pathlib import Path

from infra.backup_function import PIP_PLATFORM, RUNTIME
from infra.bundling import EXCLUDE, LAMBDA_SOURCE_DIR, REQUIREMENTS, LocalPipBundler


def make_source(root: Path) -> Path:
    package = root / "lambda_src" / "snapshot_scheduler"
    (package / "handlers" / "__pycache__").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "handlers" / "backup.py").write_text("def lambda_handler(event, context): ...\n")
    (package / "handlers" / "__pycache__" / "backup.cpython-311.pyc").write_bytes(b"\0")
    (package / "stale.pyc").write_bytes(b"\0")
    (root / "lambda_src" / "requirements.txt").write_text("tzdata==2026.6\n")
    (root / "lambda_src" / "notes.txt").write_text("not code")
    return root / "lambda_src"


def test_bundle_holds_the_package_without_byte_code_and_pip_installs_for_lambda(tmp_path: Path) -> None:
    commands: list[Sequence[str]] = []
    source = make_source(tmp_path)
    out = tmp_path / "out"
    bundler = LocalPipBundler(
        source_dir=source, python_version="3.13", platform="manylinux2014_aarch64", runner=commands.append
    )

    assert bundler.try_bundle(str(out)) is True

    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["snapshot_scheduler/__init__.py", "snapshot_scheduler/handlers/backup.py"]
    (command,) = commands
    assert list(command[:4]) == [sys.executable, "-m", "pip", "install"]
    pairs = dict(pairwise(command))
    assert pairs["--requirement"] == str(source / "requirements.txt")
    assert pairs["--target"] == str(out)
    assert pairs["--platform"] == "manylinux2014_aarch64"
    assert pairs["--python-version"] == "3.13"
    assert pairs["--implementation"] == "cp"
    assert {"--no-deps", "--only-binary=:all:"} <= set(command)


def test_byte_code_never_changes_the_asset_hash() -> None:
    assert {"**/__pycache__", "**/*.pyc"} <= set(EXCLUDE)


def pins(requirements: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in requirements.read_text().splitlines()]
    return {canonical(name): version for name, _, version in (line.partition("==") for line in lines if line)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_run_time_requirement_is_pinned_and_is_what_the_tests_run() -> None:
    found = pins(LAMBDA_SOURCE_DIR / REQUIREMENTS)
    assert {"aws-lambda-powertools", "tzdata"} <= set(found)
    assert all(found.values()), f"pin every run-time requirement with ==: {found}"
    assert found == {name: metadata.version(name) for name in found}


def test_the_bundled_asset_holds_the_powertools_the_tests_run(tmp_path: Path) -> None:
    # The real bundle, as `cdk synth` builds it (pip for the Lambda platform): what is deployed is what is tested.
    bundler = LocalPipBundler(
        source_dir=LAMBDA_SOURCE_DIR, python_version=RUNTIME.name.removeprefix("python"), platform=PIP_PLATFORM
    )
    assert bundler.try_bundle(str(tmp_path)) is True

    bundled = {canonical(dist.metadata["Name"]): dist.version for dist in metadata.distributions(path=[str(tmp_path)])}
    assert bundled == pins(LAMBDA_SOURCE_DIR / REQUIREMENTS)
    assert bundled["aws-lambda-powertools"] == metadata.version("aws-lambda-powertools")
    assert (tmp_path / "aws_lambda_powertools" / "metrics").is_dir()
    assert (tmp_path / "snapshot_scheduler" / "handlers" / "backup.py").is_file()
    # Pure Python only: the same bundle runs on either architecture.
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".so", ".pyd")]
