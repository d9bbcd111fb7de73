"""Group-offset calibration: offsets by hand, empirical-Bayes shrinkage on a hand-computed 3-cell example, the
minimum cell size, cross-fitting against an independent recomputation of the folds, and honest validation scores
on a simulated problem without any true group offset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facebias.calibration import (
    GroupOffsets,
    apply_group_offsets,
    cross_fitted,
    fit_group_offsets,
    fold_assignment,
    shrink_factors,
)

COLUMNS = ["gender", "ethnicity", "expression"]


def _attributes(genders: list[str], expressions: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"gender": genders, "ethnicity": ["asian"] * len(genders), "expression": expressions})


def test_raw_offsets_are_each_groups_mean_residual_by_hand() -> None:
    attributes = _attributes(["female", "female", "male", "male", "male"], ["happy"] * 5)
    ages = np.array([20.0, 30.0, 40.0, 50.0, 60.0])
    predicted = np.array([24.0, 32.0, 37.0, 50.0, 54.0])
    offsets = fit_group_offsets(ages, predicted, attributes, ["gender"], shrinkage=False, min_count=1)
    assert offsets.offsets == pytest.approx({"female": 3.0, "male": -3.0})
    assert offsets.counts == {"female": 2, "male": 3}
    np.testing.assert_allclose(apply_group_offsets(predicted, attributes, offsets), [21, 29, 40, 53, 57])


def _three_cells() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Residuals A: 2, 4, 6 (mean 4); B: −1, 1 (mean 0); C: 5, 7, 9, 11 (mean 8)."""
    residuals = np.array([2, 4, 6, -1, 1, 5, 7, 9, 11], dtype=float)
    genders = ["a"] * 3 + ["b"] * 2 + ["c"] * 4
    ages = np.full(9, 30.0)
    return ages, ages + residuals, _attributes(genders, ["happy"] * 9)


def test_empirical_bayes_shrinkage_on_three_cells_by_hand() -> None:
    # σ² = (8 + 2 + 20) / (9 − 3) = 5; τ² = ((16 − 5/3) + (0 − 5/2) + (64 − 5/4)) / 3 = 895/36; σ²/τ² = 36/179
    ages, predicted, attributes = _three_cells()
    offsets = fit_group_offsets(ages, predicted, attributes, ["gender"], shrinkage=True, min_count=1)
    assert offsets.within_variance == pytest.approx(5.0)
    assert offsets.between_variance == pytest.approx(895 / 36)
    assert offsets.offsets == pytest.approx({"a": 4 * 3 / (3 + 36 / 179), "b": 0.0, "c": 8 * 4 / (4 + 36 / 179)})
    assert offsets.raw_means == pytest.approx({"a": 4.0, "b": 0.0, "c": 8.0})
    record = offsets.to_dict()
    assert record["cells"][0] == {"group": "a", "n": 3, "raw_mean_residual": 4.0,
                                  "offset": pytest.approx(2148 / 573)}
    assert GroupOffsets.from_dict(record) == offsets


def test_small_cells_get_no_offset_and_leave_the_variances() -> None:
    ages, predicted, attributes = _three_cells()
    offsets = fit_group_offsets(ages, predicted, attributes, ["gender"], shrinkage=True, min_count=3)
    # without B: σ² = 28 / 5, τ² = ((16 − 5.6/3) + (64 − 5.6/4)) / 2
    within, between = 28 / 5, ((16 - 5.6 / 3) + (64 - 5.6 / 4)) / 2
    assert offsets.within_variance == pytest.approx(within)
    assert offsets.between_variance == pytest.approx(between)
    assert offsets.offsets["b"] == 0.0 and offsets.counts["b"] == 2 and offsets.raw_means["b"] == 0.0
    assert offsets.offsets["c"] == pytest.approx(8 * 4 / (4 + within / between))
    unshrunk = fit_group_offsets(ages, predicted, attributes, ["gender"], shrinkage=False, min_count=3)
    assert unshrunk.offsets == pytest.approx({"a": 4.0, "b": 0.0, "c": 8.0})


def test_no_spread_between_cells_means_no_offsets() -> None:
    factors, between = shrink_factors(np.array([4, 4]), np.array([1.0, -1.0]), within_variance=8.0)
    assert between == 0.0  # mean(1 − 2, 1 − 2) < 0, clamped
    np.testing.assert_array_equal(factors, [0.0, 0.0])


