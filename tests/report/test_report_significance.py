"""The report's verdicts: Holm and the t interval by hand, the two-level bootstrap's variance by hand, the Model
Confidence Set on clear cases, its A/A error rate and power on simulated experiments whose truth is known, and the
table marking a best set only when every experiment has enough seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_report import METRICS, make_run

from facebias.metrics import bias_scores
from facebias.report.render import format_html, format_markdown, notes, shading
from facebias.report.replicates import resampled_run_scores
from facebias.report.significance import (
    holm,
    model_confidence_set,
    reference_p_values,
    seed_interval,
    two_level_replicates,
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


def test_two_level_replicates_by_hand() -> None:
    # five runs scoring 1, 2, 3, 4, 5 on every image resample: mean 3, s = √2.5, s / √5 = √0.5; the seed level is
    # √0.5 · t(4): variance 0.5 · 4 / 2 = 1, 97.5 % quantile 3 + √0.5 · 2.7764
    scores = np.vstack([np.full(200000, value) for value in (1.0, 2.0, 3.0, 4.0, 5.0)])
    replicates = two_level_replicates({"a": scores}, seed=1)["a"]
    assert np.median(replicates) == pytest.approx(3.0, abs=0.01)
    assert replicates.var() == pytest.approx(1.0, rel=0.05)
    assert np.quantile(replicates, 0.975) == pytest.approx(3 + np.sqrt(0.5) * 2.7764451, abs=0.03)
    # identical runs: no seed noise, the replicates are the image resamples themselves
    images = np.random.default_rng(0).normal(5, 1, 50)
    assert two_level_replicates({"a": np.vstack([images] * 3)})["a"] == pytest.approx(images)
    with pytest.raises(ValueError, match="at least 2 runs"):
        two_level_replicates({"a": images[None, :]})


def test_model_confidence_set_on_clear_cases() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 0.1, (2000, 3))
    clear = {"a": 1.0, "b": 5.0, "c": 9.0}
    replicates = {name: clear[name] + noise[:, i] for i, name in enumerate(clear)}
    assert model_confidence_set(clear, replicates, 0.05) == {"a"}
    tied = {"a": 1.0, "b": 1.0, "c": 1.0}
    assert model_confidence_set(tied, {name: 1.0 + noise[:, i] for i, name in enumerate(tied)}, 0.05) == set(tied)
    # one clearly better experiment among six equal ones, under a large noise they share (the same test images):
    # the paired differences single it out
    shared = rng.normal(0, 1.0, 2000)
    many = {"best": 1.0, **{f"e{i}": 2.0 for i in range(6)}}
    paired = {name: value + shared + rng.normal(0, 0.1, 2000) for name, value in many.items()}
    assert model_confidence_set(many, paired, 0.01) == {"best"}
    p_values = reference_p_values(clear, replicates, "a")
    assert p_values["b"] < 1e-6 and set(p_values) == {"b", "c"}


def _simulated_experiments(rng: np.random.Generator, shifts: dict[str, float], seeds: int,
                           images: int = 300) -> dict[str, list[pd.DataFrame]]:
    """Predictions of `seeds` trained networks per experiment on one fresh test set: every network's error on an
    image is the image's difficulty plus the network's own (seed) offset plus noise, plus the experiment's shift."""
    ages = rng.uniform(5, 85, images)
    attributes = pd.DataFrame({"gender": rng.choice(["male", "female"], images),
                               "ethnicity": rng.choice(["asian", "afroamerican", "caucasian"], images),
                               "expression": rng.choice(["happy", "slightlyhappy", "neutral", "other"], images)})
    difficulty = rng.exponential(6.0, images)
    experiments = {}
    for name, shift in shifts.items():
        frames = []
        for _ in range(seeds):
            error = difficulty + rng.normal(0, 0.3) + rng.normal(0, 2.0, images) + shift
            frames.append(attributes.assign(apparent_age=ages, predicted_age=ages + error))
        experiments[name] = frames
    return experiments


