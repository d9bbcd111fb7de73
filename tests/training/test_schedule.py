"""Schedule semantics: after each kind of stage, exactly the variables that should change did."""

from __future__ import annotations

import numpy as np
import pytest

from facebias.config import BackboneConfig, HeadConfig, StageConfig, TrainerConfig
from facebias.errors import NonFiniteLossError
from facebias.training.schedule import plan_stages

keras = pytest.importorskip("keras")

from facebias.models.assemble import build_model  # noqa: E402
from facebias.training.loop import LoopContext, run_schedule, run_stage  # noqa: E402


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    backbone = BackboneConfig(name="small_cnn", input_size=32, preprocessing="unit", widths=[4, 8])
    return build_model(backbone, HeadConfig(name="mlp", dropout=0.0, hidden_units=[8]), (32, 32), 32)


def _data(n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.uniform(0.1, 0.9, n).astype("float32")


def _snapshot(model: keras.Model, part: str) -> dict[str, np.ndarray]:
    return {v.path: np.array(v.numpy()) for v in model.get_layer(part).variables}


def _changed(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> set[str]:
    return {name for name in before if not np.array_equal(before[name], after[name])}


def _run(trainable: str) -> tuple[set[str], set[str], keras.Model]:
    model = _model()
    images, targets = _data()
    before = {part: _snapshot(model, part) for part in ("backbone", "head")}
    stage = plan_stages([StageConfig(trainable=trainable, lr=1e-2, max_epochs=2, patience=5, batch_size=16)],
                        TrainerConfig())[0]
    run_stage(model, stage, (images, targets, None), (images[:16], targets[:16]), 0,
              LoopContext(lambda m, s: None, verbose=0))
    after = {part: _snapshot(model, part) for part in ("backbone", "head")}
    return _changed(before["backbone"], after["backbone"]), _changed(before["head"], after["head"]), model


def test_head_stage_changes_only_the_head_and_freezes_batch_norm_statistics() -> None:
    backbone_changed, head_changed, _ = _run("head")
    assert backbone_changed == set(), "a frozen backbone changed (weights or batch-norm moving statistics)"
    assert head_changed, "the head did not train"


def test_backbone_stage_changes_only_the_backbone() -> None:
    backbone_changed, head_changed, _ = _run("backbone")
    assert head_changed == set()
    assert any("moving_mean" in name for name in backbone_changed), "batch norm of a trained backbone must update"
    assert any("kernel" in name for name in backbone_changed)


def test_all_stage_changes_both() -> None:
    backbone_changed, head_changed, _ = _run("all")
    assert backbone_changed and head_changed


def test_schedule_curves_continue_across_stages_and_early_stopping_restores_best() -> None:
    model = _model()
    images, targets = _data()
    stages = plan_stages(
        [StageConfig(trainable="head", lr=1e-2, max_epochs=3, patience=5, batch_size=16),
         StageConfig(trainable="all", lr=1e-3, max_epochs=2, patience=5, batch_size=16)],
        TrainerConfig(),
    )
    logged: list[tuple[dict[str, float], int]] = []
    epochs = run_schedule(model, stages, (images, targets, None), (images[:16], targets[:16]),
                          LoopContext(lambda m, s: logged.append((dict(m), s)), verbose=0))
    assert epochs == [3, 2]
    global_steps = [step for metrics, step in logged if "epoch/loss" in metrics]
    assert global_steps == [0, 1, 2, 3, 4]
    stage2_steps = [step for metrics, step in logged if "stage2/val_mae" in metrics]
    assert stage2_steps == [0, 1]
    val_losses = [m["stage2/val_loss"] for m, _ in logged if "stage2/val_loss" in m]
    restored = model.evaluate(images[:16], targets[:16], verbose=0, return_dict=True)["loss"]
    assert restored == pytest.approx(min(val_losses), rel=1e-4)


def test_quick_mode_caps_epochs_batches_and_batch_size() -> None:
    stages = plan_stages([StageConfig(max_epochs=50, batch_size=32)],
                         TrainerConfig(max_epochs_cap=2, max_train_batches=3, max_batch_size=8))
    assert (stages[0].max_epochs, stages[0].batch_size, stages[0].max_train_batches) == (2, 8, 3)


def test_non_finite_loss_stops_with_stage_epoch_and_hint() -> None:
    model = _model()
    images, targets = _data()
    targets[0] = np.nan
    stage = plan_stages([StageConfig(trainable="all", lr=1e-3, max_epochs=3, batch_size=48)], TrainerConfig())[0]
    with pytest.raises(NonFiniteLossError, match=r"stage 1, epoch 1.*lower learning rate"):
        run_stage(model, stage, (images, targets, None), (images[:16], targets[:16]), 0,
                  LoopContext(lambda m, s: None, verbose=0))
