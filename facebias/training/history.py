"""Learning-curve history: keeps every epoch's metrics and forwards them to a sink (e.g. the run recorder)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd

CURVE_KEYS: dict[str, str] = {
    "loss": "loss",
    "val_loss": "val_loss",
    "mse": "train_mse",
    "mae": "mae",
    "val_mae": "val_mae",
}
"""Keras log key → curve name. `loss` is the training objective (the group-weighted MSE when weighting is on);
`train_mse` is the unweighted training MSE, on the same scale as `val_loss` (validation has no weights);
`mae`/`val_mae` are unweighted MAEs in years. Training values are running means over the epoch's batches."""


class CurveHistory:
    """Collects `epoch/…` metrics by global epoch while passing every metric on to `forward`."""

    def __init__(self, forward: Callable[[Mapping[str, float], int], None]) -> None:
        self.forward = forward
        self.rows: dict[int, dict[str, float]] = {}

    def record(self, metrics: Mapping[str, float], step: int) -> None:
        self.forward(metrics, step)
        for key, value in metrics.items():
            if key.startswith("epoch/"):
                self.rows.setdefault(step, {})[key.removeprefix("epoch/")] = value

    def frame(self) -> pd.DataFrame:
        """One row per global epoch (1-based `epoch` column) with loss, val_loss, train_mse, mae, val_mae."""
        frame = pd.DataFrame.from_dict(self.rows, orient="index").sort_index()
        frame.insert(0, "epoch", frame.index + 1)
        return frame.reset_index(drop=True)
