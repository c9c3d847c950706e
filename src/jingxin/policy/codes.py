"""Dense integer codes for the batch form: hash-based, in one pass.

``np.unique(..., return_inverse=True)`` sorts; the batch form only needs "same value, same
code", which pandas' hash factorisation gives in linear time. Codes follow first
appearance, so :func:`first_occurrences` also tells which row saw a value first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code of each value, the distinct values) for a 1-D integer array."""
    codes, uniques = pd.factorize(values, sort=False)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def first_occurrences(values: np.ndarray) -> np.ndarray:
    """Positions at which each distinct value appears for the first time."""
    return np.flatnonzero(~pd.Series(values).duplicated().to_numpy())
