"""Learning curves measure what they say: MAE in years per sample (no broadcasting), the unweighted training MSE
beside the weighted objective, and values recomputed by hand on models whose predictions are known."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from facebias.training.loop import LoopContext, mae_years, run_schedule, squared_error
from facebias.training.schedule import StagePlan


def test_mae_of_perfect_predictions_is_zero_whatever_the_shapes() -> None:
    targets = np.array([0.2, 0.4, 0.6], dtype="float32")  # (batch,) as the pipeline yields them
    predictions = targets.reshape(-1, 1)  # (batch, 1) as the model returns them
    assert np.asarray(mae_years(targets, predictions)).tolist() == [0.0, 0.0, 0.0]
    assert np.asarray(squared_error(targets, predictions)).tolist() == [0.0, 0.0, 0.0]


def test_mae_is_per_sample_years() -> None:
    targets = np.array([0.2, 0.4, 0.6], dtype="float32")
    predictions = np.array([[0.25], [0.4], [0.5]], dtype="float32")
    assert np.asarray(mae_years(targets, predictions)) == pytest.approx([5.0, 0.0, 10.0], abs=1e-4)
    assert np.asarray(squared_error(targets, predictions)) == pytest.approx([0.0025, 0.0, 0.01], abs=1e-7)


def _model(kernel: float, bias: float) -> keras.Model:
    """prediction = kernel * x + bias, as a backbone (identity) followed by a one-unit head."""
    inputs = keras.Input((1,))
    backbone = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")],
                                name="backbone")
    head = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(kernel), bias_initializer=keras.initializers.Constant(bias))],
        name="head")
    return keras.Model(inputs, head(backbone(inputs)))


def _run(model: keras.Model, x: np.ndarray, targets: np.ndarray, weights: np.ndarray, lr: float
         ) -> list[tuple[dict[str, float], int]]:
    records: list[tuple[dict[str, float], int]] = []
    stage = StagePlan(index=1, trainable="all", lr=lr, max_epochs=2, patience=5, batch_size=len(x),
                      max_train_batches=None, run_eagerly=True)
    context = LoopContext(sink=lambda metrics, step: records.append((dict(metrics), step)), verbose=0)
    run_schedule(model, [stage], (x, targets, weights), (x, targets), context)
    *curves, summary = records
    assert summary == ({"stage1/epochs": 2, "feature_cache/hits": 0, "feature_cache/misses": 0}, 0), \
        "the loop summary comes last, once"
    return curves


def test_every_curve_of_a_perfect_model_is_zero() -> None:
    x = np.array([[0.2], [0.4], [0.6], [0.35]], dtype="float32")
    records = _run(_model(1.0, 0.0), x, x[:, 0], np.array([1.0, 3.0, 0.5, 2.0]), lr=1e-3)
    curves = {key for metrics, _ in records for key in metrics}
    assert curves == {f"{prefix}/{name}" for prefix in ("stage1", "epoch")
                      for name in ("loss", "val_loss", "train_mse", "mae", "val_mae")}
    assert all(value == pytest.approx(0.0, abs=1e-9) for metrics, _ in records for value in metrics.values())


def test_curves_equal_a_hand_computation_on_known_predictions() -> None:
    x = np.array([[0.2], [0.4], [0.6], [0.35]], dtype="float32")
    targets = np.array([0.25, 0.3, 0.7, 0.35], dtype="float32")
    weights = np.array([1.0, 3.0, 0.5, 2.0], dtype="float32")
    # lr so small that the weights stay put: the first epoch's running means are those of the initial model
    records = _run(_model(1.0, 0.0), x, targets, weights, lr=1e-12)
    first = next(metrics for metrics, step in records if "stage1/loss" in metrics and step == 0)
    errors = x[:, 0].astype(float) - targets
    assert first["stage1/loss"] == pytest.approx(np.mean(weights * errors**2), rel=1e-5)
    assert first["stage1/train_mse"] == pytest.approx(np.mean(errors**2), rel=1e-5)
    assert first["stage1/val_loss"] == pytest.approx(np.mean(errors**2), rel=1e-5)
    assert first["stage1/mae"] == pytest.approx(100 * np.mean(np.abs(errors)), rel=1e-5)
    assert first["stage1/val_mae"] == pytest.approx(100 * np.mean(np.abs(errors)), rel=1e-5)
    assert first["stage1/loss"] != pytest.approx(first["stage1/train_mse"], rel=1e-2), "weights must matter"
