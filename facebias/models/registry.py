"""Building a registered backbone: look its entry up in facebias.options, import its builder module, build it.

A builder module defines `MIN_INPUT_SIZE` (pixels) and `from_config(config: BackboneConfig, input_size: int)`.
"""

from __future__ import annotations

import keras

from facebias.config import BackboneConfig
from facebias.options import BACKBONES


def min_input_size(name: str) -> int:
    """The smallest input size (pixels) backbone `name` accepts."""
    return int(BACKBONES.get(name).builder().MIN_INPUT_SIZE)


def build_backbone(config: BackboneConfig, input_size: int) -> keras.Model:
    """Build the backbone of `config` at `input_size` pixels, loading its weights when configured."""
    return BACKBONES.get(config.name).builder().from_config(config, input_size)
