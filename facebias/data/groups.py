"""Weighting groups: each sample's (gender, ethnicity, age group, expression) combination, as one key (pure pandas)."""

from __future__ import annotations

import pandas as pd

GROUP_COLUMNS: tuple[str, ...] = ("gender", "ethnicity", "age_group", "expression")
"""One weighting group = one (gender, ethnicity, age group, expression) combination: 2·3·4·4 = 96 possible."""


def group_keys(attributes: pd.DataFrame) -> pd.Series:
    """The weighting-group key of each row, e.g. 'female|asian|20-39|happy'."""
    missing = [c for c in GROUP_COLUMNS if c not in attributes.columns]
    if missing:
        raise ValueError(f"attributes lack the column(s) {missing} needed for group weights")
    return attributes[list(GROUP_COLUMNS)].astype(str).agg("|".join, axis=1)
