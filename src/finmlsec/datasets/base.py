"""A dataset: inputs, integer labels, a feature schema and where the data came from.

Loaders register in :data:`DATASETS` (name -> zero-argument-or-keyword callable returning a
:class:`Dataset`); :func:`load` looks one up. Nothing is downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from finmlsec.arrays import take_rows
from finmlsec.errors import ConfigError
from finmlsec.registry import Registry
from finmlsec.schema import FeatureSchema, InputKind


@dataclass(frozen=True)
class Dataset:
    """Inputs ``X`` (DataFrame for tabular, list of str for text, array for images), labels ``y``
    (ints indexing ``classes``), the schema, and provenance."""

    name: str
    X: Any
    y: np.ndarray
    classes: tuple[str, ...]
    kind: InputKind = "tabular"
    schema: FeatureSchema | None = None
    task: Literal["classification", "anomaly"] = "classification"
    description: str = ""
    source: str = ""
    license: str = ""
    citation: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Dataset:
        """The rows ``idx`` (order kept), as a new Dataset with the same metadata."""
        idx = np.asarray(idx)
        return replace(self, X=take_rows(self.X, idx), y=self.y[idx])

    def split(
        self, test_size: float | int = 0.3, *, seed: int = 0, stratify: bool = True
    ) -> tuple[Dataset, Dataset]:
        """A seeded (train, test) split, stratified by label by default."""
        from sklearn.model_selection import train_test_split

        if isinstance(test_size, float) and not 0.0 < test_size < 1.0:
            raise ConfigError(
                f"The 'test_size' parameter of Dataset.split must be a float in (0, 1) or an int. "
                f"Got {test_size!r} instead."
            )
        idx = np.arange(len(self))
        tr, te = train_test_split(
            idx, test_size=test_size, random_state=seed, stratify=self.y if stratify else None
        )
        return self.subset(np.sort(tr)), self.subset(np.sort(te))


DatasetLoader = Callable[..., Dataset]
DATASETS: Registry[DatasetLoader] = Registry("dataset")


def load(name: str, **kwargs: Any) -> Dataset:
    """Load a registered dataset by name (see ``finmlsec datasets list``); an unknown keyword
    raises :class:`ConfigError` listing the loader's parameters."""
    import inspect

    loader = DATASETS.get(name)
    params = inspect.signature(loader).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ConfigError(
                f"dataset {name!r} has no parameter(s) {unknown}; its parameters are "
                f"{sorted(params) or '(none)'}"
            )
    return loader(**kwargs)
