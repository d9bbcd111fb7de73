"""The run's mitigations together: the chosen weighting, sampling and calibration, as one `Mitigation`.

Each option's implementation comes from its registry entry (facebias.options); the hooks combine what the parts
give: weights multiply, curves, artifacts and metrics merge, state is kept per kind, and a loss, packed targets,
sampling groups or a correction may come from one part only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.mitigations.base import Correction, FirstPass, Mitigation
from facebias.options import CALIBRATIONS, SAMPLINGS, WEIGHTINGS


class Mitigations(Mitigation):
    """Mitigations by kind (`weighting`, `sampling`, `calibration`) acting as one."""

    def __init__(self, parts: dict[str, Mitigation]) -> None:
        self.parts = parts

    def _one(self, hook: str, *args: Any) -> Any:
        given = {kind: value for kind, part in self.parts.items() if (value := getattr(part, hook)(*args)) is not None}
        if len(given) > 1:
            raise RuntimeError(f"{' and '.join(given)} both give {hook}: only one mitigation of a run may")
        return next(iter(given.values()), None)

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        for kind, part in self.parts.items():
            part.prepare(train, first_pass, (state or {}).get(kind))

    def loss(self) -> Any:
        return self._one("loss")

    def curves(self) -> dict[str, float]:
        return {name: value for part in self.parts.values() for name, value in part.curves().items()}

    def state(self) -> Any:
        states = {kind: state for kind, part in self.parts.items() if (state := part.state()) is not None}
        return states or None

    def restore(self, state: Any) -> None:
        for kind, value in (state or {}).items():
            self.parts[kind].restore(value)

    def sample_weights(self) -> np.ndarray | None:
        weights = [w for part in self.parts.values() if (w := part.sample_weights()) is not None]
        return None if not weights else np.prod(weights, axis=0).astype(np.float32)

    def targets(self) -> np.ndarray | None:
        return self._one("targets")

    def sampling_groups(self) -> np.ndarray | None:
        return self._one("sampling_groups")

    def calibrate(self, ages: np.ndarray, predicted: np.ndarray, attributes: pd.DataFrame) -> Correction | None:
        return self._one("calibrate", ages, predicted, attributes)

    def artifacts(self) -> dict[str, object]:
        return {name: record for part in self.parts.values() for name, record in part.artifacts().items()}

    def metrics(self) -> dict[str, float]:
        return {name: value for part in self.parts.values() for name, value in part.metrics().items()}


def chosen_mitigations(config: TrainConfig) -> Mitigations:
    """The config's weighting, sampling and calibration, built by their registered implementations."""
    sections = {"weighting": (WEIGHTINGS, config.weighting.name), "sampling": (SAMPLINGS, config.sampling.name),
                "calibration": (CALIBRATIONS, config.calibration.name)}
    return Mitigations({kind: registry.get(name).implementation().from_config(config)
                        for kind, (registry, name) in sections.items()})
