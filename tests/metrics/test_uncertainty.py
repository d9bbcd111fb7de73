"""facebias.metrics' intervals and nulls: a second (loop) implementation, hand-computed cases, bootstrap coverage on
errors with a known answer, and p-values that are uniform when errors ignore the group."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facebias.metrics import SCORES, bias_intervals, bias_scores, permutation_null
from facebias.metrics.uncertainty import bootstrap_indices, errors_by_group, percentile_interval, resampled_scores
from facebias.vocab import VOCABULARIES

HALF_NORMAL_MEAN = np.sqrt(2 / np.pi)
"""E|Z| for a standard normal Z: the MAE of errors N(0, s²) is s · this."""


def _attributes(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({attribute: rng.choice(VOCABULARIES[attribute], n)
                         for attribute in ("gender", "ethnicity", "expression")})


def _sample(rng: np.random.Generator, n: int, female_scale: float) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Ages spread over every age group; errors N(0, 6²) for men and N(0, female_scale²) for women."""
    attributes = _attributes(rng, n)
    ages = rng.uniform(5, 85, n)
    scale = np.where(attributes["gender"] == "female", female_scale, 6.0)
    return ages, ages + rng.normal(0, 1, n) * scale, attributes


def test_resampled_scores_equal_bias_scores_recomputed_on_each_resample() -> None:
    rng = np.random.default_rng(3)
    ages, predicted, attributes = _sample(rng, 150, 9.0)
    indices = bootstrap_indices(150, 30, seed=5)
    fast = resampled_scores(errors_by_group(ages, predicted, attributes), indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a resample may miss a small group: both implementations leave it out
        for row, chosen in enumerate(indices):
            slow = bias_scores(ages[chosen], predicted[chosen], attributes.iloc[chosen])
            for score in SCORES:
                assert fast[score][row] == pytest.approx(slow[score], rel=1e-9, abs=1e-12)


def test_intervals_are_percentiles_of_the_loop_implementation() -> None:
    rng = np.random.default_rng(4)
    ages, predicted, attributes = _sample(rng, 120, 9.0)
    intervals = bias_intervals(ages, predicted, attributes, n_resamples=40, level=0.9, seed=11)
    indices = bootstrap_indices(120, 40, seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loop = [bias_scores(ages[i], predicted[i], attributes.iloc[i]) for i in indices]
    for score in SCORES:
        expected = np.quantile([scores[score] for scores in loop], [0.05, 0.95])
        assert intervals[score] == pytest.approx(tuple(expected), rel=1e-9)


def test_percentile_interval_by_hand() -> None:
    assert percentile_interval(np.arange(101, dtype=float), 0.9) == pytest.approx((5.0, 95.0))


def test_bootstrap_intervals_cover_the_true_value() -> None:
    rng = np.random.default_rng(2026)
    true_mae = (6.0 + 9.0) / 2 * HALF_NORMAL_MEAN
    true_gender_bias = 3.0 * HALF_NORMAL_MEAN
    covered = {"mae": 0, "gender_bias": 0}
    simulations = 200
    for _ in range(simulations):
        ages, predicted, attributes = _sample(rng, 300, 9.0)
        intervals = bias_intervals(ages, predicted, attributes, n_resamples=500, seed=int(rng.integers(1 << 30)))
        covered["mae"] += intervals["mae"][0] <= true_mae <= intervals["mae"][1]
        covered["gender_bias"] += intervals["gender_bias"][0] <= true_gender_bias <= intervals["gender_bias"][1]
    assert covered["mae"] / simulations >= 0.90
    assert covered["gender_bias"] / simulations >= 0.90


def test_the_null_of_two_groups_by_hand() -> None:
    # errors 1, 1 (men) and 3, 3 (women): a shuffle keeps the two groups apart in 2 of its 6 equally likely splits
    # (bias 2), and mixes them in the other 4 (bias 0): the null is 2/3 and the p-value about 1/3.
    attributes = pd.DataFrame({"gender": ["male", "male", "female", "female"], "ethnicity": ["asian"] * 4,
                               "expression": ["happy"] * 4})
    ages = np.full(4, 30.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = permutation_null(ages, ages + np.array([1.0, -1.0, 3.0, -3.0]), attributes, n_permutations=6000)
    assert result["gender_bias"].observed == pytest.approx(2.0)
    assert result["gender_bias"].null == pytest.approx(2 / 3, abs=0.04)
    assert result["gender_bias"].p == pytest.approx(1 / 3, abs=0.03)
    assert result["ethnicity_bias"].observed == 0.0 and result["ethnicity_bias"].p == 1.0


def test_p_values_are_uniform_when_errors_ignore_the_group() -> None:
    rng = np.random.default_rng(7)
    p_values: dict[str, list[float]] = {}
    for _ in range(200):
        ages, predicted, attributes = _sample(rng, 200, 6.0)  # the same error distribution in every group
        for name, result in permutation_null(ages, predicted, attributes, n_permutations=200,
                                             seed=int(rng.integers(1 << 30))).items():
            p_values.setdefault(name, []).append(result.p)
    for name, values in p_values.items():
        assert stats.kstest(values, "uniform").pvalue > 0.001, name
        assert 0.01 <= np.mean(np.asarray(values) <= 0.05) <= 0.10, name


def test_a_real_gap_is_beyond_its_null() -> None:
    rng = np.random.default_rng(8)
    ages, predicted, attributes = _sample(rng, 400, 10.0)
    result = permutation_null(ages, predicted, attributes, n_permutations=500, seed=1)["gender_bias"]
    assert result.observed > result.null
    assert result.p < 0.01
