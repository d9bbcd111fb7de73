"""Group-offset calibration: offsets by hand, and every validation group's mean residual brought to 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facebias.calibration import GroupOffsets, apply_group_offsets, fit_group_offsets


def _attributes(genders: list[str], expressions: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"gender": genders, "ethnicity": ["asian"] * len(genders), "expression": expressions})


def test_offsets_are_each_groups_mean_residual_by_hand() -> None:
    attributes = _attributes(["female", "female", "male", "male", "male"], ["happy"] * 5)
    ages = np.array([20.0, 30.0, 40.0, 50.0, 60.0])
    predicted = np.array([24.0, 32.0, 37.0, 50.0, 54.0])
    offsets = fit_group_offsets(ages, predicted, attributes, ["gender"])
    assert offsets.offsets == pytest.approx({"female": 3.0, "male": -3.0})
    assert offsets.counts == {"female": 2, "male": 3}
    np.testing.assert_allclose(apply_group_offsets(predicted, attributes, offsets), [21, 29, 40, 53, 57])


def test_calibrated_validation_residuals_have_mean_zero_in_every_group() -> None:
    rng = np.random.default_rng(0)
    n = 500
    attributes = _attributes(
        list(rng.choice(["female", "male"], n)), list(rng.choice(["happy", "neutral", "other"], n))
    )
    ages = rng.uniform(5, 80, n)
    bias = {"female": 4.0, "male": -2.0}
    predicted = ages + attributes["gender"].map(bias).to_numpy() + rng.normal(0, 5, n)
    columns = ["gender", "expression"]
    offsets = fit_group_offsets(ages, predicted, attributes, columns)
    assert len(offsets.offsets) == 6
    residuals = pd.Series(apply_group_offsets(predicted, attributes, offsets) - ages)
    keys = attributes["gender"] + "|" + attributes["expression"]
    np.testing.assert_allclose(residuals.groupby(keys).mean().to_numpy(), 0.0, atol=1e-9)
    assert residuals.groupby(keys).mean().index.tolist() == sorted(offsets.offsets)
    raw = pd.Series(predicted - ages).groupby(attributes["gender"]).mean()
    assert raw["female"] - raw["male"] == pytest.approx(6.0, abs=1.5), "the uncorrected data had the bias"


def test_a_group_without_an_offset_is_left_as_it_is_and_offsets_round_trip() -> None:
    offsets = GroupOffsets(("gender",), {"female": 2.5}, {"female": 4})
    attributes = _attributes(["female", "male"], ["happy", "happy"])
    np.testing.assert_allclose(apply_group_offsets(np.array([30.0, 40.0]), attributes, offsets), [27.5, 40.0])
    assert GroupOffsets.from_dict(offsets.to_dict()) == offsets
