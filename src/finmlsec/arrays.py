"""Rows of the inputs models take, whatever their container: a pandas DataFrame (records), a
numpy array or scipy sparse matrix (images, matrices) or a list of str (texts).

Example:
    >>> import pandas as pd
    >>> X = pd.DataFrame({"age": [30, 40, 50]})
    >>> take_rows(X, [2, 0]).to_dict("list")
    {'age': [50, 30]}
    >>> concat_rows(["a"], ["b", "c"])
    ['a', 'b', 'c']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp


def take_rows(X: Any, idx: Sequence[int] | np.ndarray) -> Any:
    """The rows ``idx`` of ``X``, in that order, in ``X``'s container (a DataFrame with a fresh
    0..n-1 index; a list for a list or tuple)."""
    if isinstance(X, pd.DataFrame):
        return X.iloc[np.asarray(idx, dtype=np.intp)].reset_index(drop=True)
    if isinstance(X, list | tuple):
        return [X[int(i)] for i in idx]
    if sp.issparse(X):
        return X[np.asarray(idx, dtype=np.intp)]
    return np.asarray(X)[np.asarray(idx, dtype=np.intp)]


def concat_rows(*parts: Any, cast: bool = False) -> Any:
    """The rows of ``parts`` one after the other, in the first part's container. ``cast``: give
    every DataFrame part the first one's column dtypes (generated rows of the same fields)."""
    first = parts[0]
    if isinstance(first, pd.DataFrame):
        dtypes = first.dtypes.to_dict()
        frames = [first, *(p.astype(dtypes) if cast else p for p in parts[1:])]
        return pd.concat(frames, ignore_index=True)
    if isinstance(first, list | tuple):
        return [row for p in parts for row in p]
    if sp.issparse(first):
        return sp.vstack(parts, format=first.format)
    return np.concatenate([np.asarray(p) for p in parts])
