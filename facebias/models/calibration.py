"""A Keras model that applies group offsets at prediction time: (image, group key) → calibrated age / 100.

`with_group_offsets(model, keys, offsets)` wraps a trained age model: a StringLookup turns the group key (the
calibration attributes joined by '|', as facebias.data.groups writes them, e.g. 'female|asian|happy') into an
index, and the offset of that group (years; 0 for an unknown key) is subtracted, divided by 100 like the output.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from facebias.vocab import AGE_NORMALISATION

GROUP_INPUT = "group"
"""The name of the group-key input of a calibrated model."""


@keras.saving.register_keras_serializable(package="facebias")
class GroupOffset(keras.layers.Layer):
    """[normalised age (batch, 1), group index (batch,)] → age minus offsets[index] / 100 (index 0: no offset)."""

    def __init__(self, offsets: Sequence[float], **kwargs) -> None:
        super().__init__(**kwargs)
        self.offsets = [float(value) for value in offsets]

    def call(self, inputs):
        ages, index = inputs
        table = ops.convert_to_tensor(np.asarray([0.0, *self.offsets], dtype=np.float32) / AGE_NORMALISATION)
        correction = ops.take(table, ops.reshape(ops.cast(index, "int32"), (-1,)))
        return ages - ops.reshape(ops.cast(correction, ages.dtype), (-1, 1))

    def get_config(self) -> dict:
        return {**super().get_config(), "offsets": self.offsets}


def with_group_offsets(model: keras.Model, keys: Sequence[str], offsets: Sequence[float]) -> keras.Model:
    """A model taking {image input, `group`: string key} and predicting the calibrated normalised age."""
    image = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype, name=model.inputs[0].name)
    group = keras.Input(shape=(), dtype="string", name=GROUP_INPUT)
    index = keras.layers.StringLookup(vocabulary=list(keys), num_oov_indices=1, name="group_index")(group)
    output = GroupOffset(offsets, name="group_offset")([model(image), index])
    return keras.Model({model.inputs[0].name: image, GROUP_INPUT: group}, output, name=f"{model.name}_calibrated")
