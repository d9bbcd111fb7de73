"""The report marks what is beyond noise: Holm by hand, Welch over seeds, a paired bootstrap over the same images."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report import METRICS, make_run

from facebias.metrics import bias_scores
from facebias.report.render import format_html, format_markdown, shading
from facebias.report.significance import (
    PAIRED_BOOTSTRAP,
    WELCH,
    best_group_by_seeds,
    holm,
    paired_bootstrap_p,
    seed_interval,
)
from facebias.report.table import results_table


def test_holm_by_hand() -> None:
    # sorted: a 0.01 × 3 = 0.03; c 0.03 × 2 = 0.06; b 0.04 × 1 = 0.04, raised to the running maximum 0.06
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})


def test_seed_interval_by_hand() -> None:
    # mean 2, s = 1, t(0.975, 2) = 4.302652729911275 → 2 ± 4.3027 / √3
    low, high = seed_interval([1.0, 2.0, 3.0])
    assert (low, high) == pytest.approx((2 - 4.302652729911275 / np.sqrt(3), 2 + 4.302652729911275 / np.sqrt(3)))
    assert np.isnan(seed_interval([1.0])[0])


def test_paired_bootstrap_p_by_hand() -> None:
    assert paired_bootstrap_p(np.ones(99), np.zeros(99)) == pytest.approx(2 / 100)
    assert paired_bootstrap_p(np.zeros(99), np.zeros(99)) == 1.0


def test_welch_keeps_the_noisy_runner_up_and_drops_the_clearly_worse() -> None:
    group = best_group_by_seeds({"a": [9.0, 9.1, 8.9], "b": [9.3, 8.5, 10.0], "c": [12.0, 12.1, 11.9]})
    assert group == {"a", "b"}
    assert best_group_by_seeds({"a": [9.0, 9.1], "b": [9.2]}) is None


def _seeded(name: str, maes: list[float]) -> list[dict[str, object]]:
    return [make_run(f"{name}{seed}", name, {metric: mae + index for index, (metric, _) in enumerate(METRICS)},
                     seed=seed) for seed, mae in enumerate(maes)]


def test_the_table_marks_the_best_group_over_seeds() -> None:
    rows = _seeded("exp1_a", [9.0, 9.1, 8.9]) + _seeded("exp2_b", [9.3, 8.5, 10.0]) + _seeded("exp3_c", [12, 12, 11.9])
    table = results_table(pd.DataFrame(rows))
    assert table.attrs["comparison"] == WELCH and table.attrs["interval"] == "seeds"
    assert list(table["MAE best"]) == [True, True, False]
    assert shading(table, "MAE") == ({0, 1}, {2})
    lines = format_markdown(table).splitlines()
    assert lines[2].count("**") == 10 and lines[3].count("**") == 10 and "**" not in lines[4]
    page = format_html(table, "t")
    assert "Welch&#x27;s t test over seeds (Holm-corrected" in page


def _predictions(rng: np.random.Generator, ages: np.ndarray, attributes: pd.DataFrame, scale: float) -> pd.DataFrame:
    frame = attributes.copy()
    frame.insert(0, "apparent_age", ages)
    frame.insert(1, "predicted_age", ages + rng.normal(0, scale, len(ages)))
    frame.insert(2, "abs_error", (frame["predicted_age"] - ages).abs())
    return frame


def test_the_table_marks_the_best_group_on_the_same_images_for_single_runs() -> None:
    rng = np.random.default_rng(0)
    n = 400
    ages = rng.uniform(5, 85, n)
    attributes = pd.DataFrame({"gender": rng.choice(["male", "female"], n),
                               "ethnicity": rng.choice(["asian", "afroamerican", "caucasian"], n),
                               "expression": rng.choice(["happy", "slightlyhappy", "neutral", "other"], n)})
    good = _predictions(rng, ages, attributes, 6.0)
    close = good.copy()
    close["predicted_age"] = good["predicted_age"] + rng.normal(0, 0.05, n)  # the same model, give or take
    close["abs_error"] = (close["predicted_age"] - ages).abs()
    bad = _predictions(rng, ages, attributes, 12.0)
    frames = {"r1": good, "r2": close, "r3": bad}
    rows = []
    for number, (run_id, frame) in enumerate(frames.items(), start=1):
        rows.append(make_run(run_id, f"exp{number}", bias_scores(ages, frame["predicted_age"], attributes)))
    table = results_table(pd.DataFrame(rows), predictions=frames)
    assert table.attrs["comparison"] == PAIRED_BOOTSTRAP and table.attrs["interval"] == "images"
    assert list(table["MAE best"]) == [True, True, False]
    assert shading(table, "MAE") == ({0, 1}, {2})

    shuffled = {**frames, "r3": bad.sample(frac=1.0, random_state=1)}
    assert results_table(pd.DataFrame(rows), predictions=shuffled).attrs["comparison"] is None, "not the same images"


def test_bias_within_its_noise_floor_is_marked() -> None:
    noisy = {**{metric: 5.0 for metric, _ in METRICS}, "gender_bias_null": 4.0, "gender_bias_p": 0.4}
    clear = {**{metric: 5.0 for metric, _ in METRICS}, "gender_bias_null": 1.0, "gender_bias_p": 0.001}
    rows = [make_run("a0", "exp1", noisy, seed=0), make_run("a1", "exp1", {**noisy, "gender_bias_p": 0.2}, seed=1),
            make_run("b0", "exp2", clear)]
    table = results_table(pd.DataFrame(rows))
    assert list(table["Gender Bias null"]) == [4.0, 1.0]
    assert list(table["Gender Bias p"]) == pytest.approx([0.3, 0.001])
    lines = format_markdown(table).splitlines()
    gender = [line.strip("|").split("|")[7].strip() for line in lines[2:]]
    assert gender[0].endswith(" †") and "†" not in gender[1]
    assert np.isnan(table.loc[0, "Age Bias p"]), "no null logged: no mark"


def test_error_bars_are_the_intervals_around_the_means() -> None:
    from facebias.report.plot import _error_bars

    table = pd.DataFrame({"MAE": [7.0, 0.04], "MAE low": [6.5, 0.11], "MAE high": [8.0, 6.04]})
    # the second interval lies above its (upward-biased) mean: its lower bar is drawn as 0, never negative
    assert _error_bars(table, "MAE").ravel().tolist() == pytest.approx([0.5, 0.0, 1.0, 6.0])
    assert _error_bars(table.assign(**{"MAE low": np.nan, "MAE high": np.nan}), "MAE") is None
