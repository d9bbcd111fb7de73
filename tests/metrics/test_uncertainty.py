"""facebias.metrics' intervals, de-biased scores and permutation test: hand-computed cases, a second (loop)
implementation, and simulated error rates on errors whose truth is known (coverage at and away from 0, the test's
size under group-blind errors and under equal MAEs with unequal spread)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facebias.metrics import bias_scores, permutation_null, score_uncertainty
from facebias.metrics.intervals import GapIntervals, debiased, group_moments, kit_bounds
from facebias.metrics.uncertainty import percentile_interval
from facebias.report.replicates import resampled_run_scores
from facebias.vocab import VOCABULARIES

HALF_NORMAL_MEAN = np.sqrt(2 / np.pi)
"""E|Z| for a standard normal Z: the MAE of errors N(0, s²) is s · this."""


def _attributes(rng: np.random.Generator, n: int, female_share: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({
        "gender": rng.choice(["male", "female"], n, p=[1 - female_share, female_share]),
        "ethnicity": rng.choice(VOCABULARIES["ethnicity"], n),
        "expression": rng.choice(VOCABULARIES["expression"], n),
    })


def _sample(rng: np.random.Generator, n: int, female_scale: float,
            female_share: float = 0.5) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Ages spread over every age group; errors N(0, 6²) for men and N(0, female_scale²) for women."""
    attributes = _attributes(rng, n, female_share)
    ages = rng.uniform(5, 85, n)
    scale = np.where(attributes["gender"] == "female", female_scale, 6.0)
    return ages, ages + rng.normal(0, 1, n) * scale, attributes


def test_group_moments_by_hand() -> None:
    errors = np.array([1.0, 3.0, 2.0, 5.0, 8.0])
    counts, means, variances = group_moments(errors, np.array([0, 0, 1, 1, 1]), 3)
    assert counts.tolist() == [2, 3, 0]
    assert means[:2].tolist() == pytest.approx([2.0, 5.0]) and np.isnan(means[2])
    # s² of (1, 3) = 2, / 2 images = 1; s² of (2, 5, 8) = 9, / 3 images = 3
    assert variances[:2].tolist() == pytest.approx([1.0, 3.0])
    _, _, lone = group_moments(errors, np.array([0, 1, 1, 1, 1]), 2)
    assert lone[0] == pytest.approx(np.var(errors)), "one image: the variance of all errors stands in"


def test_kit_and_debiased_bounds_by_hand() -> None:
    # gaps 3 ± 1 (excludes 0) and −0.5 ± 2 (contains 0); pair variances 1 and 4
    gaps = GapIntervals(np.array([3.0, -0.5]), np.array([1.0, 4.0]), np.array([1.0, 2.0]))
    assert kit_bounds(gaps) == pytest.approx(((2.0 + 0.0) / 2, (4.0 + 2.5) / 2))
    score = debiased(gaps)
    # mean(9 − 1, 0.25 − 4) = 2.125 → √2.125; bounds √((4 + 0) / 2), √((16 + 6.25) / 2)
    assert (score.estimate, score.low, score.high) == pytest.approx((np.sqrt(2.125), np.sqrt(2.0), np.sqrt(11.125)))
    assert debiased(GapIntervals(np.array([0.1]), np.array([1.0]), np.array([2.0]))).estimate == 0.0, "clamped at 0"
    assert kit_bounds(GapIntervals(np.empty(0), np.empty(0), np.empty(0))) == (0.0, 0.0)


def test_percentile_interval_by_hand() -> None:
    assert percentile_interval(np.arange(101, dtype=float), 0.9) == pytest.approx((5.0, 95.0))


def test_shared_resamples_equal_bias_scores_recomputed_on_each_resample() -> None:
    """The report's per-run resampled scores, against `bias_scores` on the images each resample drew."""
    rng = np.random.default_rng(3)
    ages, predicted, attributes = _sample(rng, 150, 9.0)
    frame = attributes.assign(apparent_age=ages, predicted_age=predicted)
    fast = resampled_run_scores([frame], 20, seed=5)
    draw = np.random.default_rng(5)
    positions = draw.integers(0, 150, size=(20, 150))
    assert fast["mae"][0] == pytest.approx([np.abs(predicted - ages)[row].mean() for row in positions])
    from facebias.metrics.uncertainty import group_codes, stratified_indices

    codes = group_codes(ages, attributes)
    for score in ("age_bias", "gender_bias", "ethnicity_bias", "expression_bias"):
        draws = stratified_indices(codes[score], 20, draw)
        for row in range(20):
            chosen = np.concatenate([group[row] for group in draws])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                slow = bias_scores(ages[chosen], predicted[chosen], attributes.iloc[chosen])[score]
            assert fast[score][0, row] == pytest.approx(slow, rel=1e-9, abs=1e-12), score


