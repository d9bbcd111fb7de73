"""Which experiments a comparison cannot tell apart: intervals over seeds and tests against the best experiment.

- Over seeds (n ≥ 2 runs of an experiment): the t interval mean ± t(level, n−1) · s / √n.
- Against the best (lowest mean) experiment of a column, with Holm's correction over the other experiments:
  Welch's t test over seeds when both have n ≥ 2; a paired bootstrap over the same test images when every
  experiment has one run (each resample draws the same images for every experiment; the two-sided p-value is
  twice the smaller share of resampled differences on either side of 0, counting the observed difference).
An experiment whose corrected p-value is ≥ `alpha` is "not distinguishable from the best".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
"""Family-wise error rate of each column's comparisons with its best experiment."""
WELCH = "Welch's t test over seeds"
PAIRED_BOOTSTRAP = "paired bootstrap over the same test images"


def seed_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The t interval of the mean of `values` (NaN bounds for fewer than two values)."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error control over the given comparisons)."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def welch_p(first: Sequence[float], second: Sequence[float]) -> float:
    """Two-sided p-value of Welch's t test; 1.0 when both samples are constant and equal, 0.0 when constant and
    different."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if first.std() == 0 and second.std() == 0:
        return 1.0 if first.mean() == second.mean() else 0.0
    return float(stats.ttest_ind(first, second, equal_var=False).pvalue)


def paired_bootstrap_p(first: np.ndarray, second: np.ndarray) -> float:
    """Two-sided p-value that two scores differ, from their values on the same bootstrap resamples."""
    differences = np.asarray(first) - np.asarray(second)
    below = (1 + np.sum(differences <= 0)) / (1 + len(differences))
    above = (1 + np.sum(differences >= 0)) / (1 + len(differences))
    return float(min(1.0, 2 * min(below, above)))


def best_group_by_seeds(runs: Mapping[str, Sequence[float]], alpha: float = ALPHA) -> set[str] | None:
    """The best experiment (lowest mean) and every one Welch's test cannot tell from it; None when an experiment
    has fewer than two runs."""
    if any(len(values) < 2 for values in runs.values()):
        return None
    best = min(runs, key=lambda name: np.mean(runs[name]))
    p_values = holm({name: welch_p(values, runs[best]) for name, values in runs.items() if name != best})
    return {best} | {name for name, p in p_values.items() if p >= alpha}


def best_group_by_images(resampled: Mapping[str, np.ndarray], observed: Mapping[str, float],
                         alpha: float = ALPHA) -> set[str]:
    """The best experiment (lowest observed score) and every one the paired bootstrap cannot tell from it.

    `resampled` holds each experiment's score on the same bootstrap resamples of the same images.
    """
    best = min(observed, key=observed.__getitem__)
    p_values = holm({name: paired_bootstrap_p(values, resampled[best])
                     for name, values in resampled.items() if name != best})
    return {best} | {name for name, p in p_values.items() if p >= alpha}
