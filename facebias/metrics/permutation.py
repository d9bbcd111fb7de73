"""Is a bias beyond noise? A studentized permutation test of equal group MAEs, and the noise floor (numpy only).

The errors of one split are shuffled across its images (every group keeps its size), `n_permutations` times.

- **Noise floor** (`null`): the mean kit score over the shuffles — the score errors that ignore the group would get.
  The printed reference, not the test.
- **Test**: the statistic is Welch's k-sample statistic T = Σ_g w_g (MAE_g − M)², w_g = n_g / s_g²,
  M = Σ w_g MAE_g / Σ w_g (groups with at least two images). Because T is studentized, permuting it tests
  *equal MAE* — not the stronger "errors independent of the group" that an unstudentized statistic tests, which
  also rejects when a group's errors are only more spread out (Chung & Romano, "Exact and asymptotically robust
  permutation tests", Annals of Statistics 2013). p = (1 + #shuffles with T ≥ the observed T) / (1 + shuffles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facebias.metrics.uncertainty import CHUNK, errors_by_group, group_sums, pair_mean_gap

NOISE_ALPHA = 0.05
"""A bias whose p-value is at least this is reported "within noise": no evidence that its groups' MAEs differ."""
TINY_VARIANCE = 1e-12
"""Floor of a group's error variance in the weights (a group whose errors are all equal)."""


@dataclass(frozen=True)
class NullResult:
    """A bias score against its permutation null: the observed score, the null's mean and the p-value."""

    observed: float
    null: float
    p: float


def welch_statistic(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Per row (rows × groups of counts, sums, sums of squares): Welch's k-sample statistic over the groups with at
    least two images; 0 when fewer than two such groups."""
    usable = counts > 1
    safe = np.where(usable, counts, 2)
    means = sums / safe
    variances = np.maximum((squares - safe * means**2) / (safe - 1), TINY_VARIANCE)
    weights = np.where(usable, safe / variances, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    centre = np.divide((weights * means).sum(axis=1, keepdims=True), total, out=np.zeros_like(total),
                       where=total > 0)
    statistic = (weights * (means - centre) ** 2).sum(axis=1)
    return np.where(usable.sum(axis=1) >= 2, statistic, 0.0)


def _scores(errors: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `errors`: the kit score and Welch's statistic."""
    counts, sums, squares = group_sums(errors, codes, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return pair_mean_gap(means), welch_statistic(counts, sums, squares)


def permutation_null(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame, *,
                     n_permutations: int = 1000, seed: int = 0) -> dict[str, NullResult]:
    """Per bias score: the observed kit score, its noise floor (mean kit score over `n_permutations` shuffles of
    the errors across images) and the studentized permutation p-value of equal group MAEs."""
    if n_permutations < 1:
        raise ValueError(f"need n_permutations >= 1 (got {n_permutations})")
    data = errors_by_group(y_true, y_pred, attributes)
    rng = np.random.default_rng(seed)
    shuffles = np.argsort(rng.random((n_permutations, len(data.errors))), axis=1)
    results = {}
    for score, codes in data.codes.items():
        groups = data.group_counts[score]
        observed, statistic = (value[0] for value in _scores(data.errors[None, :], codes[None, :], groups))
        floors, statistics = zip(*(_scores(data.errors[block], codes[None, :], groups)
                                   for block in np.array_split(shuffles, max(1, len(shuffles) // CHUNK))),
                                 strict=True)
        null_statistics = np.concatenate(statistics)
        at_least = int(np.sum(null_statistics >= statistic - 1e-9 * max(1.0, abs(statistic))))
        results[score] = NullResult(float(observed), float(np.concatenate(floors).mean()),
                                    (1 + at_least) / (1 + n_permutations))
    return results
