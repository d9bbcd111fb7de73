"""Assemble the full model: uint8 image → resize → backbone preprocessing → backbone → head."""

from __future__ import annotations

import keras
from keras import layers

from facebias.config import BackboneConfig, HeadConfig
from facebias.models.heads import build_head
from facebias.models.preprocessing import Preprocess
from facebias.models.registry import build_backbone

AS_FLOAT = "as_float"
"""The layer casting the uint8 images to float32 before resizing: called eagerly (`trainer.run_eagerly`, or a
direct call), Keras' Resizing returns uint8 for uint8 input, rounding the interpolated pixels, while under
`model.predict` and symbolically it returns float32; resizing floats computes the same on both paths."""


def build_model(
    backbone: BackboneConfig,
    head: HeadConfig,
    image_size: tuple[int, int],
    input_size: int,
    truncate_backbone: bool = False,
) -> keras.Model:
    """A functional model named after its parts, with nested sub-models `backbone` and `head`.

    Images enter as stored (uint8, `image_size`); the cast to float32 (`AS_FLOAT`), resizing to `input_size` and
    the backbone's preprocessing happen inside the graph. `truncate_backbone`: the backbone ends after its first
    block (`facebias.models.registry.build_backbone`).
    """
    height, width = image_size
    images = keras.Input(shape=(height, width, 3), dtype="uint8", name="image")
    x = layers.Rescaling(1.0, dtype="float32", name=AS_FLOAT)(images)
    x = layers.Resizing(input_size, input_size, name="resize")(x)
    x = Preprocess(backbone.preprocessing, name="preprocess")(x)
    backbone_model = build_backbone(backbone, input_size, truncate=truncate_backbone)
    features = backbone_model(x)
    head_model = build_head(int(backbone_model.output.shape[-1]), head.dropout, head.hidden_units)
    outputs = head_model(features)
    return keras.Model(images, outputs, name=f"{backbone.name}_{head.name}")
