"""Group DRO: the exponentiated-gradient step by hand, the worst group gaining weight, q surviving a resume."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from facebias.training.checkpoint import load_checkpoint
from facebias.training.group_dro import GroupDRO
from facebias.training.hooks import TrainingHooks
from facebias.training.loop import LoopContext, run_schedule
from facebias.training.schedule import StagePlan


def test_one_step_matches_a_hand_computation() -> None:
    dro = GroupDRO(["a", "b", "c"], step_size=2.0)
    targets = np.array([0.1, 0.3, 0.5, 0.2, 0.9], dtype=np.float32)
    codes = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0.2, 0.3, 0.1, 0.2, 0.4], dtype=np.float32)
    loss = dro.loss()(dro.pack(targets, codes), predicted[:, None])
    group_loss = np.array([(0.1**2 + 0.0) / 2, (0.4**2 + 0.0) / 2, 0.5**2])
    q = np.full(3, 1 / 3) * np.exp(2.0 * group_loss)
    q /= q.sum()
    np.testing.assert_allclose(dro.weights(), q, rtol=1e-5)
    assert float(loss) == pytest.approx(float(q @ group_loss), rel=1e-5)
    assert dro.curves() == {"dro_q_max": pytest.approx(q.max(), rel=1e-5), "dro_q_max_group": 2.0}


def test_targets_without_groups_get_the_plain_mse_and_leave_q_alone() -> None:
    dro = GroupDRO(["a", "b"], step_size=1.0)
    value = dro.loss()(np.array([0.1, 0.5], dtype=np.float32), np.array([[0.3], [0.5]], dtype=np.float32))
    assert float(value) == pytest.approx(0.2**2 / 2, rel=1e-5)
    np.testing.assert_allclose(dro.weights(), [0.5, 0.5])


def _linear_model() -> keras.Model:
    inputs = keras.Input((1,))
    backbone = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones", trainable=False)],
        name="backbone",
    )
    head = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, kernel_initializer="zeros")], name="head")
    return keras.Model(inputs, head(backbone(inputs)))


def _toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A majority group (90 %) with target 0.3 + 0.2 x and a minority with 0.7 − 0.2 x: one line cannot fit both, so
    plain MSE serves the majority and leaves the minority the worst group."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 1)).astype(np.float32)
    codes = (np.arange(400) % 10 == 0).astype(np.int32)
    targets = np.where(codes == 0, 0.3 + 0.2 * x[:, 0], 0.7 - 0.2 * x[:, 0]).astype(np.float32)
    return x, targets, codes


def _train(dro: GroupDRO | None, epochs: int = 6, checkpoint: Path | None = None) -> np.ndarray:
    """Train the line; returns each group's MSE. Validation (early stopping's best weights) holds both groups alike."""
    keras.utils.set_random_seed(0)
    x, targets, codes = _toy()
    valid = np.r_[np.flatnonzero(codes == 1), np.flatnonzero(codes == 0)[:40]]
    model = _linear_model()
    stage = StagePlan(
        index=1, trainable="head", lr=0.05, max_epochs=epochs, patience=epochs, batch_size=40, max_train_batches=None
    )
    train_targets = targets if dro is None else dro.pack(targets, codes)
    context = LoopContext(sink=lambda metrics, step: None, verbose=0, hooks=dro or TrainingHooks(),
                          checkpoint_file=checkpoint)
    run_schedule(model, [stage], (x, train_targets, None), (x[valid], targets[valid]), context)
    predicted = model.predict(x, verbose=0)[:, 0]
    return np.array([np.mean((predicted - targets)[codes == g] ** 2) for g in (0, 1)])


def test_dro_raises_the_weight_of_the_worst_group_and_lowers_its_loss(tmp_path: Path) -> None:
    plain = _train(None)
    assert plain[1] > 5 * plain[0], "plain MSE leaves the minority the worst group"
    dro = GroupDRO(["majority", "minority"], step_size=1.0)
    robust = _train(dro, checkpoint=tmp_path / "last.npz")
    q = dro.weights()
    assert q[1] > 0.5 > q[0], f"the worst group's weight rose from 0.5: {q}"
    assert robust[1] < plain[1] / 2, f"its loss fell: {robust[1]} with DRO vs {plain[1]} without"
    assert robust.max() < 0.6 * plain.max(), "the worst-group loss is what DRO minimises"
    saved = load_checkpoint(tmp_path / "last.npz").mitigation_state
    assert saved == pytest.approx(list(q), rel=1e-6), "q is checkpointed"


def test_resume_restores_q(tmp_path: Path) -> None:
    saved = GroupDRO(["majority", "minority"], step_size=1.0)
    _train(saved, epochs=2, checkpoint=tmp_path / "last.npz")
    checkpoint = load_checkpoint(tmp_path / "last.npz")
    assert checkpoint.mitigation_state[1] != pytest.approx(0.5), "two epochs moved q"
    resumed = GroupDRO(["majority", "minority"], step_size=1.0)
    x, targets, codes = _toy()
    stage = StagePlan(
        index=1, trainable="head", lr=0.05, max_epochs=2, patience=2, batch_size=40, max_train_batches=None
    )
    context = LoopContext(sink=lambda metrics, step: None, verbose=0, hooks=resumed, resume=checkpoint)
    run_schedule(_linear_model(), [stage], (x, resumed.pack(targets, codes), None), (x, targets), context)
    np.testing.assert_allclose(resumed.weights(), saved.weights(), rtol=1e-6)
