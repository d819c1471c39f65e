"""Parameter validation for defences and guards, with scikit-learn's wording and finmlsec's errors.

A component declares its parameters' constraints once, in a class-level
``_parameter_constraints`` mapping (a parameter name to a list of accepted forms: the constraint
objects below, or ``None`` when None is accepted), and :func:`validate_params` checks them all in
one place (``Defence.fit``, ``Guard``'s checks). The single checks (:func:`check_int`, ...) serve
helpers that are not registered components (detectors, transformers).

Example:
    >>> validate_params("RoundConfidence", {"decimals": 2}, {"decimals": [Int(0, 15)]})
    >>> validate_params("RoundConfidence", {"decimals": -1}, {"decimals": [Int(0, 15)]})
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: The 'decimals' parameter of RoundConfidence must be an int in [0, 15]. Got -1 instead.
    >>> validate_params("NoisyConfidence", {"seed": "a"}, {"seed": [Int(0), None]})
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: The 'seed' parameter of NoisyConfidence must be an int in [0, inf] or None. Got 'a' instead.
    >>> check_int("RoundConfidence", "decimals", 2, 0, 15)
    2
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from finmlsec.errors import ConfigError


def _bounds(lo: float | None, hi: float | None, closed_lo: bool = True) -> str:
    left = "[" if closed_lo else "("
    lo_s = "-inf" if lo is None else f"{lo:g}"
    hi_s = "inf" if hi is None else f"{hi:g}"
    return f"{left}{lo_s}, {hi_s}]"


@dataclass(frozen=True)
class Int:
    """An int (not a bool) in ``[lo, hi]`` (None: unbounded)."""

    lo: int | None = None
    hi: int | None = None

    def accepts(self, v: Any) -> bool:
        return (isinstance(v, numbers.Integral) and not isinstance(v, bool)
                and (self.lo is None or int(v) >= self.lo)
                and (self.hi is None or int(v) <= self.hi))

    def describe(self) -> str:
        return f"an int in {_bounds(self.lo, self.hi)}"


@dataclass(frozen=True)
class Float:
    """A real number (not a bool, not NaN) in ``[lo, hi]``, or ``(lo, hi]`` with
    ``closed_lo=False``."""

    lo: float | None = None
    hi: float | None = None
    closed_lo: bool = True

    def accepts(self, v: Any) -> bool:
        if not isinstance(v, numbers.Real) or isinstance(v, bool):
            return False
        f = float(v)
        return not (f != f or (self.lo is not None and (f < self.lo or (
            f == self.lo and not self.closed_lo))) or (self.hi is not None and f > self.hi))

    def describe(self) -> str:
        return f"a float in {_bounds(self.lo, self.hi, self.closed_lo)}"


@dataclass(frozen=True)
class OneOf:
    """One of the given values."""

    options: tuple[Any, ...]

    def accepts(self, v: Any) -> bool:
        try:
            return v in self.options
        except TypeError:  # an unhashable or incomparable value is not an option
            return False

    def describe(self) -> str:
        return f"one of {list(self.options)}"


@dataclass(frozen=True)
class Bool:
    """``True`` or ``False``."""

    def accepts(self, v: Any) -> bool:
        return isinstance(v, bool)

    def describe(self) -> str:
        return "a bool"


@dataclass(frozen=True)
class Satisfies:
    """Any value ``test`` accepts; ``text`` says what that is ("a non-empty dict")."""

    test: Callable[[Any], bool]
    text: str

    def accepts(self, v: Any) -> bool:
        try:
            return bool(self.test(v))
        except (TypeError, ValueError):
            return False

    def describe(self) -> str:
        return self.text


#: Any value: the parameter is checked where it is used (an estimator, a schema).
ANY = Satisfies(lambda v: True, "anything")


def check_value(owner: str, name: str, value: Any, forms: Sequence[Any]) -> Any:
    """``value`` if one of ``forms`` (constraints, or None for None) accepts it, else
    :class:`ConfigError` in scikit-learn's wording."""
    for form in forms:
        if (value is None) if form is None else form.accepts(value):
            return value
    what = " or ".join("None" if f is None else f.describe() for f in forms)
    raise ConfigError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r} instead.")


def validate_params(owner: str, params: Mapping[str, Any],
                    constraints: Mapping[str, Sequence[Any]]) -> None:
    """Check every parameter of ``params`` that ``constraints`` names (see the module docstring)."""
    for name, forms in constraints.items():
        if name in params:
            check_value(owner, name, params[name], forms)


def check_int(owner: str, name: str, value: Any, lo: int | None = None,
              hi: int | None = None) -> int:
    """``value`` as an int within ``[lo, hi]`` (None: unbounded), else :class:`ConfigError`."""
    return int(check_value(owner, name, value, [Int(lo, hi)]))


def check_float(owner: str, name: str, value: Any, lo: float | None = None,
                hi: float | None = None, *, closed_lo: bool = True) -> float:
    """``value`` as a float within the interval, else :class:`ConfigError`."""
    return float(check_value(owner, name, value, [Float(lo, hi, closed_lo)]))


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else :class:`ConfigError`."""
    return check_value(owner, name, value, [OneOf(tuple(choices))])
