"""Group-offset calibration inside the served model, from Keras' own layers: (image, group key) → calibrated years.

`group_offset_hook(keys, offsets)` is a post-processing hook for `facebias.models.serving.serving_model`: a string
input `group` (the calibration attributes joined by '|', as facebias.data.groups writes them, e.g.
'female|asian|happy'), a `StringLookup` turning it into an index (0 for a key it does not know), a frozen
`Embedding` holding [0, *offsets] in years, and a `Subtract` from the years output. A model built so loads in any
Python with Keras 3, without facebias.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from facebias.models.serving import Calibrate

GROUP_INPUT = "group"
"""The name of the group-key input of a calibrated model."""


def group_offset_hook(keys: Sequence[str], offsets: Sequence[float]) -> tuple[Calibrate, dict[str, keras.KerasTensor]]:
    """The `calibrate` step and the `group` input that subtract offsets[i] (years) from the age of an image of group
    keys[i]; an unknown key gets no offset."""
    if len(keys) != len(offsets) or not keys:
        raise ValueError(f"{len(keys)} group key(s) for {len(offsets)} offset(s): give one offset per key")
    group = keras.Input(shape=(), dtype="string", name=GROUP_INPUT)
    table = np.asarray([0.0, *offsets], dtype="float32").reshape(-1, 1)

    def calibrate(years: keras.KerasTensor, images: keras.KerasTensor) -> keras.KerasTensor:
        index = keras.layers.StringLookup(vocabulary=list(keys), num_oov_indices=1, name="group_index")(group)
        embedding = keras.layers.Embedding(
            len(table),
            1,
            embeddings_initializer=keras.initializers.Constant(table),
            trainable=False,
            name="group_offset",
            dtype="float32",
        )
        return keras.layers.Subtract(name="calibrated_years", dtype="float32")([years, embedding(index)])

    return calibrate, {GROUP_INPUT: group}