def test_intervals_cover_a_gap_of_zero_and_a_real_gap() -> None:
    """Coverage on simulated splits: the MAE, the kit gender bias and its de-biased score, at a true gap of 0 (the
    old percentile interval of the score covered 0 in no case) and at a true gap of 3 · √(2/π) years."""
    rng = np.random.default_rng(2026)
    simulations = 150
    for female_scale in (6.0, 9.0):
        true_gap = (female_scale - 6.0) * HALF_NORMAL_MEAN
        covered = {"mae": 0, "gender_bias": 0, "gender_bias_debiased": 0}
        for _ in range(simulations):
            ages, predicted, attributes = _sample(rng, 300, female_scale, female_share=0.2)
            intervals, unbiased = score_uncertainty(ages, predicted, attributes, n_resamples=300,
                                                    seed=int(rng.integers(1 << 30)))
            true_mae = (0.8 * 6.0 + 0.2 * female_scale) * HALF_NORMAL_MEAN
            covered["mae"] += intervals["mae"][0] <= true_mae <= intervals["mae"][1]
            covered["gender_bias"] += intervals["gender_bias"][0] <= true_gap <= intervals["gender_bias"][1]
            score = unbiased["gender_bias_debiased"]
            covered["gender_bias_debiased"] += score.low <= true_gap <= score.high
        for name, count in covered.items():
            assert 0.88 <= count / simulations <= 0.995, (female_scale, name, count)


def test_the_debiased_score_removes_the_noise_that_the_kit_score_keeps() -> None:
    """No group effect: the kit ethnicity bias averages well above 0; the de-biased mean squared gap averages 0."""
    rng = np.random.default_rng(9)
    kit, squared = [], []
    for _ in range(200):
        ages, predicted, attributes = _sample(rng, 400, 6.0)
        frame_errors = np.abs(predicted - ages)
        codes = pd.Categorical(attributes["ethnicity"], categories=VOCABULARIES["ethnicity"]).codes
        _, means, variances = group_moments(frame_errors, codes.astype(np.int64), 3)
        first, second = np.triu_indices(3, k=1)
        squared.append(np.mean((means[first] - means[second]) ** 2 - variances[first] - variances[second]))
        kit.append(bias_scores(ages, predicted, attributes)["ethnicity_bias"])
    noise = np.std(squared) / np.sqrt(len(squared))
    assert abs(np.mean(squared)) < 3 * noise, "unbiased for a mean squared gap of 0"
    assert np.mean(kit) > 0.25, "the kit score's upward bias at these sizes (about 0.36 years here)"


def test_the_null_of_two_groups_by_hand() -> None:
    # errors 1, 1 (men) and 3, 3 (women): a shuffle keeps the two groups apart in 2 of its 6 equally likely splits
    # (bias 2, the observed statistic), and mixes them in the other 4 (bias 0, a smaller statistic): the null is
    # 2/3 and the p-value about 1/3.
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


def test_the_statistic_is_welchs_anova() -> None:
    """For two groups the statistic is the square of Welch's t (scipy), a second implementation."""
    from facebias.metrics.permutation import welch_statistic

    first, second = np.array([1.0, 2.0, 4.0, 7.0]), np.array([3.0, 3.5, 9.0])
    counts = np.array([[4, 3]])
    sums = np.array([[first.sum(), second.sum()]])
    squares = np.array([[(first**2).sum(), (second**2).sum()]])
    t = stats.ttest_ind(first, second, equal_var=False).statistic
    assert welch_statistic(counts, sums, squares)[0] == pytest.approx(t**2)


def _rejections(rng: np.random.Generator, spread: float, simulations: int) -> float:
    """Share of simulated splits whose gender bias test rejects at 5 %: equal MAEs, women's absolute errors
    `spread` times as spread out (gamma errors with the men's mean)."""
    rejected = 0
    for _ in range(simulations):
        attributes = _attributes(rng, 400, female_share=0.15)
        ages = rng.uniform(5, 85, 400)
        women = (attributes["gender"] == "female").to_numpy()
        mean, sd = 6.0 * HALF_NORMAL_MEAN, 6.0 * np.sqrt(1 - 2 / np.pi)
        errors = np.abs(rng.normal(0, 6.0, 400))
        female_sd = sd * spread
        errors[women] = rng.gamma((mean / female_sd) ** 2, female_sd**2 / mean, women.sum())
        result = permutation_null(ages, ages + errors, attributes, n_permutations=200,
                                  seed=int(rng.integers(1 << 30)))["gender_bias"]
        rejected += result.p < 0.05
    return rejected / simulations


def test_the_test_holds_its_size_when_only_the_spread_differs() -> None:
    """An unstudentized statistic rejects far more often than 5 % here (the issue measured 17 % and 31 %)."""
    rng = np.random.default_rng(11)
    assert _rejections(rng, 1.0, 150) <= 0.10
    assert _rejections(rng, 2.0, 150) <= 0.11


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
