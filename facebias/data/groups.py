"""Groups of samples: each sample's combination of attributes (by default gender, ethnicity, age group and
expression), as one key or as a small integer code (pure pandas)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from facebias.config.mitigation import GROUPING_COLUMNS

GROUP_COLUMNS: tuple[str, ...] = GROUPING_COLUMNS
"""One weighting group = one (gender, ethnicity, age group, expression) combination: 2·3·4·4 = 96 possible."""


def group_keys(attributes: pd.DataFrame, columns: Sequence[str] = GROUP_COLUMNS) -> pd.Series:
    """The group key of each row over `columns`, e.g. 'female|asian|20-39|happy'."""
    missing = [c for c in columns if c not in attributes.columns]
    if missing:
        raise ValueError(f"attributes lack the column(s) {missing} needed for group weights")
    if not columns:
        raise ValueError("group keys need at least one attribute column")
    text = attributes[list(columns)].astype(str)
    return text.iloc[:, 0].str.cat(text.iloc[:, 1:], sep="|").rename(None)


def group_codes(attributes: pd.DataFrame, columns: Sequence[str] = GROUP_COLUMNS) -> tuple[np.ndarray, list[str]]:
    """Each row's group as an index into the sorted list of the non-empty groups' keys; returns (codes, keys)."""
    keys = group_keys(attributes, columns)
    names = sorted(keys.unique())
    lookup = {name: code for code, name in enumerate(names)}
    return keys.map(lookup).to_numpy(dtype=np.int32), names
