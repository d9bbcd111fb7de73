"""The resampling machinery behind every interval and test (numpy only; docs/metrics.md).

One evaluated split becomes its per-image absolute errors and, per bias score, each image's group code
(`errors_by_group`); group counts, sums and sums of squares are `bincount`s over (row, group), so a whole block of
resamples or permutations is scored at once. Draws: plain bootstrap positions over all images, or stratified
positions drawn within each group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facebias.metrics.scores import BIAS_ATTRIBUTES
from facebias.vocab import VOCABULARIES, age_groups

SCORES: tuple[str, ...] = ("mae", *BIAS_ATTRIBUTES)
"""Every score that carries an interval, in the study's order."""
CHUNK = 200
"""Permutations scored at once (bounds memory at CHUNK × images values)."""


@dataclass(frozen=True)
class ErrorsByGroup:
    """One split's absolute errors (years) and, per bias score, every image's group code (-1: not in the vocab)."""

    errors: np.ndarray
    codes: dict[str, np.ndarray]
    group_counts: dict[str, int]


def errors_by_group(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame) -> ErrorsByGroup:
    """Absolute errors and integer group codes; age groups come from the true ages, as for `bias_scores`."""
    true = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if true.shape != pred.shape or len(attributes) != len(true):
        raise ValueError(f"y_true ({true.shape}), y_pred ({pred.shape}) and attributes ({len(attributes)} rows) "
                         "must have the same length")
    if true.size == 0:
        raise ValueError("cannot measure the uncertainty of scores over zero samples")
    return ErrorsByGroup(np.abs(pred - true), group_codes(true, attributes), group_sizes())


def group_codes(y_true: np.ndarray, attributes: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per bias score, every image's group code in its attribute's vocabulary (-1: not in the vocabulary)."""
    frame = attributes.reset_index(drop=True)
    codes = {}
    for score, attribute in BIAS_ATTRIBUTES.items():
        values = age_groups(y_true) if attribute == "age_group" else frame[attribute].to_numpy()
        codes[score] = pd.Categorical(values, categories=VOCABULARIES[attribute]).codes.astype(np.int64)
    return codes


def group_sizes() -> dict[str, int]:
    """Per bias score, the number of groups of its attribute."""
    return {score: len(VOCABULARIES[attribute]) for score, attribute in BIAS_ATTRIBUTES.items()}


def group_sums(errors: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Per row of `errors` (rows × images) and group: the count, sum and sum of squares of the errors of the images
    whose code (same shape as `errors`, or one row for all) is that group; code -1 belongs to no group."""
    rows = errors.shape[0]
    codes = np.broadcast_to(codes, errors.shape)
    valid = codes >= 0
    flat = (np.arange(rows)[:, None] * n_groups + np.where(valid, codes, 0))[valid]
    size = rows * n_groups
    counts = np.bincount(flat, minlength=size).reshape(rows, n_groups)
    sums = np.bincount(flat, weights=errors[valid], minlength=size).reshape(rows, n_groups)
    squares = np.bincount(flat, weights=errors[valid] ** 2, minlength=size).reshape(rows, n_groups)
    return counts, sums, squares


def pair_mean_gap(means: np.ndarray) -> np.ndarray:
    """The bias score of each row of group MAEs (rows × groups, NaN: an empty group): the mean over pairs of
    present groups of |MAE_i − MAE_j|; 0 when fewer than two groups are present."""
    first, second = np.triu_indices(means.shape[1], k=1)
    gaps = np.abs(means[:, first] - means[:, second])
    paired = ~np.isnan(gaps)
    pairs = paired.sum(axis=1)
    return np.divide(np.where(paired, gaps, 0.0).sum(axis=1), pairs, out=np.zeros(len(means)), where=pairs > 0)


def stratified_indices(codes: np.ndarray, n_resamples: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per group code 0, 1, … (up to the largest code): (n_resamples × n_g) positions of that group's images drawn
    with replacement within the group (an empty group: an empty (n_resamples × 0) array)."""
    draws = []
    for group in range(int(codes.max(initial=-1)) + 1):
        members = np.flatnonzero(codes == group)
        draws.append(members[rng.integers(0, len(members), size=(n_resamples, len(members)))] if len(members)
                     else np.empty((n_resamples, 0), dtype=np.int64))
    return draws


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` percentile interval of `samples`."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def check_resampling(n_resamples: int, level: float) -> None:
    """ValueError unless n_resamples ≥ 1 and 0 < level < 1."""
    if n_resamples < 1 or not 0.0 < level < 1.0:
        raise ValueError(f"need n_resamples >= 1 (got {n_resamples}) and 0 < level < 1 (got {level})")
