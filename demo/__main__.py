"""`make demo` (or `python -m demo` from the repository root): a month of the real handler, locally."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT / "lambda_src", ROOT):  # the engine and tests/support, as the Makefile's PYTHONPATH has them
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from demo import scenario  # noqa: E402 - after the path set-up

# The function's environment first: Powertools reads part of it when the engine is imported.
os.environ.update(scenario.function_environment())

from demo.main import main  # noqa: E402

raise SystemExit(main())
