"""A short soak (scripts/soak.py): serving under 16 clients while imports run and are killed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import SHARED

ROOT = Path(__file__).resolve().parent.parent


def test_a_short_soak_ends_with_no_errors_and_everything_in_agreement() -> None:
    env = {**os.environ, "NIVL_SHARED_DATA": str(SHARED)}
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "soak.py"),
            "--seconds",
            "30",
            "--kill-every",
            "10",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    figures = json.loads(done.stdout)
    assert done.returncode == 0, figures
    assert figures["kills"] >= 2 and figures["imports"] >= 2 and figures["requests"] > 100
    assert figures["errors"] == figures["inconsistent"] == 0
    assert figures["leftover_processes"] == [] and figures["integrity"] == "ok"
    assert figures["records"] == figures["indexed"] and figures["index_agrees"]
