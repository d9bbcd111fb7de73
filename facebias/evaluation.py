"""Evaluate predictions of a split: metrics, per-group table and the per-sample predictions frame (no TF)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebias.metrics import bias_scores, group_mae_table


@dataclass(frozen=True)
class SplitEvaluation:
    """Everything computed for one evaluated split."""

    split: str
    scores: dict[str, float]
    groups: pd.DataFrame
    predictions: pd.DataFrame
    warnings: list[str]

    def flat_metrics(self) -> dict[str, float]:
        """`{split}/mae`, `{split}/age_bias`, …, and per-group `{split}/mae_by_{attribute}/{group}` and counts.

        Empty groups log their count (0) but no MAE, so MLflow never receives a NaN.
        """
        metrics = {f"{self.split}/{name}": value for name, value in self.scores.items()}
        for row in self.groups.itertuples(index=False):
            group = row.group.replace("<", "lt").replace(">=", "ge")
            metrics[f"{self.split}/count_by_{row.attribute}/{group}"] = float(row.count)
            if row.count:
                metrics[f"{self.split}/mae_by_{row.attribute}/{group}"] = float(row.mae)
        return metrics


def evaluate_split(split: str, ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> SplitEvaluation:
    """MAE, bias scores and per-group MAE of apparent ages `predicted` vs. `ages` (years)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = bias_scores(ages, predicted, attributes)
    groups = group_mae_table(ages, predicted, attributes)
    predictions = attributes.reset_index(drop=True).copy()
    predictions.insert(0, "apparent_age", np.asarray(ages, dtype=float))
    predictions.insert(1, "predicted_age", np.asarray(predicted, dtype=float))
    predictions.insert(2, "abs_error", np.abs(predictions["predicted_age"] - predictions["apparent_age"]))
    messages = [f"{split}: {w.message}" for w in caught]
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return SplitEvaluation(split=split, scores=scores, groups=groups, predictions=predictions, warnings=messages)
