"""Group class weights: the 96-group key, the formula N / (2 · n_g), training split only."""

from __future__ import annotations

import pandas as pd
import pytest

from facebias.data.groups import group_keys
from facebias.training.weighting import group_sample_weights, group_weights


def _frame() -> pd.DataFrame:
    rows = [("male", "asian", "<20", "happy")] * 3 + [("female", "caucasian", "20-39", "neutral")] * 1
    rows += [("female", "caucasian", "20-39", "other")] * 4
    return pd.DataFrame(rows, columns=["gender", "ethnicity", "age_group", "expression"])


def test_group_weights_formula_and_count() -> None:
    weights = group_weights(_frame())
    assert len(weights) == 3
    assert weights["male|asian|<20|happy"] == pytest.approx(8 / (2 * 3))
    assert weights["female|caucasian|20-39|neutral"] == pytest.approx(8 / (2 * 1))
    assert weights["female|caucasian|20-39|other"] == pytest.approx(8 / (2 * 4))


def test_sample_weights_follow_each_rows_group() -> None:
    weights = group_sample_weights(_frame())
    assert weights.tolist() == pytest.approx([8 / 6] * 3 + [4.0] + [1.0] * 4)
    # every group carries the same total weight N / 2
    assert weights[:3].sum() == pytest.approx(weights[3:4].sum()) == pytest.approx(weights[4:].sum())


def test_group_key_needs_every_column() -> None:
    with pytest.raises(ValueError, match="age_group"):
        group_keys(_frame().drop(columns="age_group"))


def test_group_keys_join_each_rows_own_values_whatever_the_index_and_dtype() -> None:
    frame = _frame().astype({"expression": "category"}).set_axis([7, 3, 5, 0, 1, 2, 6, 4])
    keys = group_keys(frame)
    assert keys.index.tolist() == [7, 3, 5, 0, 1, 2, 6, 4]
    assert keys.tolist() == ["|".join(row) for row in frame.astype(str).itertuples(index=False)]
    assert group_keys(frame, ["ethnicity"]).tolist() == frame["ethnicity"].tolist()
    with pytest.raises(ValueError, match="at least one"):
        group_keys(frame, [])
