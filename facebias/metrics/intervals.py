"""Intervals of every score and the de-biased bias scores (numpy only; definitions in docs/metrics.md).

- **MAE**: percentile bootstrap over the images (`n_resamples` draws with replacement).
- **Gaps**: per attribute, the signed gap MAE_i − MAE_j of every pair of present groups, with its standard error
  √(v_i + v_j), v_g = s_g² / n_g the sampling variance of a group's MAE (s_g² over all images when n_g = 1).
  One critical value c for all pairs of the attribute (max-t) comes from a bootstrap *within* groups (stratified:
  a small group never drops out of a resample): c = the `level` quantile over resamples of
  max over pairs |gap* − gap| / se. Every gap then lies in gap ± c·se with probability ≈ `level`, jointly.
- **Kit score interval**: the score (mean |gap|) is monotone in every |gap|, so it lies, whenever every gap lies in
  its interval, between the mean over pairs of the smallest |gap| each interval allows (0 when it contains 0) and
  the mean of the largest. The bound is valid at a true bias of 0, unlike a percentile interval of the score.
- **De-biased score**: E[gap²] = (true gap)² + v_i + v_j, so the mean over pairs of gap² − v_i − v_j is unbiased
  for the mean squared true gap; it is reported in years as √max(0, ·), with the interval mapped from the same
  simultaneous gap intervals (root mean square of the smallest / largest |gap|).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from facebias.metrics.scores import BIAS_ATTRIBUTES
from facebias.metrics.uncertainty import (
    ErrorsByGroup,
    check_resampling,
    errors_by_group,
    group_sums,
    percentile_interval,
    stratified_indices,
)

DEBIASED_SUFFIX = "_debiased"
"""The de-biased score of `<bias>` is named `<bias>_debiased`."""


@dataclass(frozen=True)
class GapIntervals:
    """An attribute's signed gaps over pairs of present groups, their sampling variances and the half widths of
    their simultaneous intervals (empty arrays when fewer than two groups are present)."""

    gaps: np.ndarray
    variances: np.ndarray
    half_widths: np.ndarray


@dataclass(frozen=True)
class DebiasedScore:
    """A de-biased bias score (years) and its interval."""

    estimate: float
    low: float
    high: float


def group_moments(errors: np.ndarray, codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group: its image count, its MAE (NaN when empty) and the sampling variance of that MAE, s_g² / n_g
    (the variance of all errors stands in for s_g² when a group has one image)."""
    counts, sums, squares = (row[0] for row in group_sums(errors[None, :], codes[None, :], n_groups))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / counts, np.nan)
        within = np.where(counts > 1, (squares - counts * means**2) / (counts - 1), float(np.var(errors, ddof=0)))
    return counts, means, np.where(counts > 0, np.maximum(within, 0.0) / np.maximum(counts, 1), np.nan)


def gap_intervals(data: ErrorsByGroup, score: str, n_resamples: int, level: float,
                  rng: np.random.Generator) -> GapIntervals:
    """The simultaneous (max-t, stratified bootstrap) intervals of one bias score's signed gaps."""
    codes = data.codes[score]
    counts, means, variances = group_moments(data.errors, codes, data.group_counts[score])
    present = np.flatnonzero(counts > 0)
    if len(present) < 2:
        return GapIntervals(np.empty(0), np.empty(0), np.empty(0))
    first, second = (present[i] for i in np.triu_indices(len(present), k=1))
    gaps = means[first] - means[second]
    pair_variances = variances[first] + variances[second]
    draws = stratified_indices(codes, n_resamples, rng)
    resampled = np.full((n_resamples, len(means)), np.nan)
    for group in present:
        resampled[:, group] = data.errors[draws[group]].mean(axis=1)
    deviations = np.abs(resampled[:, first] - resampled[:, second] - gaps)
    errors = np.sqrt(pair_variances)
    studentized = np.divide(deviations, errors, out=np.zeros_like(deviations), where=errors > 0)
    critical = float(np.quantile(studentized.max(axis=1), level))
    return GapIntervals(gaps, pair_variances, critical * errors)


def _abs_bounds(intervals: GapIntervals) -> tuple[np.ndarray, np.ndarray]:
    """Per pair, the smallest and the largest |gap| its interval allows."""
    size = np.abs(intervals.gaps)
    return np.maximum(size - intervals.half_widths, 0.0), size + intervals.half_widths


def kit_bounds(intervals: GapIntervals) -> tuple[float, float]:
    """The interval of the kit score (mean |gap|) implied by simultaneous gap intervals; (0, 0) without pairs."""
    if intervals.gaps.size == 0:
        return 0.0, 0.0
    low, high = _abs_bounds(intervals)
    return float(low.mean()), float(high.mean())


def debiased(intervals: GapIntervals) -> DebiasedScore:
    """√max(0, mean over pairs of gap² − v_i − v_j), with the root-mean-square bounds of the gap intervals."""
    if intervals.gaps.size == 0:
        return DebiasedScore(0.0, 0.0, 0.0)
    low, high = _abs_bounds(intervals)
    estimate = np.sqrt(max(0.0, float(np.mean(intervals.gaps**2 - intervals.variances))))
    return DebiasedScore(float(estimate), float(np.sqrt(np.mean(low**2))), float(np.sqrt(np.mean(high**2))))


def score_uncertainty(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    attributes: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, tuple[float, float]], dict[str, DebiasedScore]]:
    """The interval of the MAE and of each kit bias score (keyed like `bias_scores`), and each de-biased score
    with its interval (keyed `<bias>_debiased`), from one draw of the bootstrap."""
    check_resampling(n_resamples, level)
    data = errors_by_group(y_true, y_pred, attributes)
    mae_stream, gap_stream = np.random.SeedSequence(seed).spawn(2)
    maes = data.errors[np.random.default_rng(mae_stream).integers(0, len(data.errors),
                                                                  (n_resamples, len(data.errors)))].mean(axis=1)
    intervals = {"mae": percentile_interval(maes, level)}
    debiased_scores = {}
    rng = np.random.default_rng(gap_stream)
    for score in BIAS_ATTRIBUTES:
        gaps = gap_intervals(data, score, n_resamples, level, rng)
        intervals[score] = kit_bounds(gaps)
        debiased_scores[score + DEBIASED_SUFFIX] = debiased(gaps)
    return intervals, debiased_scores


def bias_intervals(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame, *,
                   n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Interval (low, high) of the MAE and of each kit bias score, keyed like `bias_scores`."""
    return score_uncertainty(y_true, y_pred, attributes, n_resamples=n_resamples, level=level, seed=seed)[0]


def debiased_bias_scores(y_true: ArrayLike, y_pred: ArrayLike, attributes: pd.DataFrame, *,
                         n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> dict[str, DebiasedScore]:
    """Each de-biased bias score with its interval, keyed `age_bias_debiased`, `gender_bias_debiased`, …"""
    return score_uncertainty(y_true, y_pred, attributes, n_resamples=n_resamples, level=level, seed=seed)[1]
