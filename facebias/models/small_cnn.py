"""A small CNN trained from scratch: the CPU-friendly default backbone (conv blocks + global average pooling)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

from facebias.config import BackboneConfig

MIN_INPUT_SIZE = 32
DEFAULT_WIDTHS: tuple[int, ...] = (16, 32, 64, 128)


def build(input_size: int, widths: Sequence[int] = DEFAULT_WIDTHS) -> keras.Model:
    """Conv(3x3)-BN-ReLU then 2x2 max-pool, per width; global average pooling → features of size widths[-1]."""
    inputs = keras.Input(shape=(input_size, input_size, 3), name="pixels")
    x = inputs
    for block, width in enumerate(widths or DEFAULT_WIDTHS, start=1):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = layers.ReLU(name=f"block{block}_relu")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    features = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, features, name="backbone")


def from_config(config: BackboneConfig, input_size: int) -> keras.Model:
    """The backbone a `backbone=small_cnn` config describes (its widths; validation keeps backbone.weights null)."""
    return build(input_size, widths=config.widths)
