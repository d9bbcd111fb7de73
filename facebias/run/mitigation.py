"""What the mitigation options change in a run: the training targets and weights (weighting), the training draws
(sampling), and the artifacts of group DRO and group-offset calibration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facebias.calibration import GroupOffsets
from facebias.config import TrainConfig
from facebias.data.dataset import Dataset
from facebias.data.groups import group_codes
from facebias.io import write_json
from facebias.training.group_dro import GroupDRO
from facebias.training.weighting import sample_weights

DRO_ARTIFACT = "dro_groups.json"
CALIBRATION_ARTIFACT = "calibration_offsets.json"


@dataclass
class TrainingInputs:
    """The training split as the loop takes it, with the state the mitigation options need."""

    images: np.ndarray
    targets: np.ndarray
    weights: np.ndarray | None
    dro: GroupDRO | None
    sampling_groups: np.ndarray | None

    @property
    def data(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        return self.images, self.targets, self.weights


def training_inputs(config: TrainConfig, dataset: Dataset) -> TrainingInputs:
    """Targets age / 100 (with group codes under group DRO), per-sample weights (weighting=group), and each sample's
    group code for balanced sampling."""
    train = dataset.train
    targets = train.ages / 100.0
    weighting, sampling = config.weighting, config.sampling
    weights = sample_weights(weighting.name, train.attributes, weighting.attributes)
    dro = None
    if weighting.name == "group_dro":
        codes, names = group_codes(train.attributes, weighting.attributes)
        dro = GroupDRO(names, weighting.dro_step_size)
        targets = dro.pack(targets, codes)
    groups = group_codes(train.attributes, sampling.attributes)[0] if sampling.name == "balanced" else None
    return TrainingInputs(train.images, targets, weights, dro, groups)


def write_mitigation_artifacts(folder: Path, dro: GroupDRO | None, offsets: GroupOffsets | None) -> list[Path]:
    """dro_groups.json (groups, final q) and calibration_offsets.json (per-group offsets), when they apply."""
    written = []
    if dro is not None:
        written.append(folder / DRO_ARTIFACT)
        write_json(written[-1], dro.describe())
    if offsets is not None:
        written.append(folder / CALIBRATION_ARTIFACT)
        write_json(written[-1], offsets.to_dict())
    return written
