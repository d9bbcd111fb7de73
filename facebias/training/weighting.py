"""Per-sample loss weights: none, or the study's group class weights w_g = N / (2 · n_g) (pure numpy/pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from facebias.data.groups import group_keys
from facebias.options import WEIGHTINGS


def group_weights(train_attributes: pd.DataFrame) -> dict[str, float]:
    """w_g = N / (2 · n_g) for every non-empty group of the training split (docs/metrics.md)."""
    keys = group_keys(train_attributes)
    counts = keys.value_counts()
    total = len(keys)
    return {str(group): total / (2.0 * count) for group, count in counts.items()}


def sample_weights(method: str, train_attributes: pd.DataFrame) -> np.ndarray | None:
    """Per-sample weights of the training split for a weighting method (WEIGHTINGS), or None when unweighted."""
    if method == "none":
        return None
    if method == "group":
        weights = group_weights(train_attributes)
        return group_keys(train_attributes).map(weights).to_numpy(dtype=np.float32)
    raise ValueError(f"unknown weighting {method!r}; accepted: {list(WEIGHTINGS.names())}")
