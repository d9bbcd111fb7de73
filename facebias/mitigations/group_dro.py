"""weighting=group_dro: online group DRO over the groups of `weighting.attributes` (facebias.training.group_dro).

The training targets carry each sample's group code; the loss updates q every step; q is checkpointed and its
largest value followed by the curves `dro_q_max`, `dro_q_max_group`; the artifact dro_groups.json lists the groups
and their final q.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.data.groups import group_codes
from facebias.mitigations.base import FirstPass, Mitigation
from facebias.training.group_dro import GroupDRO

DRO_ARTIFACT = "dro_groups.json"


class GroupDROMitigation(Mitigation):
    """Group DRO's hooks, delegated to its `GroupDRO` state once the training split's groups are known."""

    def __init__(self, attributes: Sequence[str], step_size: float) -> None:
        self.attributes, self.step_size = list(attributes), step_size
        self.dro: GroupDRO | None = None
        self.packed: np.ndarray | None = None

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        codes, names = group_codes(train.attributes, self.attributes)
        self.dro = GroupDRO(names, self.step_size)
        self.packed = self.dro.pack(train.ages / 100.0, codes)
        if state is not None:
            self.dro.restore(state)

    def targets(self) -> np.ndarray | None:
        return self.packed

    def loss(self) -> Any:
        return None if self.dro is None else self.dro.loss()

    def curves(self) -> dict[str, float]:
        return {} if self.dro is None else self.dro.curves()

    def state(self) -> Any:
        return None if self.dro is None else self.dro.state()

    def restore(self, state: Any) -> None:
        if self.dro is not None:
            self.dro.restore(state)

    def artifacts(self) -> dict[str, object]:
        return {} if self.dro is None else {DRO_ARTIFACT: self.dro.describe()}


def from_config(config: TrainConfig) -> GroupDROMitigation:
    return GroupDROMitigation(config.weighting.attributes, config.weighting.dro_step_size)
