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


def test_python_dash_m_finmlsec_is_the_same_command_line(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "finmlsec", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"finmlsec {finmlsec.__version__}"
    bad = subprocess.run([sys.executable, "-m", "finmlsec", "analyze", str(tmp_path / "no.yaml")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
