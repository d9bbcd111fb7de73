"""weighting=group: the study's group class weights, w_g = N / (2 · n_g) over `weighting.attributes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.mitigations.base import FirstPass, Mitigation
from facebias.training.weighting import group_sample_weights


class GroupWeights(Mitigation):
    """Every training sample of group g weighs N / (2 · n_g), counted on the training split."""

    def __init__(self, attributes: Sequence[str]) -> None:
        self.attributes = list(attributes)
        self.weights: np.ndarray | None = None

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        self.weights = group_sample_weights(train.attributes, self.attributes)

    def sample_weights(self) -> np.ndarray | None:
        return self.weights


def from_config(config: TrainConfig) -> GroupWeights:
    return GroupWeights(config.weighting.attributes)
