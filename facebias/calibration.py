"""Post-hoc group-offset calibration (calibration=group_offset): fit per-group offsets, subtract them (pure).

A cell is one combination of the calibration attributes. Its raw offset is its mean residual, predicted − true age
in years, over the samples the offsets are fitted on; its offset is that mean shrunk toward 0 by empirical Bayes
(`shrink_factors`), and 0 for a cell with fewer than `min_count` samples. A calibrated prediction is the prediction
minus its cell's offset (0 for a cell without one).

Scoring offsets on the samples they were fitted on is optimistic, so `cross_fitted` corrects each of K folds with
offsets fitted on the other K − 1 (`fold_assignment` says which sample is in which fold). The fitted offsets are a
small JSON-friendly record (`GroupOffsets.to_dict`), the run's artifact calibration_offsets.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from facebias.data.groups import group_keys


@dataclass(frozen=True)
class GroupOffsets:
    """Per-cell offsets in years (cell key 'female|asian|happy' → offset) over `attributes`, with each cell's count
    and raw mean residual, and the variances the shrinkage used (σ² within cells, τ² between them)."""

    attributes: tuple[str, ...]
    offsets: dict[str, float]
    counts: dict[str, int]
    raw_means: dict[str, float] = field(default_factory=dict)
    within_variance: float | None = None
    between_variance: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "attributes": list(self.attributes),
            "unit": "years",
            "offsets": dict(self.offsets),
            "counts": dict(self.counts),
            "cells": [{"group": key, "n": self.counts.get(key, 0), "raw_mean_residual": self.raw_means.get(key),
                       "offset": value} for key, value in self.offsets.items()],
            "within_variance": self.within_variance,
            "between_variance": self.between_variance,
        }

    @classmethod
    def from_dict(cls, record: dict) -> GroupOffsets:
        cells = record.get("cells", [])
        return cls(
            tuple(record["attributes"]),
            {k: float(v) for k, v in record["offsets"].items()},
            {k: int(v) for k, v in record.get("counts", {}).items()},
            {cell["group"]: float(cell["raw_mean_residual"]) for cell in cells
             if cell.get("raw_mean_residual") is not None},
            record.get("within_variance"),
            record.get("between_variance"),
        )


def shrink_factors(counts: np.ndarray, means: np.ndarray, within_variance: float) -> tuple[np.ndarray, float]:
    """Empirical-Bayes factors n_g / (n_g + σ²/τ²) by which each cell's mean residual is multiplied, and τ².

    Model: a cell's true offset θ_g ~ N(0, τ²) and its mean residual m_g ~ N(θ_g, σ²/n_g), so E[m_g²] = τ² + σ²/n_g
    and the method-of-moments τ² = mean_g(m_g² − σ²/n_g), clamped at 0. τ² = 0: every factor is 0 (no evidence of
    any offset); σ² = 0 with τ² > 0: every factor is 1.
    """
    counts, means = np.asarray(counts, dtype=float), np.asarray(means, dtype=float)
    if len(counts) == 0:
        return np.zeros(0), 0.0
    between = max(0.0, float(np.mean(means ** 2 - within_variance / counts)))
    if between == 0.0:
        return np.zeros(len(counts)), 0.0
    return counts / (counts + within_variance / between), between


def fit_group_offsets(
    ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame, columns: Sequence[str],
    shrinkage: bool = True, min_count: int = 5,
) -> GroupOffsets:
    """Each cell's offset on the given (validation) samples: its mean residual (predicted − true, years), shrunk
    toward 0 when `shrinkage`, and 0 for a cell of fewer than `min_count` samples.

    σ² is the pooled within-cell variance of the residuals over the cells of at least `min_count` samples,
    Σ_g Σ_i (r_i − m_g)² / (N − G) (0 when N = G); τ² and the factors are `shrink_factors`' over those cells.
    """
    residuals = pd.Series(np.asarray(predicted, dtype=float) - np.asarray(ages, dtype=float))
    keys = group_keys(attributes.reset_index(drop=True), columns).to_numpy()
    by_group = residuals.groupby(keys)
    means, counts = by_group.mean(), by_group.size()
    kept = counts[counts >= min_count].index
    deviations = residuals - by_group.transform("mean")
    in_kept = pd.Series(keys).isin(kept).to_numpy()
    degrees = int(counts[kept].sum()) - len(kept)
    within = float((deviations[in_kept] ** 2).sum() / degrees) if degrees > 0 else 0.0
    factors, between = (shrink_factors(counts[kept].to_numpy(), means[kept].to_numpy(), within) if shrinkage
                        else (np.ones(len(kept)), None))
    shrunk = dict(zip(kept, means[kept].to_numpy() * factors, strict=True))
    return GroupOffsets(
        tuple(columns),
        {str(k): float(shrunk.get(k, 0.0)) for k in means.index},
        {str(k): int(v) for k, v in counts.items()},
        {str(k): float(v) for k, v in means.items()},
        within if shrinkage else None,
        between,
    )


def apply_group_offsets(predicted: np.ndarray, attributes: pd.DataFrame, offsets: GroupOffsets) -> np.ndarray:
    """Predictions minus their cell's offset (0 for a cell without one)."""
    keys = group_keys(attributes.reset_index(drop=True), offsets.attributes)
    correction = keys.map(offsets.offsets).fillna(0.0).to_numpy(dtype=float)
    return np.asarray(predicted, dtype=float) - correction


def fold_assignment(count: int, folds: int, seed: int) -> np.ndarray:
    """Each of `count` samples' fold in 0 … K − 1 (K = min(folds, count)): the samples in the order of
    `np.random.default_rng(seed).permutation(count)` are dealt to the folds in turn, so fold sizes differ by ≤ 1."""
    assignment = np.empty(count, dtype=int)
    assignment[np.random.default_rng(seed).permutation(count)] = np.arange(count) % max(1, min(folds, count))
    return assignment


def cross_fitted(
    ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame, columns: Sequence[str], folds: int,
    seed: int, shrinkage: bool = True, min_count: int = 5,
) -> np.ndarray:
    """Calibrated predictions in which every sample's offset was fitted without it: the samples of each fold
    (`fold_assignment`) minus the offsets `fit_group_offsets` fits on the other folds."""
    ages, predicted = np.asarray(ages, dtype=float), np.asarray(predicted, dtype=float)
    attributes = attributes.reset_index(drop=True)
    assignment = fold_assignment(len(ages), folds, seed)
    corrected = predicted.copy()
    for fold in np.unique(assignment):
        held, rest = assignment == fold, assignment != fold
        if not rest.any():
            continue
        offsets = fit_group_offsets(ages[rest], predicted[rest], attributes[rest], columns, shrinkage, min_count)
        corrected[held] = apply_group_offsets(predicted[held], attributes[held], offsets)
    return corrected
