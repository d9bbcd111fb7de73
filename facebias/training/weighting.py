"""Per-sample loss weights: none, or the study's group class weights w_g = N / (2 · n_g) (pure numpy/pandas)."""

from __future__ import annotations

import numpy as np
import pandas as pd

GROUP_COLUMNS: tuple[str, ...] = ("gender", "ethnicity", "age_group", "expression")
"""One weighting group = one (gender, ethnicity, age group, expression) combination: 2·3·4·4 = 96 possible."""

WEIGHTINGS: tuple[str, ...] = ("none", "group")


def group_keys(attributes: pd.DataFrame) -> pd.Series:
    """The weighting-group key of each row, e.g. 'female|asian|20-39|happy'."""
    missing = [c for c in GROUP_COLUMNS if c not in attributes.columns]
    if missing:
        raise ValueError(f"attributes lack the column(s) {missing} needed for group weights")
    return attributes[list(GROUP_COLUMNS)].astype(str).agg("|".join, axis=1)


def group_weights(train_attributes: pd.DataFrame) -> dict[str, float]:
    """w_g = N / (2 · n_g) for every non-empty group of the training split (SPEC.md)."""
    keys = group_keys(train_attributes)
    counts = keys.value_counts()
    total = len(keys)
    return {str(group): total / (2.0 * count) for group, count in counts.items()}


def sample_weights(method: str, train_attributes: pd.DataFrame) -> np.ndarray | None:
    """Per-sample weights of the training split for a weighting method, or None when unweighted."""
    if method == "none":
        return None
    if method == "group":
        weights = group_weights(train_attributes)
        return group_keys(train_attributes).map(weights).to_numpy(dtype=np.float32)
    raise ValueError(f"unknown weighting {method!r}; accepted: {list(WEIGHTINGS)}")
