"""A mitigation's hooks: what one weighting, sampling or calibration option changes in a run.

A mitigation is one module — `from_config(config: TrainConfig) -> Mitigation` — named by its entry in a registry
of facebias.options (WEIGHTINGS, SAMPLINGS, CALIBRATIONS), plus one YAML in conf/<group>/. The run recipe and the
stage loop call the hooks below and never ask which option they run. The defaults change nothing, so this module
is also the implementation of weighting=none, sampling=shuffle and calibration=none.

Before training, `prepare` sees the training split, a `FirstPass` (train a first model, get its training
predictions; JTT's) and the state a checkpoint kept. Then the hooks give the per-sample loss weights, packed
training targets (for a loss of its own: `loss`, from facebias.training.hooks), the groups a balanced sampler
draws from, and after training a post-hoc `Correction` fitted on the validation predictions. `artifacts` (file
name → JSON record) and `metrics` say what it did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.training.hooks import TrainingHooks


@dataclass(frozen=True)
class FirstPassResult:
    """What a first training pass gives: its predictions of the training images (years), epochs it ran."""

    predictions: np.ndarray
    epochs: int


FirstPass = Callable[[int], FirstPassResult]
"""Train a fresh model on the training split for at most the given number of epochs (the run's schedule, plain
MSE, shuffled): its predictions of the training images and the epochs it ran."""


class Correction:
    """A post-hoc correction of predictions, fitted on the validation split."""

    validation: np.ndarray
    """The corrected validation predictions (years) to score as `val/…`, each not fitted on itself."""
    group_attributes: tuple[str, ...] | None = None
    """The attributes whose group key the served model takes as a second input; None: images only."""

    def apply(self, predicted: np.ndarray, attributes: pd.DataFrame) -> np.ndarray:
        """Corrected predictions (years) of other images, e.g. the test split."""
        raise NotImplementedError

    def serving_hook(self) -> tuple[Any, ...]:
        """The post-processing hook of facebias.models.serving.serving_model that applies it; (): none."""
        return ()

    def serving_inputs(self, images: np.ndarray, attributes: pd.DataFrame) -> Any:
        """What the served model takes for these images."""
        return images


class Mitigation(TrainingHooks):
    """A mitigation's hooks (the training loop's: loss, curves, state, restore); every default changes nothing."""

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        """Look at the training split before training; `state` is what `state()` returned when the checkpoint the
        run resumes from was written (None: a fresh start)."""

    def sample_weights(self) -> np.ndarray | None:
        """Per-sample loss weights of the training split; None: every sample weighs 1."""
        return None

    def targets(self) -> np.ndarray | None:
        """Training targets (age / 100 first, then columns its `loss` reads); None: age / 100."""
        return None

    def sampling_groups(self) -> np.ndarray | None:
        """Each training sample's group code, for batches balanced over the groups; None: shuffled epochs."""
        return None

    def calibrate(self, ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> Correction | None:
        """A correction fitted on the validation split's ages and predictions (years); None: none."""
        return None

    def artifacts(self) -> dict[str, object]:
        """JSON artifacts of the run: file name → record."""
        return {}

    def metrics(self) -> dict[str, float]:
        """Metrics the run logs once, at its end."""
        return {}


def from_config(config: TrainConfig) -> Mitigation:
    """The mitigation that changes nothing."""
    return Mitigation()
