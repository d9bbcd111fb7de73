"""The run's mitigations as one: the registered implementations of the chosen options, weights multiplied, state
kept per kind, and a loss or packed targets from one mitigation only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from conftest import compose_train

from facebias.config import to_train_config
from facebias.mitigations.base import Mitigation
from facebias.mitigations.chosen import Mitigations, chosen_mitigations
from facebias.mitigations.group_offset import GroupOffsetCalibration
from facebias.mitigations.jtt import JustTrainTwice
from facebias.mitigations.lds import LabelDistributionSmoothing


class _Fixed(Mitigation):
    def __init__(self, weights: list[float] | None = None, targets: list[float] | None = None,
                 saved: Any = None) -> None:
        self.weights, self.packed, self.saved = weights, targets, saved

    def sample_weights(self) -> np.ndarray | None:
        return None if self.weights is None else np.array(self.weights)

    def targets(self) -> np.ndarray | None:
        return None if self.packed is None else np.array(self.packed)

    def state(self) -> Any:
        return self.saved

    def restore(self, state: Any) -> None:
        self.saved = ("restored", state)


def test_weights_multiply_state_is_kept_per_kind_and_one_part_packs_targets() -> None:
    both = Mitigations({"weighting": _Fixed([1.0, 2.0, 4.0], saved=[0.5]), "sampling": _Fixed([3.0, 1.0, 0.5])})
    np.testing.assert_allclose(both.sample_weights(), [3.0, 2.0, 2.0])
    assert both.state() == {"weighting": [0.5]}
    both.restore({"weighting": [0.25]})
    assert both.parts["weighting"].state() == ("restored", [0.25])
    assert Mitigations({"weighting": _Fixed(), "sampling": _Fixed()}).sample_weights() is None
    clash = Mitigations({"weighting": _Fixed(targets=[0.1]), "sampling": _Fixed(targets=[0.2])})
    with pytest.raises(RuntimeError, match="weighting and sampling both give targets"):
        clash.targets()


@pytest.mark.parametrize(("overrides", "kind", "implementation"), [
    (["weighting=jtt"], "weighting", JustTrainTwice),
    (["weighting=lds"], "weighting", LabelDistributionSmoothing),
    (["calibration=group_offset"], "calibration", GroupOffsetCalibration),
    (["weighting=none", "sampling=shuffle", "calibration=none"], "weighting", Mitigation),
])
def test_the_chosen_options_registered_implementations(overrides: list[str], kind: str, implementation: type) -> None:
    mitigations = chosen_mitigations(to_train_config(compose_train(overrides)))
    assert set(mitigations.parts) == {"weighting", "sampling", "calibration"}
    assert type(mitigations.parts[kind]) is implementation
