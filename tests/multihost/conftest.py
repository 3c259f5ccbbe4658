"""The multi-host test (run by hand, as root):

    .venv/bin/python -m pytest tests/multihost -q

It uses the integration suite's helpers (support.py, frontends.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "integration"))
