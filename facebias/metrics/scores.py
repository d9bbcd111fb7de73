"""MAE, per-group MAE and the bias scores — pure numpy/pandas, no TensorFlow, no MLflow (docs/metrics.md).

Bias of an attribute = the mean, over all unordered pairs of its groups, of |MAE_i - MAE_j|. A group with
no sample in the evaluated split has no MAE: it is left out of the pairs with a warning (its count is 0 in
the per-group table). With fewer than two non-empty groups there is no pair and the bias is 0.0, with a warning.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facebias.vocab import VOCABULARIES, age_groups

BIAS_ATTRIBUTES: dict[str, str] = {
    "age_bias": "age_group",
    "gender_bias": "gender",
    "ethnicity_bias": "ethnicity",
    "expression_bias": "expression",
}
"""Bias score name → the attribute column whose groups it compares."""


class EmptyGroupWarning(UserWarning):
    """A group of an attribute has no sample in the evaluated split, or too few groups remain to pair."""


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean |y_pred - y_true| in the units given (years); an empty input is an error."""
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has shape {true.shape} but y_pred has shape {pred.shape}")
    if true.size == 0:
        raise ValueError("cannot compute an MAE over zero samples")
    return float(np.mean(np.abs(pred - true)))


def _with_age_group(y_true: np.ndarray, attributes: pd.DataFrame) -> pd.DataFrame:
    frame = attributes.reset_index(drop=True).copy()
    frame["age_group"] = age_groups(y_true)
    return frame


def group_mae_table(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame) -> pd.DataFrame:
    """Per-group MAE: one row per (attribute, group) of every vocabulary, with columns attribute, group, count, mae.

    Age groups are formed from the ground-truth ages. A group without samples has count 0 and mae NaN.
    """
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if len(attributes) != len(true) or len(pred) != len(true):
        raise ValueError(
            f"y_true ({len(true)}), y_pred ({len(pred)}) and attributes ({len(attributes)}) differ in length"
        )
    frame = _with_age_group(true, attributes)
    errors = np.abs(pred - true)
    rows = []
    for attribute, groups in VOCABULARIES.items():
        for group in groups:
            mask = (frame[attribute] == group).to_numpy()
            count = int(mask.sum())
            mae = float(errors[mask].mean()) if count else float("nan")
            rows.append({"attribute": attribute, "group": group, "count": count, "mae": mae})
    return pd.DataFrame(rows, columns=["attribute", "group", "count", "mae"])


def pairwise_bias(group_maes: dict[str, float], attribute: str = "attribute") -> float:
    """Mean over unordered pairs of non-empty groups of |MAE_i - MAE_j|; NaN entries are empty groups."""
    present = {g: m for g, m in group_maes.items() if not np.isnan(m)}
    absent = sorted(set(group_maes) - set(present))
    if absent:
        warnings.warn(
            f"{attribute}: no samples for group(s) {absent}; left out of the bias pairs", EmptyGroupWarning,
            stacklevel=2,
        )
    pairs = list(itertools.combinations(present.values(), 2))
    if not pairs:
        warnings.warn(
            f"{attribute}: fewer than two groups have samples, so its bias is reported as 0.0",
            EmptyGroupWarning, stacklevel=2,
        )
        return 0.0
    return float(np.mean([abs(a - b) for a, b in pairs]))


def bias_scores(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame) -> dict[str, float]:
    """MAE and the four bias scores (docs/metrics.md).

    `y_true`/`y_pred` are apparent ages in years; `attributes` has the columns gender, ethnicity, expression.
    Returns the keys mae, age_bias, gender_bias, ethnicity_bias, expression_bias.
    """
    table = group_mae_table(y_true, y_pred, attributes)
    scores = {"mae": mean_absolute_error(y_true, y_pred)}
    for score, attribute in BIAS_ATTRIBUTES.items():
        rows = table[table["attribute"] == attribute]
        scores[score] = pairwise_bias(dict(zip(rows["group"], rows["mae"], strict=True)), attribute)
    return scores
