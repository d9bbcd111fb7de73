"""Learning-curve history: keeps every epoch's metrics and forwards them to a sink (e.g. the run recorder)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pandas as pd


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
