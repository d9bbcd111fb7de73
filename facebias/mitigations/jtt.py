"""weighting=jtt: Just Train Twice (Liu et al., ICML 2021), for regression; needs no group labels.

A first pass trains a fresh model with the run's schedule for at most `weighting.jtt.first_epochs` epochs (plain
MSE; its curves under `first_pass/`). The `share` of training images with the largest absolute error of that model
(ties: the lower index) form the error set; the run's own model, initialised afresh, then trains from the start
with each of them weighing `upweight` and every other image 1. The error set is checkpointed (a resumed run does
not train the first pass again), logged as the artifact jtt_selection.json and the metrics
`jtt/first_pass_epochs`, `jtt/upweighted`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facebias.config import TrainConfig
from facebias.config.mitigation import JTTConfig
from facebias.data.dataset import Split
from facebias.mitigations.base import FirstPass, Mitigation

JTT_ARTIFACT = "jtt_selection.json"


def error_set(errors: np.ndarray, share: float) -> np.ndarray:
    """The indices of the round(share · n) (at least 1) largest errors, largest first; ties: the lower index."""
    count = max(1, round(share * len(errors)))
    return np.argsort(-np.asarray(errors, dtype=float), kind="stable")[:count]


def jtt_weights(count: int, selected: np.ndarray, upweight: float) -> np.ndarray:
    """1 for every training image, `upweight` for the selected ones (float32)."""
    weights = np.ones(count, dtype=np.float32)
    weights[np.asarray(selected, dtype=int)] = upweight
    return weights


class JustTrainTwice(Mitigation):
    """The error set of a first pass, up-weighted in the second."""

    def __init__(self, config: JTTConfig) -> None:
        self.config = config
        self.selected: np.ndarray | None = None
        self.first_epochs_run = 0
        self.errors: np.ndarray | None = None
        self.smallest_error: float | None = None
        self.count = 0

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        self.count = len(train)
        if state is not None:
            self.restore(state)
            return
        result = first_pass(self.config.first_epochs)
        self.errors = np.abs(result.predictions - train.ages)
        self.selected, self.first_epochs_run = error_set(self.errors, self.config.share), result.epochs

    def sample_weights(self) -> np.ndarray | None:
        return None if self.selected is None else jtt_weights(self.count, self.selected, self.config.upweight)

    def state(self) -> Any:
        if self.selected is None:
            return None
        return {"selected": [int(i) for i in self.selected], "first_pass_epochs": self.first_epochs_run,
                "smallest_upweighted_error": self._smallest_error()}

    def restore(self, state: Any) -> None:
        self.selected = np.asarray(state["selected"], dtype=int)
        self.first_epochs_run = int(state["first_pass_epochs"])
        self.smallest_error = state.get("smallest_upweighted_error")

    def _smallest_error(self) -> float | None:
        """The smallest first-pass error among the up-weighted images (kept across a resume)."""
        if self.errors is not None and self.selected is not None:
            return float(self.errors[self.selected].min())
        return self.smallest_error

    def artifacts(self) -> dict[str, object]:
        if self.selected is None:
            return {}
        record: dict[str, object] = {"first_pass_epochs": self.first_epochs_run, "share": self.config.share,
                                     "upweight": self.config.upweight, "upweighted": len(self.selected),
                                     "indices": [int(i) for i in self.selected]}
        if self._smallest_error() is not None:
            record["smallest_upweighted_error"] = self._smallest_error()
        return {JTT_ARTIFACT: record}

    def metrics(self) -> dict[str, float]:
        if self.selected is None:
            return {}
        return {"jtt/first_pass_epochs": float(self.first_epochs_run), "jtt/upweighted": float(len(self.selected))}


def from_config(config: TrainConfig) -> JustTrainTwice:
    return JustTrainTwice(config.weighting.jtt)
