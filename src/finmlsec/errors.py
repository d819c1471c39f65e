"""Errors raised by finmlsec.

Every failure the library can report on purpose is a :class:`FinmlsecError`. The command line maps
them to exit code 2 and one line of text; anything else is a bug.

Tree::

    FinmlsecError
    ├── SpecError              the YAML system description is malformed or inconsistent
    ├── ConfigError            a parameter or setting has a bad value (scikit-learn wording)
    ├── DataError              data does not match its feature schema (missing columns, NaN, range)
    ├── TargetError            a model cannot be loaded or queried
    │   └── UntrustedFileError a pickle/joblib file was refused because it is not marked trusted
    ├── CapabilityError        an attack needs an access the oracle does not give (e.g. probabilities)
    ├── BudgetExceededError    an oracle's query budget is exhausted
    ├── RegistryError          an unknown attack/defence/... name
    ├── StoreError             the result store cannot be opened, migrated or written
    ├── AuditError             the audit chain is broken (tampering detected)
    └── MissingExtraError      an optional dependency is not installed (names the pip extra)

Messages say what was wrong, the value received and what to do.
"""

from __future__ import annotations


class FinmlsecError(Exception):
    """Base class of every error finmlsec raises on purpose."""


class SpecError(FinmlsecError):
    """The system description (YAML) is invalid; the message names the YAML path."""

    def __init__(self, message: str, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(FinmlsecError, ValueError):
    """A parameter has a bad value."""


class DataError(FinmlsecError, ValueError):
    """Data does not satisfy its feature schema."""


class TargetError(FinmlsecError):
    """A model (target) cannot be loaded or queried."""


class UntrustedFileError(TargetError):
    """A file format that executes code on load (pickle, joblib) was refused."""


class CapabilityError(FinmlsecError):
    """An attack or defence needs an access level the target/oracle does not provide."""


class BudgetExceededError(FinmlsecError):
    """The query budget of an oracle is exhausted."""

    def __init__(self, message: str, used: int = 0, budget: int = 0) -> None:
        self.used = used
        self.budget = budget
        super().__init__(message)


class RegistryError(FinmlsecError, KeyError):
    """An unknown name was looked up in a registry."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class StoreError(FinmlsecError):
    """The result store failed."""


class AuditError(FinmlsecError):
    """The audit log's hash chain does not verify."""


class MissingExtraError(FinmlsecError, ImportError):
    """A feature needs an optional dependency that is not installed; the message names the extra
    (``pip install 'finmlsec[scan]'``)."""


__all__ = [
    "AuditError",
    "BudgetExceededError",
    "CapabilityError",
    "ConfigError",
    "DataError",
    "FinmlsecError",
    "MissingExtraError",
    "RegistryError",
    "SpecError",
    "StoreError",
    "TargetError",
    "UntrustedFileError",
]