def _independent_cross_fit(ages, predicted, attributes, folds: int, seed: int) -> np.ndarray:
    """Folds dealt in the order of default_rng(seed).permutation; each fold minus the plain means of the rest."""
    order = np.random.default_rng(seed).permutation(len(ages))
    fold = np.empty(len(ages), dtype=int)
    for position, index in enumerate(order):
        fold[index] = position % folds
    keys = attributes[COLUMNS].agg("|".join, axis=1).to_numpy()
    residuals = predicted - ages
    out = predicted.copy()
    for k in range(folds):
        means = {key: residuals[(fold != k) & (keys == key)].mean() for key in set(keys[fold != k])}
        out[fold == k] = [p - means.get(key, 0.0) for p, key in zip(predicted[fold == k], keys[fold == k],
                                                                       strict=True)]
    return out


def _draw(rng: np.random.Generator, n: int, offsets: dict[str, float] | None = None):
    attributes = pd.DataFrame({"gender": rng.choice(["male", "female"], n),
                               "ethnicity": rng.choice(["asian", "afroamerican", "caucasian"], n),
                               "expression": rng.choice(["happy", "slightlyhappy", "neutral", "other"], n)})
    ages = rng.uniform(5, 80, n)
    shift = attributes["gender"].map(offsets or {}).fillna(0.0).to_numpy()
    return ages, ages + shift + rng.normal(0, 6, n), attributes


def test_cross_fitted_validation_equals_an_independent_recomputation_of_the_folds() -> None:
    ages, predicted, attributes = _draw(np.random.default_rng(3), 203, {"female": 4.0, "male": -2.0})
    assignment = fold_assignment(203, 5, seed=7)
    assert sorted(np.bincount(assignment)) == [40, 40, 41, 41, 41]
    expected = _independent_cross_fit(ages, predicted, attributes, 5, 7)
    actual = cross_fitted(ages, predicted, attributes, COLUMNS, 5, 7, shrinkage=False, min_count=1)
    np.testing.assert_allclose(actual, expected, atol=1e-9)
    assert not np.allclose(actual, cross_fitted(ages, predicted, attributes, COLUMNS, 5, 8, False, 1))


def _mean_bias(ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> float:
    """Mean over gender, ethnicity, expression of the mean pairwise |MAE_g − MAE_h| (docs/metrics.md)."""
    errors = pd.Series(np.abs(predicted - ages))
    scores = []
    for column in COLUMNS:
        maes = errors.groupby(attributes[column].to_numpy()).mean().to_numpy()
        scores.append(np.mean([abs(a - b) for i, a in enumerate(maes) for b in maes[i + 1:]]))
    return float(np.mean(scores))


def _scores(ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> np.ndarray:
    return np.array([np.abs(predicted - ages).mean(), _mean_bias(ages, predicted, attributes)])


def test_cross_fitted_validation_is_not_optimistic_where_in_sample_scoring_is() -> None:
    """No true group offset, cells of ~4 validation images. What calibration changes in (MAE, mean bias) on the
    validation split, minus what it changes on a fresh test split of the same size: ~0 or above for the
    cross-fitted scores, clearly negative (optimistic) for the old in-sample scoring."""
    gaps: dict[str, list[np.ndarray]] = {"cross_fitted": [], "in_sample": []}
    for replicate in range(60):
        rng = np.random.default_rng(replicate)
        valid, test = _draw(rng, 100), _draw(rng, 100)
        raw_valid, raw_test = _scores(*valid), _scores(*test)
        old = fit_group_offsets(*valid, COLUMNS, shrinkage=False, min_count=1)
        new = fit_group_offsets(*valid, COLUMNS)
        in_sample = _scores(valid[0], apply_group_offsets(valid[1], valid[2], old), valid[2]) - raw_valid
        honest = _scores(valid[0], cross_fitted(*valid, COLUMNS, folds=5, seed=0), valid[2]) - raw_valid
        gaps["in_sample"].append(in_sample - (_scores(test[0], apply_group_offsets(test[1], test[2], old), test[2])
                                              - raw_test))
        gaps["cross_fitted"].append(honest - (_scores(test[0], apply_group_offsets(test[1], test[2], new), test[2])
                                              - raw_test))
    for name, values in gaps.items():
        array = np.array(values)
        mean, error = array.mean(axis=0), array.std(axis=0, ddof=1) / np.sqrt(len(array))
        if name == "cross_fitted":
            assert (mean > -2 * error).all(), f"cross-fitted val is lower than test: {mean} ± {error}"
        else:
            assert (mean < -3 * error).all(), f"the test would not catch in-sample scoring: {mean} ± {error}"
