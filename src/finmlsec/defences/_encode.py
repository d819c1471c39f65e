"""A numeric view of mixed tabular data for detectors (one-hot categoricals, scaled numbers).

Example:
    >>> import pandas as pd
    >>> from finmlsec.defences._encode import numeric_encoder
    >>> X = pd.DataFrame({"age": [20, 40], "job": ["clerk", "owner"]})
    >>> numeric_encoder(X).fit_transform(X).tolist()
    [[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]]
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def numeric_encoder(X: Any) -> Pipeline | ColumnTransformer:
    """An unfitted transformer turning ``X`` into a dense float matrix."""
    if isinstance(X, pd.DataFrame):
        cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        nums = [c for c in X.columns if c not in cats]
        return ColumnTransformer(
            [("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cats),
             ("num", StandardScaler(), nums)],
            sparse_threshold=0.0,
        )
    return make_pipeline(StandardScaler())
