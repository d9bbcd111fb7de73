"""Evaluate predictions of a split: metrics with their uncertainty, per-group table and predictions (no TF)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from facebias.config import StatisticsConfig
from facebias.metrics import (
    BIAS_ATTRIBUTES,
    DebiasedScore,
    NullResult,
    bias_scores,
    group_mae_table,
    permutation_null,
    score_uncertainty,
)

MEAN_BIAS = "mean_bias"
"""The mean of a split's four bias scores (years): one number for how unequal the errors are across groups."""


@dataclass(frozen=True)
class SplitEvaluation:
    """Everything computed for one evaluated split."""

    split: str
    scores: dict[str, float]
    groups: pd.DataFrame
    predictions: pd.DataFrame
    warnings: list[str]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    nulls: dict[str, NullResult] = field(default_factory=dict)
    debiased: dict[str, DebiasedScore] = field(default_factory=dict)

    def flat_metrics(self) -> dict[str, float]:
        """`{split}/mae`, `{split}/age_bias`, …, their `_ci_low`/`_ci_high`, each bias's `_null` and `_p`, each
        de-biased score `{split}/<bias>_debiased` with its `_ci_low`/`_ci_high`,
        `{split}/mean_bias` (the mean of the four bias scores: the bias objective of a Pareto search), and
        per-group `{split}/mae_by_{attribute}/{group}` and counts.

        Empty groups log their count (0) but no MAE, so MLflow never receives a NaN.
        """
        metrics = {f"{self.split}/{name}": value for name, value in self.scores.items()}
        if all(name in self.scores for name in BIAS_ATTRIBUTES):
            metrics[f"{self.split}/{MEAN_BIAS}"] = float(np.mean([self.scores[name] for name in BIAS_ATTRIBUTES]))
        for name, (low, high) in self.intervals.items():
            metrics[f"{self.split}/{name}_ci_low"] = low
            metrics[f"{self.split}/{name}_ci_high"] = high
        for name, result in self.debiased.items():
            metrics[f"{self.split}/{name}"] = result.estimate
            metrics[f"{self.split}/{name}_ci_low"] = result.low
            metrics[f"{self.split}/{name}_ci_high"] = result.high
        for name, null in self.nulls.items():
            metrics[f"{self.split}/{name}_null"] = null.null
            metrics[f"{self.split}/{name}_p"] = null.p
        for row in self.groups.itertuples(index=False):
            group = row.group.replace("<", "lt").replace(">=", "ge")
            metrics[f"{self.split}/count_by_{row.attribute}/{group}"] = float(row.count)
            if row.count:
                metrics[f"{self.split}/mae_by_{row.attribute}/{group}"] = float(row.mae)
        return metrics


def evaluate_split(split: str, ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame,
                   statistics: StatisticsConfig | None = None) -> SplitEvaluation:
    """MAE, bias scores and per-group MAE of apparent ages `predicted` vs. `ages` (years); with `statistics`, also
    the interval of every score, the de-biased bias scores with theirs, and the permutation test of every bias."""
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
    intervals: dict[str, tuple[float, float]] = {}
    nulls: dict[str, NullResult] = {}
    debiased: dict[str, DebiasedScore] = {}
    if statistics is not None:
        intervals, debiased = score_uncertainty(ages, predicted, attributes, n_resamples=statistics.bootstrap_resamples,
                                                level=statistics.level, seed=statistics.seed)
        nulls = permutation_null(ages, predicted, attributes, n_permutations=statistics.permutations,
                                 seed=statistics.seed)
    return SplitEvaluation(split=split, scores=scores, groups=groups, predictions=predictions, warnings=messages,
                           intervals=intervals, nulls=nulls, debiased=debiased)
