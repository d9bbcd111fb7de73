"""MAE, per-group MAE and bias scores against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from facebias.metrics import EmptyGroupWarning, bias_scores, group_mae_table, pairwise_bias


def _attributes(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["gender", "ethnicity", "expression"])


# Four samples, one per age group (ages 10, 30, 50, 70), errors 1, 2, 3, 6 years.
Y_TRUE = [10.0, 30.0, 50.0, 70.0]
Y_PRED = [11.0, 28.0, 53.0, 64.0]
ATTRIBUTES = _attributes(
    [
        ("male", "asian", "happy"),
        ("female", "asian", "neutral"),
        ("male", "caucasian", "happy"),
        ("female", "afroamerican", "other"),
    ]
)


def test_bias_scores_match_hand_computed_values() -> None:
    with pytest.warns(EmptyGroupWarning, match="slightlyhappy"):
        scores = bias_scores(Y_TRUE, Y_PRED, ATTRIBUTES)
    assert scores["mae"] == pytest.approx(3.0)
    # age groups MAE 1, 2, 3, 6 → pairs |1-2| |1-3| |1-6| |2-3| |2-6| |3-6| = 1+2+5+1+4+3 = 16 / 6
    assert scores["age_bias"] == pytest.approx(16 / 6)
    # male (1, 3) → 2; female (2, 6) → 4
    assert scores["gender_bias"] == pytest.approx(2.0)
    # asian 1.5, caucasian 3, afroamerican 6 → (1.5 + 4.5 + 3) / 3
    assert scores["ethnicity_bias"] == pytest.approx(3.0)
    # happy 2, neutral 2, other 6, slightlyhappy absent → pairs |0| |4| |4| / 3
    assert scores["expression_bias"] == pytest.approx(8 / 3)


def test_group_table_has_every_group_with_count_and_nan_for_absent() -> None:
    table = group_mae_table(Y_TRUE, Y_PRED, ATTRIBUTES)
    assert len(table) == 2 + 3 + 4 + 4
    absent = table[(table.attribute == "expression") & (table.group == "slightlyhappy")].iloc[0]
    assert absent["count"] == 0 and math.isnan(absent["mae"])
    afro = table[(table.attribute == "ethnicity") & (table.group == "afroamerican")].iloc[0]
    assert afro["count"] == 1 and afro["mae"] == pytest.approx(6.0)


def test_age_groups_come_from_ground_truth_not_prediction() -> None:
    # true age 19 (<20) predicted 45: it stays in <20
    table = group_mae_table([19.0, 25.0], [45.0, 25.0], _attributes([("male", "asian", "happy")] * 2))
    young = table[(table.attribute == "age_group") & (table.group == "<20")].iloc[0]
    assert young["count"] == 1 and young["mae"] == pytest.approx(26.0)


def test_single_group_bias_is_zero_with_warning_not_nan() -> None:
    with pytest.warns(EmptyGroupWarning, match="fewer than two groups"):
        assert pairwise_bias({"male": 3.0, "female": float("nan")}, "gender") == 0.0


def test_accepts_numpy_and_series_inputs() -> None:
    with pytest.warns(EmptyGroupWarning):
        scores = bias_scores(pd.Series(Y_TRUE), np.array(Y_PRED), ATTRIBUTES.set_index(pd.Index([5, 6, 7, 8])))
    assert scores["mae"] == pytest.approx(3.0)
    assert set(scores) == {"mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias"}


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        group_mae_table([1.0, 2.0], [1.0, 2.0], ATTRIBUTES)
