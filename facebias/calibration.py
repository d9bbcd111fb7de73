"""Post-hoc group-offset calibration (calibration=group_offset): fit per-group mean residuals, subtract them (pure).

The offset of a group (one combination of the calibration attributes) is its mean residual, predicted − true age
in years, over the validation split. A calibrated prediction is the prediction minus its group's offset; a group
the validation split did not contain gets no correction. After calibration every validation group's mean residual
is 0 (up to floating point), by construction. The fitted offsets are a small JSON-friendly record
(`GroupOffsets.to_dict`), written as the run's artifact calibration_offsets.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from facebias.data.groups import group_keys


@dataclass(frozen=True)
class GroupOffsets:
    """Per-group offsets in years (group key 'female|asian|happy' → mean residual) over `attributes`."""

    attributes: tuple[str, ...]
    offsets: dict[str, float]
    counts: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {
            "attributes": list(self.attributes),
            "unit": "years",
            "offsets": dict(self.offsets),
            "counts": dict(self.counts),
        }

    @classmethod
    def from_dict(cls, record: dict) -> GroupOffsets:
        return cls(
            tuple(record["attributes"]),
            {k: float(v) for k, v in record["offsets"].items()},
            {k: int(v) for k, v in record.get("counts", {}).items()},
        )


def fit_group_offsets(
    ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame, columns: Sequence[str]
) -> GroupOffsets:
    """Each group's mean residual (predicted − true, years) on the given (validation) samples."""
    residuals = pd.Series(np.asarray(predicted, dtype=float) - np.asarray(ages, dtype=float))
    keys = group_keys(attributes.reset_index(drop=True), columns)
    by_group = residuals.groupby(keys.to_numpy())
    return GroupOffsets(
        tuple(columns),
        {str(k): float(v) for k, v in by_group.mean().items()},
        {str(k): int(v) for k, v in by_group.size().items()},
    )


def apply_group_offsets(predicted: np.ndarray, attributes: pd.DataFrame, offsets: GroupOffsets) -> np.ndarray:
    """Predictions minus their group's offset (0 for a group without one)."""
    keys = group_keys(attributes.reset_index(drop=True), offsets.attributes)
    correction = keys.map(offsets.offsets).fillna(0.0).to_numpy(dtype=float)
    return np.asarray(predicted, dtype=float) - correction
