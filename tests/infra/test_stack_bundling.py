"""The function's code asset is built on this machine, without Docker."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

from infra.bundling import EXCLUDE, LocalPipBundler


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
