"""The function's code asset is built on this machine, without Docker."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import metadata
from itertools import pairwise
from pathlib import Path

import pytest

from infra.backup_function import PIP_PLATFORM, RUNTIME
from infra.bundling import EXCLUDE, LAMBDA_SOURCE_DIR, PACKAGE, REQUIREMENTS, LocalPipBundler, find_python


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
        source_dir=source,
        python_version="3.13",
        platform="manylinux2014_aarch64",
        runner=commands.append,
        find=lambda _: None,
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


def test_bundle_is_compiled_by_the_runtime_python_when_one_is_found(tmp_path: Path) -> None:
    commands: list[Sequence[str]] = []
    bundler = LocalPipBundler(
        source_dir=make_source(tmp_path),
        python_version="3.13",
        platform="manylinux2014_aarch64",
        runner=commands.append,
        find=lambda version: f"/opt/python{version}",
    )
    out = str(tmp_path / "out")

    assert bundler.try_bundle(out) is True

    pip, compile_all = commands
    assert list(pip[:4]) == [sys.executable, "-m", "pip", "install"]
    # After pip, so the requirements are compiled too; hash-based, so the zip's file times cannot undo it.
    assert list(compile_all) == [
        "/opt/python3.13", "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", out
    ]  # fmt: skip


def test_without_the_runtime_python_the_bundle_says_it_ships_no_byte_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands: list[Sequence[str]] = []
    bundler = LocalPipBundler(
        source_dir=make_source(tmp_path),
        python_version="3.13",
        platform="manylinux2014_aarch64",
        runner=commands.append,
        find=lambda _: None,
    )

    assert bundler.try_bundle(str(tmp_path / "out")) is True

    assert len(commands) == 1
    assert "no Python 3.13 found" in capsys.readouterr().err


def test_find_python_answers_only_with_an_interpreter_of_that_version() -> None:
    this = "{}.{}".format(*sys.version_info[:2])
    found = find_python(this)
    assert found is not None
    assert find_python("2.99") is None


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


def test_the_real_bundle_ships_unchecked_byte_code_for_the_runtime(tmp_path: Path) -> None:
    # Lambda's /var/task is read-only: without byte code of the runtime's own version, every cold start compiles.
    version = RUNTIME.name.removeprefix("python")
    if find_python(version) is None:
        pytest.skip(f"no Python {version} on this machine to compile with")
    bundler = LocalPipBundler(source_dir=LAMBDA_SOURCE_DIR, python_version=version, platform=PIP_PLATFORM)
    assert bundler.try_bundle(str(tmp_path)) is True

    tag = "cpython-" + version.replace(".", "")
    sources = [p for p in tmp_path.rglob("*.py") if "aws_lambda_powertools" in p.parts or PACKAGE in p.parts]
    missing = [p for p in sources if not (p.parent / "__pycache__" / f"{p.stem}.{tag}.pyc").is_file()]
    assert sources and not missing, missing[:5]
    handler = tmp_path / PACKAGE / "handlers" / "__pycache__" / f"backup.{tag}.pyc"
    flags = int.from_bytes(handler.read_bytes()[4:8], "little")
    assert flags == 0b01  # hash-based, source never checked (PEP 552)
