"""The stage loop's Keras callbacks: curves to the metric sink (stage{k}/… and epoch/…), and early stopping that
resumes from a checkpoint's state."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras

from facebias.errors import NonFiniteLossError
from facebias.training.checkpoint import EarlyStoppingState
from facebias.training.history import CURVE_KEYS
from facebias.training.schedule import StagePlan

MetricSink = Callable[[dict[str, float], int], None]
EpochRecords = list[tuple[dict[str, float], int]]
"""One epoch's curve values: (metrics, step) pairs for the sink."""


class StageCurveLogger(keras.callbacks.Callback):
    """Forward each epoch's loss/MAE to the sink under stage{k}/… (stage epoch) and epoch/… (global epoch)."""

    def __init__(self, stage: StagePlan, first_global_epoch: int, sink: MetricSink, epochs_run: int = 0,
                 on_epoch_done: Callable[[int, EpochRecords], EpochRecords] | None = None,
                 extra_curves: Callable[[], dict[str, float]] | None = None) -> None:
        super().__init__()
        self.stage = stage
        self.first_global_epoch = first_global_epoch
        self.sink = sink
        self.epochs_run = epochs_run
        self.on_epoch_done = on_epoch_done
        """(epochs done, records) → the records to send now, after the finiteness check: checkpoints go here."""
        self.extra_curves = extra_curves
        """The epoch's curves beyond Keras' logs (a mitigation's, e.g. group DRO's largest weight)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        values = {curve: float(logs[key]) for key, curve in CURVE_KEYS.items() if key in logs}
        if not all(math.isfinite(v) for v in values.values()):
            self.model.stop_training = True
            raise NonFiniteLossError(
                f"stage {self.stage.index}, epoch {epoch + 1}: the loss is not finite ({values}); "
                f"try a lower learning rate than {self.stage.override}.lr={self.stage.lr}"
            )
        self.epochs_run = epoch + 1
        values.update(self.extra_curves() if self.extra_curves is not None else {})
        records = [({f"{self.stage.prefix}/{k}": v for k, v in values.items()}, epoch),
                   ({f"epoch/{k}": v for k, v in values.items()}, self.first_global_epoch + epoch)]
        if self.on_epoch_done is not None:
            records = self.on_epoch_done(epoch + 1, records)
        for metrics, step in records:
            self.sink(metrics, step)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping that starts from a saved state (a resumed stage) instead of from scratch."""

    def __init__(self, *args: Any, initial_state: EarlyStoppingState | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial_state = initial_state

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        if self.initial_state is not None:
            state = self.initial_state
            self.best, self.best_epoch, self.wait, self.best_weights = (state.best, state.best_epoch, state.wait,
                                                                        state.best_weights)

    def state(self) -> EarlyStoppingState:
        best = None if self.best is None else float(self.best)
        return EarlyStoppingState(best, int(self.best_epoch), int(self.wait), self.best_weights)