def _best_set(experiments: dict[str, list[pd.DataFrame]], alpha: float, seed: int) -> set[str]:
    frames = [frame for runs in experiments.values() for frame in runs]
    scores = resampled_run_scores(frames, 300, seed=seed)["mae"]
    start, by_experiment = 0, {}
    for name, runs in experiments.items():
        by_experiment[name] = scores[start:start + len(runs)]
        start += len(runs)
    estimates = {name: float(np.mean([np.abs(f["predicted_age"] - f["apparent_age"]).mean() for f in runs]))
                 for name, runs in experiments.items()}
    return model_confidence_set(estimates, two_level_replicates(by_experiment, seed=seed), alpha)


def test_a_a_error_rate_and_power_on_simulated_experiments() -> None:
    """Four experiments that are one configuration under different names, 3 seeds each, a fresh test set each
    time: the best set leaves one out in at most ~5 % of replicates; a real 1.5-year difference is found with
    5 seeds each."""
    rng = np.random.default_rng(5)
    replicates = 120
    left_out = sum(len(_best_set(_simulated_experiments(rng, dict.fromkeys("abcd", 0.0), 3), 0.05, seed)) < 4
                   for seed in range(replicates))
    assert left_out / replicates <= 0.09
    found = sum("b" not in _best_set(_simulated_experiments(rng, {"a": 0.0, "b": 1.5}, 5), 0.05, seed)
                for seed in range(40))
    assert found / 40 >= 0.8


def _seeded_predictions(rng: np.random.Generator, scales: dict[str, float], seeds: int) -> tuple[list, dict]:
    n = 400
    ages = rng.uniform(5, 85, n)
    attributes = pd.DataFrame({"gender": rng.choice(["male", "female"], n),
                               "ethnicity": rng.choice(["asian", "afroamerican", "caucasian"], n),
                               "expression": rng.choice(["happy", "slightlyhappy", "neutral", "other"], n)})
    rows, frames = [], {}
    for name, scale in scales.items():
        for seed in range(seeds):
            frame = attributes.assign(apparent_age=ages, predicted_age=ages + rng.normal(0, scale, n))
            run_id = f"{name}-{seed}"
            frames[run_id] = frame
            rows.append(make_run(run_id, name, bias_scores(ages, frame["predicted_age"], attributes), seed=seed))
    return rows, frames


def test_the_table_marks_a_best_set_with_enough_seeds_and_says_its_family() -> None:
    rows, frames = _seeded_predictions(np.random.default_rng(0), {"exp1_a": 6.0, "exp2_b": 6.05, "exp3_c": 12.0}, 5)
    table = results_table(pd.DataFrame(rows), predictions=frames)
    assert table.attrs["interval"] == "two-level" and table.attrs["no_best_set"] is None
    assert list(table["MAE best"]) == [True, True, False]
    assert shading(table, "MAE") == ({0, 1}, {2})
    assert table.loc[0, "MAE low"] < table.loc[0, "MAE"] < table.loc[0, "MAE high"]
    lines = format_markdown(table).splitlines()
    assert lines[2].count("**") >= 2 and "**" not in lines[4].split("|")[6]
    text = " ".join(notes(table))
    assert "Model Confidence Set at α = 0.01 per column" in text and "all 5 columns" in text
    assert "two-level bootstrap over seeds and test images" in format_html(table, "t")


def test_no_best_set_with_fewer_than_three_seeds_or_without_predictions() -> None:
    rows, frames = _seeded_predictions(np.random.default_rng(1), {"exp1_a": 6.0, "exp2_b": 12.0}, 2)
    table = results_table(pd.DataFrame(rows), predictions=frames)
    assert not table["MAE best"].any() and shading(table, "MAE") == (set(), set())
    assert "at least 3 seeds" in table.attrs["no_best_set"] and table.attrs["interval"] == "seeds"
    assert any(note.startswith("No best set is marked: an experiment has 2 run(s)") for note in notes(table))

    rows, frames = _seeded_predictions(np.random.default_rng(1), {"exp1_a": 6.0, "exp2_b": 12.0}, 3)
    assert "no predictions" in results_table(pd.DataFrame(rows)).attrs["no_best_set"]
    shuffled = {**frames, "exp2_b-0": frames["exp2_b-0"].sample(frac=1.0, random_state=1)}
    assert "different images" in results_table(pd.DataFrame(rows), predictions=shuffled).attrs["no_best_set"]


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
