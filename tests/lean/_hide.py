"""Hide the optional dependencies from this interpreter, as the core install lacks them: importing
one raises ModuleNotFoundError, as it would there. For the main suite's check of the lean tests;
in the core-only venv of .ci/run there is nothing to hide."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

ENV = "FINMLSEC_TEST_HIDE_EXTRAS"


class HideExtras(MetaPathFinder):
    def __init__(self, tops: set[str]) -> None:
        self.tops = tops

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.split(".")[0] in self.tops:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden)", name=fullname)
        return None


def hide_extras() -> None:
    from finmlsec.extras import EXTRAS

    loaded = sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS)
    if loaded:
        raise RuntimeError(f"cannot hide modules already imported: {loaded[:5]}")
    sys.meta_path.insert(0, HideExtras(set(EXTRAS)))
