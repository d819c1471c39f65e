"""The core install's tests (tests/lean/) pass with every optional dependency hidden from the
interpreter, as in ``pip install finmlsec`` with no extras: the defences import and fit without
them, and what needs one names its extra. (.ci/run also runs them in a venv with the core only.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_core_install_tests_pass_with_the_extras_hidden() -> None:
    env = {**os.environ, "FINMLSEC_TEST_HIDE_EXTRAS": "1"}
    # the plugins that import an extra (psycopg, redis) at start-up stay out of this run
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-p", "no:pytest_postgresql", "-p", "no:pytest_redis", "-p", "no:xdist",
                          "tests/lean"], capture_output=True, text=True, env=env, timeout=900,
                         cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and " failed" not in res.stdout and "skipped" not in res.stdout
