"""Assemble the full model: uint8 image → resize → backbone preprocessing → backbone → head."""

from __future__ import annotations

import keras
from keras import layers

from facebias.config import BackboneConfig, HeadConfig
from facebias.models.heads import build_head
from facebias.models.preprocessing import Preprocess
from facebias.models.registry import build_backbone


def build_model(
    backbone: BackboneConfig, head: HeadConfig, image_size: tuple[int, int], input_size: int
) -> keras.Model:
    """A functional model named after its parts, with nested sub-models `backbone` and `head`.

    Images enter as stored (uint8, `image_size`); resizing to `input_size` and the backbone's preprocessing
    happen inside the graph.
    """
    height, width = image_size
    images = keras.Input(shape=(height, width, 3), dtype="uint8", name="image")
    x = layers.Resizing(input_size, input_size, name="resize")(images)
    x = Preprocess(backbone.preprocessing, name="preprocess")(x)
    backbone_model = build_backbone(backbone, input_size)
    features = backbone_model(x)
    head_model = build_head(int(backbone_model.output.shape[-1]), head.dropout, head.hidden_units)
    outputs = head_model(features)
    return keras.Model(images, outputs, name=f"{backbone.name}_{head.name}")
