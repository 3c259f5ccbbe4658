"""The multi-host test (as root; tests/run.sh runs it after the integration suite):

    .venv/bin/python -m pytest tests/multihost -q

It uses the integration suite's helpers (support.py, frontends.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
