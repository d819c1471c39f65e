"""Choices of command-line arguments, generated from where the things they name are defined, so
that adding a use case changes no command.

Example:
    >>> [u.value for u in UseCaseName]
    ['chatbot', 'credit-scoring', 'fraud', 'market-anomaly', 'ocr']
"""

from __future__ import annotations

from enum import StrEnum
from importlib import resources


def usecase_names() -> list[str]:
    """The shipped use cases: one spec file each in ``finmlsec/usecases/specs`` (read without
    importing the use cases, which would load their data and libraries)."""
    specs = resources.files("finmlsec").joinpath("usecases", "specs")
    return sorted(p.name.removesuffix(".yaml") for p in specs.iterdir()
                  if p.name.endswith(".yaml"))


UseCaseName = StrEnum("UseCaseName", [(n, n) for n in usecase_names()])  # type: ignore[misc]
