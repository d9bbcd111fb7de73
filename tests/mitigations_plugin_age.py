"""A mitigation defined outside facebias, for tests/test_plugin_mitigation.py: weights ∝ age (mean 1), registered
as weighting=age_weighted by `register()`; this module is its implementation."""

from __future__ import annotations

from typing import Any

import numpy as np

from facebias.mitigations.base import FirstPass, Mitigation
from facebias.options import WEIGHTINGS, MitigationOption

NAME = "age_weighted"
ARTIFACT = "age_weights.json"


class AgeWeights(Mitigation):
    """Every training sample weighs its age over the mean training age."""

    def prepare(self, train: Any, first_pass: FirstPass, state: Any = None) -> None:
        self.weights = (train.ages / train.ages.mean()).astype(np.float32)

    def sample_weights(self) -> np.ndarray | None:
        return self.weights

    def curves(self) -> dict[str, float]:
        return {"age_weight_max": float(self.weights.max())}

    def artifacts(self) -> dict[str, object]:
        return {ARTIFACT: {"weights": [float(w) for w in self.weights]}}

    def metrics(self) -> dict[str, float]:
        return {"age_weighted/oldest_weight": float(self.weights.max())}


def from_config(config: Any) -> AgeWeights:
    return AgeWeights()


def register() -> MitigationOption:
    return WEIGHTINGS.register(MitigationOption(NAME, "Age-weighted", "weights proportional to age", __name__))
