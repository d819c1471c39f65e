from __future__ import annotations

import subprocess
import sys

import finmlsec


def test_version_via_console_entry() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "finmlsec.cli.main", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"finmlsec {finmlsec.__version__}"
