"""How sure a score is: bootstrap intervals over images and the permutation null of each bias score (numpy only).

Both resample the per-image absolute errors of one evaluated split and recompute every score on each resample,
vectorised over resamples (a group MAE is a `bincount` of errors by (resample, group)):

- **bootstrap**: draw the images with replacement, `n_resamples` times; the percentile interval of level `level`
  of each score is its interval (`bias_intervals`).
- **permutation null** of a bias: shuffle the errors across the images, keeping every group's size, so that the
  errors no longer depend on the group; the null is the mean score over `n_permutations` shuffles, and the
  p-value is (1 + #shuffles scoring ≥ the observed score) / (1 + n_permutations) (`permutation_null`).

The definitions are written out in docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebias.metrics.scores import BIAS_ATTRIBUTES
from facebias.vocab import VOCABULARIES, age_groups

SCORES: tuple[str, ...] = ("mae", *BIAS_ATTRIBUTES)
"""Every score that carries an interval, in the study's order."""
CHUNK = 200
"""Resamples scored at once (bounds memory at CHUNK × images values)."""


@dataclass(frozen=True)
class ErrorsByGroup:
    """One split's absolute errors (years) and, per bias score, every image's group code (-1: not in the vocab)."""

    errors: np.ndarray
    codes: dict[str, np.ndarray]
    group_counts: dict[str, int]


def errors_by_group(y_true: Sequence[float], y_pred: Sequence[float], attributes: pd.DataFrame) -> ErrorsByGroup:
    """Absolute errors and integer group codes; age groups come from the true ages, as for `bias_scores`."""
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if true.shape != pred.shape or len(attributes) != len(true):
        raise ValueError(f"y_true ({true.shape}), y_pred ({pred.shape}) and attributes ({len(attributes)} rows) "
                         "must have the same length")
    if true.size == 0:
        raise ValueError("cannot measure the uncertainty of scores over zero samples")
    frame = attributes.reset_index(drop=True)
    codes, counts = {}, {}
    for score, attribute in BIAS_ATTRIBUTES.items():
        values = age_groups(true) if attribute == "age_group" else frame[attribute].to_numpy()
        groups = VOCABULARIES[attribute]
        codes[score] = pd.Categorical(values, categories=groups).codes.astype(np.int64)
        counts[score] = len(groups)
    return ErrorsByGroup(np.abs(pred - true), codes, counts)


def _bias_of_batch(errors: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """The bias score of each row of `errors` (resamples × images) given each image's group code (same shape).

    Mean over pairs of groups present in the row of |MAE_i − MAE_j|; 0 when fewer than two groups are present;
    images with code -1 belong to no group.
    """
    rows = errors.shape[0]
    valid = codes >= 0
    flat = (np.arange(rows)[:, None] * n_groups + np.where(valid, codes, 0))[valid]
    sums = np.bincount(flat, weights=errors[valid], minlength=rows * n_groups).reshape(rows, n_groups)
    counts = np.bincount(flat, minlength=rows * n_groups).reshape(rows, n_groups)
    present = counts > 0
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=present)
    first, second = np.triu_indices(n_groups, k=1)
    paired = present[:, first] & present[:, second]
    gaps = np.abs(means[:, first] - means[:, second]) * paired
    pairs = paired.sum(axis=1)
    return np.divide(gaps.sum(axis=1), pairs, out=np.zeros(rows), where=pairs > 0)


def resampled_scores(data: ErrorsByGroup, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Every score on each resample; `indices` is (resamples × images) image positions (e.g. a bootstrap draw)."""
    indices = np.atleast_2d(indices)
    scores: dict[str, list[np.ndarray]] = {score: [] for score in SCORES}
    for start in range(0, len(indices), CHUNK):
        block = indices[start : start + CHUNK]
        errors = data.errors[block]
        scores["mae"].append(errors.mean(axis=1))
        for score, codes in data.codes.items():
            scores[score].append(_bias_of_batch(errors, codes[block], data.group_counts[score]))
    return {score: np.concatenate(values) for score, values in scores.items()}


def bootstrap_indices(n_images: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples × n_images) positions drawn with replacement, reproducible from `seed`."""
    return np.random.default_rng(seed).integers(0, n_images, size=(n_resamples, n_images))


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of `samples`."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def bias_intervals(
    y_true: Sequence[float],
    y_pred: Sequence[float],
    attributes: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap interval (low, high) over images of the MAE and each bias score, keyed like
    `bias_scores` (mae, age_bias, gender_bias, ethnicity_bias, expression_bias)."""
    if n_resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_resamples >= 1 (got {n_resamples}) and 0 < level < 1 (got {level})")
    data = errors_by_group(y_true, y_pred, attributes)
    samples = resampled_scores(data, bootstrap_indices(len(data.errors), n_resamples, seed))
    return {score: percentile_interval(values, level) for score, values in samples.items()}


@dataclass(frozen=True)
class NullResult:
    """A bias score against its permutation null: the observed score, the null's mean and the p-value."""

    observed: float
    null: float
    p: float


def permutation_null(y_true: Sequence[float], y_pred: Sequence[float], attributes: pd.DataFrame, *,
                     n_permutations: int = 1000, seed: int = 0) -> dict[str, NullResult]:
    """Per bias score: the score the same errors would get if they did not depend on the group (mean over
    `n_permutations` shuffles of the errors across images) and the one-sided permutation p-value."""
    if n_permutations < 1:
        raise ValueError(f"need n_permutations >= 1 (got {n_permutations})")
    data = errors_by_group(y_true, y_pred, attributes)
    rng = np.random.default_rng(seed)
    shuffles = np.argsort(rng.random((n_permutations, len(data.errors))), axis=1)
    results = {}
    for score, codes in data.codes.items():
        observed = float(_bias_of_batch(data.errors[None, :], codes[None, :], data.group_counts[score])[0])
        null = np.concatenate([
            _bias_of_batch(data.errors[block], np.broadcast_to(codes, block.shape),
                           data.group_counts[score])
            for block in np.array_split(shuffles, max(1, len(shuffles) // CHUNK))
        ])
        at_least = int(np.sum(null >= observed - 1e-12 * max(1.0, abs(observed))))
        results[score] = NullResult(observed, float(null.mean()), (1 + at_least) / (1 + n_permutations))
    return results
