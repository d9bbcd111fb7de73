"""The Keras group-offset wrapper predicts what the pure calibration computes."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from facebias.calibration import GroupOffsets, apply_group_offsets
from facebias.data.groups import group_keys
from facebias.models.calibration import GROUP_INPUT, with_group_offsets


def test_the_wrapped_model_subtracts_each_groups_offset_like_the_pure_function(tmp_path: Path) -> None:
    inputs = keras.Input((2,), name="image")
    model = keras.Model(inputs, keras.layers.Dense(1, kernel_initializer="ones")(inputs))
    x = np.array([[0.1, 0.2], [0.3, 0.1], [0.2, 0.2], [0.05, 0.05]], dtype=np.float32)
    attributes = pd.DataFrame(
        {"gender": ["female", "male", "male", "female"], "expression": ["happy", "happy", "neutral", "neutral"]}
    )
    offsets = GroupOffsets(("gender", "expression"), {"female|happy": 3.0, "male|happy": -1.5, "male|neutral": 0.5}, {})
    keys = list(offsets.offsets)
    calibrated = with_group_offsets(model, keys, [offsets.offsets[key] for key in keys])
    groups = group_keys(attributes, offsets.attributes).to_numpy()
    predicted = calibrated.predict({"image": x, GROUP_INPUT: groups}, verbose=0)[:, 0] * 100
    expected = apply_group_offsets(x.sum(axis=1) * 100, attributes, offsets)
    np.testing.assert_allclose(predicted, expected, rtol=1e-5)
    assert expected[3] == x[3].sum() * 100, "female|neutral has no offset"
    calibrated.save(tmp_path / "calibrated.keras")
    reloaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    again = reloaded.predict({"image": x, GROUP_INPUT: groups}, verbose=0)[:, 0] * 100
    np.testing.assert_allclose(again, predicted, rtol=1e-6)
