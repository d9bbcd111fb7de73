"""calibration=group_offset: each cell of `calibration.attributes` minus its shrunk mean validation residual
(facebias.calibration), scored cross-fitted on the validation split; the served model applies the offsets
fitted on the whole validation split (facebias.models.calibration), kept as calibration_offsets.json."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from facebias.calibration import GroupOffsets, apply_group_offsets, cross_fitted, fit_group_offsets
from facebias.config import CalibrationConfig, TrainConfig
from facebias.data.groups import group_keys
from facebias.mitigations.base import Correction, Mitigation
from facebias.models.calibration import GROUP_INPUT, group_offset_hook

CALIBRATION_ARTIFACT = "calibration_offsets.json"


class OffsetCorrection(Correction):
    """Offsets fitted on the whole validation split, and the cross-fitted validation predictions."""

    def __init__(self, offsets: GroupOffsets, validation: np.ndarray) -> None:
        self.offsets, self.validation = offsets, validation
        self.group_attributes = offsets.attributes

    def apply(self, predicted: np.ndarray, attributes: pd.DataFrame) -> np.ndarray:
        return apply_group_offsets(predicted, attributes, self.offsets)

    def serving_hook(self) -> tuple[Any, ...]:
        return group_offset_hook(list(self.offsets.offsets), list(self.offsets.offsets.values()))

    def serving_inputs(self, images: np.ndarray, attributes: pd.DataFrame) -> Any:
        """{"image": images, "group": each image's key over the calibration attributes (strings, dtype object)}."""
        keys = group_keys(attributes.reset_index(drop=True), self.offsets.attributes).to_numpy(dtype=object)
        return {"image": images, GROUP_INPUT: keys}


class GroupOffsetCalibration(Mitigation):
    """Fits the offsets after training (`calibrate`) and keeps them as the run's artifact."""

    def __init__(self, config: CalibrationConfig) -> None:
        self.config = config
        self.offsets: GroupOffsets | None = None

    def calibrate(self, ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> Correction | None:
        c = self.config
        self.offsets = fit_group_offsets(ages, predicted, attributes, c.attributes, c.shrinkage, c.min_count)
        validation = cross_fitted(ages, predicted, attributes, c.attributes, c.folds, c.seed, c.shrinkage,
                                  c.min_count)
        return OffsetCorrection(self.offsets, validation)

    def artifacts(self) -> dict[str, object]:
        return {} if self.offsets is None else {CALIBRATION_ARTIFACT: self.offsets.to_dict()}


def from_config(config: TrainConfig) -> GroupOffsetCalibration:
    return GroupOffsetCalibration(config.calibration)
