"""Online group DRO for regression (Sagawa et al., ICLR 2020): per-group weights q, updated every training step.

Each training target carries its sample's group as a second column, (age / 100, group code). At every step the
loss computes each group's mean squared error in the batch, loss_g, multiplies q_g by exp(step_size · loss_g),
renormalises q to sum to 1, and returns Σ_g q_g · loss_g (groups absent from the batch contribute nothing). The
update happens inside the Keras loss, so it runs in the compiled train step; validation targets have no group
column, and on them the loss is the plain MSE (early stopping and `val_loss` are as without DRO).

q lives in a non-trainable variable outside the model: checkpoints save it (`state`) and resume restores it.
`GroupDRO` is the loop's hooks (facebias.training.hooks) for it: loss, curves, state.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from facebias.training.hooks import TrainingHooks

DRO_CURVES: tuple[str, str] = ("dro_q_max", "dro_q_max_group")
"""The curves a DRO run adds: the largest q, and its group's index into the group list (dro_groups.json)."""


class GroupDRO(TrainingHooks):
    """The DRO state of a run: the group names, the step size and the current weights q (uniform at first)."""

    def __init__(self, group_names: Sequence[str], step_size: float) -> None:
        if not group_names:
            raise ValueError("group DRO needs at least one group")
        self.group_names = list(group_names)
        self.step_size = float(step_size)
        count = len(self.group_names)
        self.q = keras.Variable(np.full(count, 1.0 / count, dtype=np.float32), trainable=False, name="dro_q")

    def pack(self, targets: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Training targets with each sample's group code as a second column: shape (n, 2), float32."""
        return np.stack([np.asarray(targets, dtype=np.float32), np.asarray(codes, dtype=np.float32)], axis=1)

    def loss(self) -> keras.losses.Loss:
        """The Keras loss to compile with (the same object for every stage, so q carries on)."""
        return GroupDROLoss(self)

    def weights(self) -> np.ndarray:
        return np.asarray(self.q.numpy(), dtype=float)

    def curves(self) -> dict[str, float]:
        """The epoch's DRO curve values: the largest q and the index of its group."""
        q = self.weights()
        worst = int(np.argmax(q))
        return {DRO_CURVES[0]: float(q[worst]), DRO_CURVES[1]: float(worst)}

    def state(self) -> list[float]:
        """q, JSON-friendly (for checkpoints)."""
        return [float(value) for value in self.weights()]

    def restore(self, values: Sequence[float]) -> None:
        """Put back q saved by `state`."""
        if len(values) != len(self.group_names):
            raise RuntimeError(
                f"the checkpoint holds {len(values)} DRO weights, the run has "
                f"{len(self.group_names)} groups: it was written with other weighting.attributes"
            )
        self.q.assign(np.asarray(values, dtype=np.float32))

    def describe(self) -> dict[str, object]:
        """The groups and their final weights (the artifact dro_groups.json)."""
        return {
            "step_size": self.step_size,
            "groups": [
                {"index": i, "group": name, "q": q}
                for i, (name, q) in enumerate(zip(self.group_names, self.state(), strict=True))
            ],
        }


class GroupDROLoss(keras.losses.Loss):
    """Σ_g q_g · loss_g on (target, group) pairs, updating q first; the plain MSE on targets without a group."""

    def __init__(self, dro: GroupDRO) -> None:
        super().__init__(name="group_dro", reduction="sum_over_batch_size")
        self.dro = dro

    def call(self, y_true, y_pred):
        y_pred = ops.reshape(y_pred, (-1,))
        if len(y_true.shape) != 2 or y_true.shape[-1] != 2:
            return ops.square(y_pred - ops.reshape(ops.cast(y_true, y_pred.dtype), (-1,)))
        targets = ops.cast(y_true[:, 0], y_pred.dtype)
        codes = ops.cast(y_true[:, 1], "int32")
        count = len(self.dro.group_names)
        errors = ops.square(y_pred - targets)
        sizes = ops.segment_sum(ops.ones_like(errors), codes, num_segments=count)
        group_loss = ops.stop_gradient(ops.segment_sum(errors, codes, num_segments=count) / ops.maximum(sizes, 1.0))
        q = self.dro.q * ops.exp(self.dro.step_size * ops.cast(group_loss, "float32"))
        q = q / ops.sum(q)
        self.dro.q.assign(q)
        batch = ops.cast(ops.shape(errors)[0], errors.dtype)
        weights = ops.stop_gradient(ops.take(ops.cast(q, errors.dtype) / ops.maximum(sizes, 1.0), codes) * batch)
        return errors * weights
