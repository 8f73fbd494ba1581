"""The function's code asset, bundled on this machine without Docker.

The asset is the `snapshot_scheduler` package plus the pure-Python run-time requirements of
lambda_src/requirements.txt (Powertools, tzdata), installed for the Lambda platform by pip: the very pins
the tests run. boto3 comes from the Lambda runtime, so nothing compiled is bundled.

Byte code: /var/task is read-only, so a bundle without it makes every cold start compile Powertools (about
90 ms, 1.5x bare boto3 instead of 1.2x). When an interpreter of the runtime's version is found here, the
bundle is compiled with it, hash-based and unchecked (no source times, so the output is reproducible and a
zip's timestamps cannot invalidate it); otherwise the bundle ships without byte code and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import jsii
from aws_cdk import BundlingOptions, ILocalBundling
from aws_cdk import aws_lambda as lambda_

LAMBDA_SOURCE_DIR: Final = Path(__file__).resolve().parent.parent / "lambda_src"
PACKAGE: Final = "snapshot_scheduler"
REQUIREMENTS: Final = "requirements.txt"
# Never part of the asset (and never part of its hash): byte code and tool caches.
EXCLUDE: Final = ("**/__pycache__", "**/*.pyc", "**/.mypy_cache", "**/.pytest_cache")

Runner = Callable[[Sequence[str]], None]
Finder = Callable[[str], str | None]


def _run(command: Sequence[str]) -> None:
    subprocess.run(command, check=True)


def find_python(version: str) -> str | None:
    """An interpreter that runs as Python `version`: `python<version>` on PATH, else one installed by pyenv."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [
        shutil.which(f"python{version}"),
        *map(str, sorted(pyenv.glob(f"versions/{version}*/bin/python{version}"))),
    ]
    for candidate in filter(None, candidates):
        check = [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        try:
            answer = subprocess.run(check, capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return candidate
    return None


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """Copies the package and pip-installs its requirements for the function's platform."""

    def __init__(
        self,
        *,
        source_dir: Path,
        python_version: str,
        platform: str,
        runner: Runner = _run,
        find: Finder = find_python,
    ) -> None:
        self._source_dir = source_dir
        self._python_version = python_version
        self._platform = platform
        self._runner = runner
        self._find = find

    def pip_command(self, output_dir: str) -> list[str]:
        return [
            sys.executable, "-m", "pip", "install",
            "--requirement", str(self._source_dir / REQUIREMENTS),
            "--target", output_dir,
            "--no-deps", "--only-binary=:all:",
            "--platform", self._platform,
            "--python-version", self._python_version,
            "--implementation", "cp",
            "--no-compile", "--disable-pip-version-check", "--quiet",
        ]  # fmt: skip

    def compile_command(self, output_dir: str) -> list[str] | None:
        python = self._find(self._python_version)
        if python is None:
            return None
        return [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash", output_dir]

    def try_bundle(self, output_dir: str, *_options: Any, **_keywords: Any) -> bool:
        """Called by CDK (through jsii, with the BundlingOptions) before it would try Docker."""
        shutil.copytree(
            self._source_dir / PACKAGE,
            Path(output_dir) / PACKAGE,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            dirs_exist_ok=True,
        )
        self._runner(self.pip_command(output_dir))
        compile_command = self.compile_command(output_dir)
        if compile_command is None:
            print(
                f"snapshot-scheduler: no Python {self._python_version} found (python{self._python_version} on PATH "
                "or under pyenv): the function's asset ships without byte code, so each cold start compiles it "
                "(about 90 ms more)",
                file=sys.stderr,
            )
        else:
            self._runner(compile_command)
        return True


def function_code(*, runtime: lambda_.Runtime, platform: str, source_dir: Path = LAMBDA_SOURCE_DIR) -> lambda_.Code:
    """lambda_src/ as a bundled asset. Bundling is skipped (the directory is staged as is) when the
    `aws:cdk:bundling-stacks` context excludes the stack, as the unit tests do."""
    python_version = runtime.name.removeprefix("python")
    return lambda_.Code.from_asset(
        str(source_dir),
        exclude=list(EXCLUDE),
        bundling=BundlingOptions(
            # Never pulled: local bundling succeeds or raises, so CDK never falls back to Docker.
            image=runtime.bundling_image,
            local=LocalPipBundler(source_dir=source_dir, python_version=python_version, platform=platform),
        ),
    )
