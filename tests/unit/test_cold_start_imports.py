"""A source deployment's cold start does not load the vault role's code (bench: cold start within 1.3x)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_handler_module_loads_no_vault_module() -> None:
    probe = (
        "import sys; from snapshot_scheduler.handlers import backup; "
        "print(sorted(m for m in sys.modules if m.startswith('snapshot_scheduler.vault')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "lambda_src"), "POWERTOOLS_METRICS_NAMESPACE": "test"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "[]"
