"""Every docstring example in src/finmlsec runs as a test."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import finmlsec

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(finmlsec.__path__, prefix="finmlsec.")
    # Alembic's env.py only runs inside an Alembic migration context
    if not m.name.endswith("__main__") and ".migrations" not in m.name
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
