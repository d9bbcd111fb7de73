"""End to end, on a model that has learned enough for its predictions to vary: the curves agree with the final
evaluation, every logged interval and null is recomputed from the logged predictions, and a seed fixes the numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_facebias, store_runs

from facebias.metrics import bias_intervals, bias_scores, debiased_bias_scores, permutation_null

ONE_EPOCH = ["data.n_train=800", "data.n_valid=200", "data.n_test=100", "schedule.stages.0.max_epochs=1",
             "schedule.stages.0.batch_size=8", "schedule.stages.0.lr=3e-3", "weighting=none", "trainer.verbose=0",
             "statistics.bootstrap_resamples=400", "statistics.permutations=300"]
"""One stage of one epoch (so the final weights are the last epoch's) that moves predictions away from a constant."""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Three runs in one store: seed 0, seed 0 again, seed 1."""
    cwd = tmp_path_factory.mktemp("one-epoch")
    for seed in (0, 0, 1):
        result = run_facebias(cwd, *ONE_EPOCH, f"seed={seed}")
        assert result.returncode == 0, result.stderr[-3000:]
    _, found = store_runs(cwd)
    return cwd, found


def _predictions(cwd: Path, run, split: str) -> pd.DataFrame:
    client, _ = store_runs(cwd)
    return pd.read_csv(client.download_artifacts(run.info.run_id, f"predictions_{split}.csv", str(cwd)))


def _last(cwd: Path, run, key: str) -> float:
    client, _ = store_runs(cwd)
    history = client.get_metric_history(run.info.run_id, key)
    return max(history, key=lambda m: m.step).value


def test_the_last_epochs_val_mae_is_the_final_val_mae(runs) -> None:
    cwd, found = runs
    run = found[0]
    predictions = _predictions(cwd, run, "val")
    assert predictions["predicted_age"].std() > 1.0, "a near-constant model would hide a wrong MAE"
    final = run.data.metrics["val/mae"]
    assert final == pytest.approx(predictions["abs_error"].mean(), rel=1e-9)
    assert _last(cwd, run, "epoch/val_mae") == pytest.approx(final, rel=1e-5)
    assert _last(cwd, run, "stage1/val_mae") == pytest.approx(final, rel=1e-5)
    client, _ = store_runs(cwd)
    history = pd.read_csv(client.download_artifacts(run.info.run_id, "history.csv", str(cwd)))
    assert list(history.columns) == ["epoch", "loss", "val_loss", "train_mse", "mae", "val_mae"]
    assert history["val_mae"].iloc[-1] == pytest.approx(final, rel=1e-5)


def test_without_weighting_the_objective_is_the_unweighted_training_mse(runs) -> None:
    cwd, found = runs
    assert _last(cwd, found[0], "epoch/loss") == pytest.approx(_last(cwd, found[0], "epoch/train_mse"), rel=1e-6)


def test_logged_scores_intervals_and_nulls_are_those_of_the_logged_predictions(runs) -> None:
    cwd, found = runs
    run = found[0]
    metrics = run.data.metrics
    for split in ("val", "test"):
        frame = _predictions(cwd, run, split)
        ages, predicted = frame["apparent_age"].to_numpy(), frame["predicted_age"].to_numpy()
        attributes = frame[["gender", "ethnicity", "expression"]]
        scores = bias_scores(ages, predicted, attributes)
        intervals = bias_intervals(ages, predicted, attributes, n_resamples=400, seed=0)
        nulls = permutation_null(ages, predicted, attributes, n_permutations=300, seed=0)
        debiased = debiased_bias_scores(ages, predicted, attributes, n_resamples=400, seed=0)
        assert len(debiased) == 4
        for name, result in debiased.items():
            logged = [metrics[f"{split}/{name}{suffix}"] for suffix in ("", "_ci_low", "_ci_high")]
            assert logged == pytest.approx([result.estimate, result.low, result.high], rel=1e-9)
            assert 0.0 <= logged[1] <= logged[2]
        for name, value in scores.items():
            assert metrics[f"{split}/{name}"] == pytest.approx(value, rel=1e-9)
            assert metrics[f"{split}/{name}_ci_low"] == pytest.approx(intervals[name][0], rel=1e-9)
            assert metrics[f"{split}/{name}_ci_high"] == pytest.approx(intervals[name][1], rel=1e-9)
        for name, result in nulls.items():
            assert metrics[f"{split}/{name}_null"] == pytest.approx(result.null, rel=1e-9)
            assert metrics[f"{split}/{name}_p"] == pytest.approx(result.p, rel=1e-9)
        assert metrics[f"{split}/mae_ci_low"] < metrics[f"{split}/mae"] < metrics[f"{split}/mae_ci_high"]


def test_the_same_seed_gives_the_same_numbers_and_another_seed_does_not(runs) -> None:
    _, found = runs
    first, again, other = (run.data.metrics for run in found)
    final = sorted(key for key in first if key.startswith(("val/", "test/")))
    assert final and all(key in again for key in final)
    assert {key: first[key] for key in final} == {key: again[key] for key in final}
    assert first["val/mae"] != other["val/mae"]
    assert np.mean([first[key] != other[key] for key in final]) > 0.5
