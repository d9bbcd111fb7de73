"""Building a registered backbone: look its entry up in facebias.options, import its builder module, build it.

A builder module defines `MIN_INPUT_SIZE` (pixels) and `from_config(config: BackboneConfig, input_size: int)`,
and may define `FIRST_BLOCK_END`: the name of the layer that ends its first block, where a truncated backbone (quick
mode's `trainer.truncate_backbone`) stops.
"""

from __future__ import annotations

import keras

from facebias.config import BackboneConfig
from facebias.options import BACKBONES


def min_input_size(name: str) -> int:
    """The smallest input size (pixels) backbone `name` accepts."""
    return int(BACKBONES.get(name).builder().MIN_INPUT_SIZE)


def build_backbone(config: BackboneConfig, input_size: int, truncate: bool = False) -> keras.Model:
    """Build the backbone of `config` at `input_size` pixels, loading its weights when configured.

    `truncate`: the backbone ends at its `FIRST_BLOCK_END` layer, average-pooled (its weights, if any, are those of
    the whole backbone's layers up to there); a backbone without one is built whole. A truncated InceptionResNetV2
    keeps about 40 of its ~780 layers: quick jobs (a grid's machinery, in seconds) spend their time in Keras'
    per-layer overhead, not in arithmetic.
    """
    module = BACKBONES.get(config.name).builder()
    backbone = module.from_config(config, input_size)
    end = getattr(module, "FIRST_BLOCK_END", None)
    if not truncate or end is None:
        return backbone
    pooled = keras.layers.GlobalAveragePooling2D(name="first_block_pool")(backbone.get_layer(end).output)
    return keras.Model(backbone.input, pooled, name="backbone")
