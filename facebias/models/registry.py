"""The backbone registry: name → builder module (build(input_size, weights) and MIN_INPUT_SIZE).

Adding a backbone = one module with that interface, one entry here, one YAML file in conf/backbone/.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import keras

from facebias.config import BackboneConfig
from facebias.errors import ConfigError

BACKBONE_MODULES: dict[str, str] = {
    "small_cnn": "facebias.models.small_cnn",
    "resnet50": "facebias.models.resnet50_vggface2",
    "inception_resnet_v2": "facebias.models.inception_resnet_v2",
}


def backbone_module(name: str) -> ModuleType:
    """The module that builds backbone `name`."""
    if name not in BACKBONE_MODULES:
        raise ConfigError(f"backbone.name={name!r} is unknown; accepted: {', '.join(BACKBONE_MODULES)}.")
    return importlib.import_module(BACKBONE_MODULES[name])


def min_input_size(name: str) -> int:
    """The smallest input size (pixels) backbone `name` accepts."""
    return int(backbone_module(name).MIN_INPUT_SIZE)


def build_backbone(config: BackboneConfig, input_size: int) -> keras.Model:
    """Build the backbone of `config` at `input_size` pixels, loading its weights when configured."""
    module = backbone_module(config.name)
    if config.name == "small_cnn":
        return module.build(input_size, config.weights, widths=config.widths)
    return module.build(input_size, config.weights)
