"""Per-sample loss weights: none, or the study's group class weights w_g = N / (2 · n_g) (pure numpy/pandas).

Group DRO (`group_dro`) has no fixed weights: its per-group weights change every step (facebias.training.group_dro).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facebias.data.groups import GROUP_COLUMNS, group_keys
from facebias.options import WEIGHTINGS


def group_weights(train_attributes: pd.DataFrame, columns: Sequence[str] = GROUP_COLUMNS) -> dict[str, float]:
    """w_g = N / (2 · n_g) for every non-empty group (over `columns`) of the training split (docs/metrics.md)."""
    keys = group_keys(train_attributes, columns)
    counts = keys.value_counts()
    total = len(keys)
    return {str(group): total / (2.0 * count) for group, count in counts.items()}


def sample_weights(method: str, train_attributes: pd.DataFrame,
                   columns: Sequence[str] = GROUP_COLUMNS) -> np.ndarray | None:
    """Per-sample weights of the training split for a weighting method (WEIGHTINGS), or None when unweighted
    (`none`, and `group_dro`, whose weights are not fixed)."""
    if method in ("none", "group_dro"):
        return None
    if method == "group":
        weights = group_weights(train_attributes, columns)
        return group_keys(train_attributes, columns).map(weights).to_numpy(dtype=np.float32)
    raise ValueError(f"unknown weighting {method!r}; accepted: {list(WEIGHTINGS.names())}")
