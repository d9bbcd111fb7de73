"""The calibrated serving model (built-in layers only) predicts what the pure calibration computes, after a save and
load too; a group key it does not know gets no offset."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pandas as pd

from facebias.calibration import GroupOffsets, apply_group_offsets
from facebias.config import BackboneConfig, HeadConfig
from facebias.data.groups import group_keys
from facebias.models.assemble import build_model
from facebias.models.calibration import GROUP_INPUT, group_offset_hook
from facebias.models.serving import serving_model

IMAGES = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3)).astype("uint8")
ATTRIBUTES = pd.DataFrame(
    {
        "gender": ["female", "male", "male", "female", "male"],
        "expression": ["happy", "happy", "neutral", "neutral", "sad"],
    }
)
OFFSETS = GroupOffsets(("gender", "expression"), {"female|happy": 3.0, "male|happy": -1.5, "male|neutral": 0.5}, {})


def test_the_calibrated_serving_model_subtracts_each_groups_offset_like_the_pure_function(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    backbone = BackboneConfig(name="small_cnn", input_size=32, preprocessing="unit", widths=[4, 8])
    model = build_model(backbone, HeadConfig(name="mlp", hidden_units=[8]), (40, 40), 32)
    calibrated = serving_model(model, *group_offset_hook(list(OFFSETS.offsets), list(OFFSETS.offsets.values())))
    assert all(type(layer).__module__.startswith("keras.") for layer in calibrated.layers), "built-in layers only"
    plain = serving_model(model).predict(IMAGES, verbose=0).reshape(-1)
    groups = group_keys(ATTRIBUTES, OFFSETS.attributes).to_numpy(dtype=object)
    predicted = calibrated.predict({"image": IMAGES, GROUP_INPUT: groups}, verbose=0).reshape(-1)
    expected = apply_group_offsets(plain, ATTRIBUTES, OFFSETS)
    np.testing.assert_allclose(predicted, expected, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(predicted[:3] - plain[:3], [-3.0, 1.5, -0.5], atol=1e-5)
    np.testing.assert_allclose(predicted[3:], plain[3:], rtol=1e-6, err_msg="female|neutral, male|sad: no offset")
    calibrated.save(tmp_path / "calibrated.keras")
    reloaded = keras.saving.load_model(tmp_path / "calibrated.keras")
    again = reloaded.predict({"image": IMAGES, GROUP_INPUT: groups}, verbose=0).reshape(-1)
    np.testing.assert_allclose(again, predicted, rtol=1e-6)
