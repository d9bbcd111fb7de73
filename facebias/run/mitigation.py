"""The run's mitigations (facebias.mitigations) in the recipe: prepared on the training split — with a first
training pass when one asks for it — their artifacts written, and the served model's inputs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facebias.config import TrainConfig
from facebias.data.dataset import Dataset
from facebias.io import write_json
from facebias.mitigations.base import Correction, FirstPass, FirstPassResult
from facebias.mitigations.chosen import Mitigations, chosen_mitigations
from facebias.runtime import build_run_model, predict_ages, seed_everything
from facebias.training.loop import LoopContext, run_schedule
from facebias.training.schedule import cap_total_epochs, plan_stages

FIRST_PASS_PREFIX = "first_pass/"
"""The curves of a first training pass (`first_pass/stage1/loss`, `first_pass/epoch/loss`, …)."""


@dataclass
class TrainingInputs:
    """The training split as the loop takes it, and the mitigations that shaped it."""

    images: np.ndarray
    targets: np.ndarray
    weights: np.ndarray | None
    mitigations: Mitigations

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.images, self.targets, self.weights


def first_pass(config: TrainConfig, dataset: Dataset, sink: Callable[[Mapping[str, float], int], None]) -> FirstPass:
    """Train a fresh model with the run's schedule, capped at `epochs` epochs in all, plain MSE on shuffled epochs,
    its curves under `first_pass/`; return its training predictions (years) and the epochs it ran. The RNGs are
    then reseeded, so the run's own training draws as it would without the first pass."""

    def train(epochs: int) -> FirstPassResult:
        model, strategy = build_run_model(config, dataset.image_size)
        stages = cap_total_epochs(plan_stages(config.schedule.stages, config.trainer), epochs)
        limit = config.trainer.max_eval_samples
        valid = dataset.valid.images[:limit], dataset.valid.ages[:limit] / 100.0
        context = LoopContext(
            sink=lambda metrics, step: sink({FIRST_PASS_PREFIX + k: v for k, v in metrics.items()}, step),
            verbose=config.trainer.verbose if config.trainer.verbose == "auto" else int(config.trainer.verbose),
            seed=config.seed, augmentation=config.augmentation, strategy=strategy,
            jit_compile=config.trainer.jit_compile)
        train_split = dataset.train
        ran = run_schedule(model, stages, (train_split.images, train_split.ages / 100.0, None), valid, context)
        predicted = predict_ages(model, train_split.images)
        seed_everything(config.seed, config.trainer.deterministic)
        return FirstPassResult(predicted, sum(ran))

    return train


def prepare_mitigations(config: TrainConfig, dataset: Dataset, sink: Callable[[Mapping[str, float], int], None],
                        state: Any = None) -> TrainingInputs:
    """The chosen mitigations, prepared on the training split (`state`: what the checkpoint resumed from kept);
    targets age / 100 unless one packs its own, and the per-sample weights."""
    mitigations = chosen_mitigations(config)
    mitigations.prepare(dataset.train, first_pass(config, dataset, sink), state)
    targets = mitigations.targets()
    return TrainingInputs(dataset.train.images, dataset.train.ages / 100.0 if targets is None else targets,
                          mitigations.sample_weights(), mitigations)


def served_inputs(images: np.ndarray, attributes: pd.DataFrame, correction: Correction | None) -> Any:
    """What the run's served model takes for these images (a correction may want more than the images)."""
    return images if correction is None else correction.serving_inputs(images, attributes)


def write_mitigation_artifacts(folder: Path, mitigations: Mitigations) -> list[Path]:
    """Each mitigation's JSON artifacts (e.g. dro_groups.json, calibration_offsets.json)."""
    written = []
    for name, record in mitigations.artifacts().items():
        written.append(folder / name)
        write_json(written[-1], record)
    return written
