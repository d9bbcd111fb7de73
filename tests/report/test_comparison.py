"""Arms against a fixed baseline: the table's cells against a recomputation, Holm over the whole table, and the
verdicts on simulated arms whose truth is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from facebias.report.comparison import compare_with_baseline, markdown
from facebias.report.significance import holm


def _arms(rng: np.random.Generator, shifts: dict[str, float], seeds: int = 5, n: int = 400) -> dict[str, list]:
    ages = rng.uniform(5, 85, n)
    attributes = pd.DataFrame({"gender": rng.choice(["male", "female"], n),
                               "ethnicity": rng.choice(["asian", "afroamerican", "caucasian"], n),
                               "expression": rng.choice(["happy", "slightlyhappy", "neutral", "other"], n)})
    difficulty = rng.exponential(6.0, n)
    return {name: [attributes.assign(apparent_age=ages,
                                     predicted_age=ages + difficulty + shift + rng.normal(0, 0.2) + rng.normal(0, 2, n))
                   for _ in range(seeds)] for name, shift in shifts.items()}


def test_a_clear_difference_is_beyond_noise_and_no_difference_is_not() -> None:
    table = compare_with_baseline(_arms(np.random.default_rng(0), {"none": 0.0, "same": 0.0, "worse": 2.0}), "none")
    mae = table[table["score"] == "mae"].set_index("arm")
    assert bool(mae.loc["worse", "beyond_noise"]) and not bool(mae.loc["same", "beyond_noise"])
    assert mae.loc["worse", "difference"] == pytest.approx(mae.loc["worse", "mean"] - mae.loc["none", "mean"])
    assert mae.loc["none", "low"] < mae.loc["none", "mean"] < mae.loc["none", "high"]
    assert table.attrs["family"] == 2 * 5, "every (arm, score) but the baseline's, in one family"
    tested = table.dropna(subset=["p"])
    expected = holm({(s, a): p for s, a, p in zip(tested["score"], tested["arm"], tested["p"], strict=True)})
    assert tested["p_holm"].tolist() == pytest.approx([expected[(s, a)] for s, a in zip(tested["score"],
                                                                                        tested["arm"], strict=True)])
    text = markdown(table)
    assert "| mae | none | 5 |" in text and "(baseline)" in text


def test_arms_need_three_seeds_and_the_same_images() -> None:
    arms = _arms(np.random.default_rng(1), {"none": 0.0, "other": 0.0}, seeds=2)
    with pytest.raises(ValueError, match="at least 3 runs"):
        compare_with_baseline(arms, "none")
    arms = _arms(np.random.default_rng(1), {"none": 0.0, "other": 0.0})
    arms["other"][0] = arms["other"][0].sample(frac=1.0, random_state=0)
    with pytest.raises(ValueError, match="different images"):
        compare_with_baseline(arms, "none")
    with pytest.raises(ValueError, match="baseline"):
        compare_with_baseline(arms, "missing")
