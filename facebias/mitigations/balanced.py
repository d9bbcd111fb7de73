"""sampling=balanced: every draw picks a group of `sampling.attributes` with equal probability, then one of its
images (facebias.data.pipeline `balanced_order`); this module gives the pipeline each sample's group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.data.groups import group_codes
from facebias.mitigations.base import FirstPass, Mitigation


class BalancedSampling(Mitigation):
    """Each training sample's group code over `attributes`, for balanced batches."""

    def __init__(self, attributes: Sequence[str]) -> None:
        self.attributes = list(attributes)
        self.groups: np.ndarray | None = None

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        self.groups = group_codes(train.attributes, self.attributes)[0]

    def sampling_groups(self) -> np.ndarray | None:
        return self.groups


def from_config(config: TrainConfig) -> BalancedSampling:
    return BalancedSampling(config.sampling.attributes)
