"""How the reports write numbers: never ``-0.000``, counts as integers, a figure just under a risk
threshold never rounded up onto it, negative accuracy costs said in words.

Example:
    >>> num(-0.0000001), metric("queries", 49.0), metric("auc", 0.81234)
    ('0.000', '49', '0.812')
    >>> success(0.04999999999999999, {"high": 0.5, "medium": 0.2, "low": 0.05})
    '< 0.050'
    >>> cost(-0.032)
    '-0.032 (accuracy rose)'
"""

from __future__ import annotations

from typing import Any

LEVELS = ("none", "low", "medium", "high")

_COUNTS = ("queries", "dim", "budget", "rounds", "round", "records", "members", "nonmembers",
           "flipped", "leaves", "victims", "teachers", "k", "count", "fidelity_lift_b",
           "fidelity_lift_c")


def num(value: Any, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals; ``n/a`` for None; a negative zero is ``0.000``."""
    if value is None:
        return "n/a"
    text = f"{float(value):.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def is_count(key: str) -> bool:
    """Whether a metric named ``key`` counts things (shown as an integer)."""
    k = key.lower()
    return k.startswith("n_") or k in _COUNTS or k.endswith(("_queries", "_count", "_budget"))


def metric(key: str, value: Any) -> str:
    """One metric value: counts as integers with thousands separators, others as :func:`num`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if is_count(key) and float(value).is_integer():
        return f"{int(value):,}"
    return num(value)


def success(value: Any, thresholds: dict[str, float] | None = None) -> str:
    """An attack's success; a value under a risk threshold that 3 decimals would round onto it
    is written ``< threshold`` so the figure agrees with its level."""
    if value is None:
        return "n/a"
    v = float(value)
    for t in sorted((thresholds or {}).values()):
        if v < t and round(v, 3) >= t:
            return f"< {t:.3f}"
    return num(v)


def cost(value: Any, metric: str = "accuracy") -> str:
    """A utility cost (the drop of ``metric``); a negative one (the countermeasure raised the
    held-out figure, usually within noise) says so."""
    if value is None:
        return "n/a"
    text = num(value)
    return f"{text} ({metric.replace('_', ' ')} rose)" if float(text) < 0 else text


def pct(value: Any) -> str:
    """A share in [0, 1] as a whole percentage (``88%``); ``n/a`` for None."""
    if value is None:
        return "n/a"
    return f"{100 * float(value):.0f}%"
