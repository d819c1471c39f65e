"""The paper's use cases as runnable builds: a real model on real or realistic data, saved safely,
with a spec (the paper's roles for the use case), data splits and a model card.

======================= ============================ ============================================
name                    paper (section IV.B)         models
======================= ============================ ============================================
``credit-scoring``      credit scoring, type 3       gradient boosting, logistic regression
``fraud``               anomaly detection, type 7    gradient boosting, isolation forest
``market-anomaly``      anomaly detection, type 10   gradient boosting, isolation forest
``chatbot``             chatbot, type 4              TF-IDF + logistic regression
``ocr``                 office work via MLaaS, 7     small CNN (torch), MLP (scikit-learn)
======================= ============================ ============================================

Example:
    >>> from finmlsec.usecases import USECASES
    >>> USECASES.names()
    ['chatbot', 'credit-scoring', 'fraud', 'market-anomaly', 'ocr']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from finmlsec.registry import Registry
from finmlsec.usecases import chatbot, credit_scoring, fraud, market_anomaly, ocr
from finmlsec.usecases.base import BuildResult, ModelInfo

#: use-case name -> build(out, *, seed) function
USECASES: Registry[Callable[..., BuildResult]] = Registry("use case")
for _module in (credit_scoring, fraud, market_anomaly, chatbot, ocr):
    USECASES.register(_module.NAME)(_module.build)


def build(name: str, out: str | Path, *, seed: int = 0) -> BuildResult:
    """Build use case ``name`` into the directory ``out`` (created if needed).

    BLAS/OpenMP pools are limited to one thread: on a shared machine, over-subscribed thread
    pools make scikit-learn's gradient boosting and MLP ten times slower.
    """
    from threadpoolctl import threadpool_limits

    builder = USECASES.get(name)
    with threadpool_limits(1):
        return builder(Path(out), seed=seed)


def build_at_scale(name: str, out: str | Path, *, rows: int, seed: int = 0,
                   sample: int = fraud.SCAN_SAMPLE) -> BuildResult:
    """Build use case ``name`` on ``rows`` simulated records in Parquet (the fraud use case
    only: :func:`finmlsec.usecases.fraud.build_at_scale`), with one-thread pools."""
    from threadpoolctl import threadpool_limits

    from finmlsec.errors import ConfigError

    USECASES.get(name)
    if name != fraud.NAME:
        raise ConfigError(f"--rows builds the {fraud.NAME!r} use case at scale (its simulator "
                          f"writes Parquet in parts); {name!r} has fixed data, leave --rows out")
    with threadpool_limits(1):
        return fraud.build_at_scale(Path(out), rows=rows, seed=seed, sample=sample)


__all__ = ["USECASES", "BuildResult", "ModelInfo", "build", "build_at_scale"]
