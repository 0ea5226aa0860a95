"""docs/getting-started.md is what its commands print against an empty local control plane, today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_walkthrough_page_matches_what_the_commands_print() -> None:
    r = subprocess.run([sys.executable, str(REPO / "tools" / "walkthrough.py"), "--check"], capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, "docs/getting-started.md is stale (run: make docs):\n" + r.stderr[-4000:]
