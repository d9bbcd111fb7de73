"""The study's group class weights w_g = N / (2 · n_g), per group and per training sample (pure numpy/pandas);
weighting=group (facebias.mitigations.group_weights) uses them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facebias.data.groups import GROUP_COLUMNS, group_keys


def group_weights(train_attributes: pd.DataFrame, columns: Sequence[str] = GROUP_COLUMNS) -> dict[str, float]:
    """w_g = N / (2 · n_g) for every non-empty group (over `columns`) of the training split (docs/metrics.md)."""
    return _weights_of(group_keys(train_attributes, columns))


def group_sample_weights(train_attributes: pd.DataFrame, columns: Sequence[str] = GROUP_COLUMNS) -> np.ndarray:
    """Each training sample's weight w_g of its group (`group_weights`), float32."""
    keys = group_keys(train_attributes, columns)
    return keys.map(_weights_of(keys)).to_numpy(dtype=np.float32)


def _weights_of(keys: pd.Series) -> dict[str, float]:
    """w_g = N / (2 · n_g) for every group key in `keys`."""
    total = len(keys)
    return {str(group): total / (2.0 * count) for group, count in keys.value_counts().items()}
