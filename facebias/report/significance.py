"""Comparisons of experiments that count both sources of noise, and a best set with a stated error rate (numpy).

- **Two-level bootstrap** (`two_level_replicates`): an experiment's score is the mean over its runs (seeds) on the
  one test split. Its uncertainty has two sources: which seeds were trained (training randomness) and which
  images were tested (image sampling) (Bouthillier et al., "Accounting for variance in machine learning
  benchmarks", MLSys 2021). Each replicate draws the test images with replacement — the same draw for every run of
  every experiment, so comparisons stay paired — and adds to the mean over the runs on those images a Student-t
  draw (n − 1 degrees of freedom) times s / √n, s the runs' standard deviation on them: the uncertainty of a mean
  of n seeds whose spread is itself estimated.
- **Best set** (`model_confidence_set`): the Model Confidence Set of Hansen, Lunde & Nason (Econometrica 2011)
  with the range statistic T_R on those replicates. While the set holds several experiments, test that they are
  equally good (the largest pairwise difference in standard errors of the paired replicates); if the test rejects
  at `alpha`, drop the experiment most above another (in standard errors), and test again. The set then holds
  the truly best experiment(s) with probability ≥ 1 − alpha, choice of the best included.
- **Against a fixed reference** (`reference_p_values`): two-sided p-values of each experiment's difference from a
  reference chosen in advance (normal approximation with the replicates' standard error), for Holm's correction
  over the whole family.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np
from scipy import stats

Comparison = TypeVar("Comparison", bound=Hashable)
"""What names a comparison that `holm` adjusts: an experiment's name, or a (score, arm) pair."""
MIN_SEEDS = 3
"""Runs (seeds) an experiment needs before the report estimates its seed-to-seed variance and marks a best set."""
FAMILY_ALPHA = 0.05
"""Error rate of the whole results table: the chance that any truly best experiment is left out of any column's
best set (split equally over the columns, Bonferroni)."""
TWO_LEVEL = "two-level bootstrap over seeds and test images"
RESAMPLES = 1000
"""Replicates of the two-level bootstrap."""
LEVEL = 0.95
"""Coverage of every interval the report and the benchmarks' tables show."""


def two_level_replicates(run_scores: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Per experiment, its mean score on each replicate. `run_scores[name]` is (runs × replicates): every run's score
    on the same image resamples (one column per resample). A replicate is the mean over the runs on that resample
    plus a Student-t draw with n − 1 degrees of freedom times s / √n, s the runs' standard deviation there: the
    seed level, with the tails of a mean of n seeds whose spread is estimated (resampling 3 seeds has far too light
    tails: an A/A test left an experiment out 12 % of the time at a nominal 5 %)."""
    rng = np.random.default_rng(seed)
    replicates = {}
    for name, scores in run_scores.items():
        scores = np.atleast_2d(np.asarray(scores, dtype=float))
        runs, resamples = scores.shape
        if runs < 2:
            raise ValueError(f"{name}: a two-level bootstrap needs at least 2 runs per experiment, got {runs}")
        spread = scores.std(axis=0, ddof=1) / np.sqrt(runs)
        replicates[name] = scores.mean(axis=0) + spread * rng.standard_t(runs - 1, size=resamples)
    return replicates


def model_confidence_set(estimates: Mapping[str, float], replicates: Mapping[str, np.ndarray],
                         alpha: float) -> set[str]:
    """The experiments kept by the Model Confidence Set (range statistic T_R, lower is better) at level 1 − alpha:
    while the largest studentized pairwise difference is beyond what the centred replicates give in a share
    `alpha` of cases, drop the experiment with the largest studentized excess over another, and test again."""
    alive = list(estimates)
    while len(alive) > 1:
        observed = np.array([estimates[name] for name in alive])
        boot = np.column_stack([replicates[name] for name in alive])
        boot = boot - boot.mean(axis=0)
        differences = observed[:, None] - observed[None, :]
        boot_differences = boot[:, :, None] - boot[:, None, :]
        errors = boot_differences.std(axis=0)
        errors = np.where(errors > 0, errors, np.inf)
        t_observed = differences / errors
        t_range = np.abs(boot_differences / errors).max(axis=(1, 2))
        if np.mean(t_range >= np.abs(t_observed).max()) >= alpha:
            break
        alive.pop(int(np.argmax(t_observed.max(axis=1))))
    return set(alive)


def reference_p_values(estimates: Mapping[str, float], replicates: Mapping[str, np.ndarray],
                       reference: str) -> dict[str, float]:
    """Two-sided p-value of each other experiment's difference from `reference` (normal approximation with the
    standard error of the paired replicates' differences)."""
    p_values = {}
    for name, estimate in estimates.items():
        if name == reference:
            continue
        error = float(np.std(replicates[name] - replicates[reference]))
        difference = estimate - estimates[reference]
        p_values[name] = 1.0 if error == 0 and difference == 0 else (
            0.0 if error == 0 else float(2 * stats.norm.sf(abs(difference) / error)))
    return p_values


def holm(p_values: Mapping[Comparison, float]) -> dict[Comparison, float]:
    """Holm's step-down adjusted p-values (family-wise error control over the given comparisons, whatever names
    them)."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    adjusted: dict[Comparison, float] = {}
    running = 0.0
    for rank, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p))
        adjusted[name] = running
    return adjusted


def seed_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The t interval of the mean of `values`, over seeds only (NaN bounds for fewer than two values)."""
    array = np.asarray(values, dtype=float)
    if len(array) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array))
    return float(array.mean() - half), float(array.mean() + half)


def column_alpha(columns: Sequence[str], family_alpha: float = FAMILY_ALPHA) -> float:
    """Each column's share of the table's error rate (Bonferroni)."""
    return family_alpha / max(1, len(columns))
