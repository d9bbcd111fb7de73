"""ResNet50 trained on VGGFace2 faces, rebuilt in Keras 3 with the keras-vggface layer naming.

The architecture follows keras-vggface's ``RESNET50`` (Caffe-style bottlenecks: the stride sits on the
first 1x1 convolution, convolutions have no bias, BatchNormalization uses the Keras default epsilon of
1e-3 as keras-vggface did), then global average pooling and the starting kit's 512-unit ReLU projection
``dim_proj``.

Keras 3 forbids ``/`` in layer names, so the VGGFace2 names are spelled with ``_`` instead
(``conv1/7x7_s2/bn`` is the layer ``conv1_7x7_s2_bn``); :func:`load_weights_by_name` applies the same
spelling to the layer names found in a Keras 2 weights file, so the original files load as they are.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import keras
import numpy as np

from facebias.config import BackboneConfig
from facebias.errors import ConfigError, WeightsError, path_problem

logger = logging.getLogger("facebias.models")

MIN_INPUT_SIZE = 32
FIRST_BLOCK_END = "conv2_1_relu"
"""The stem and the first bottleneck block (256 channels)."""
FEATURES = 512
BN_EPSILON = 1e-3
# (stage, number of bottleneck blocks, bottleneck width); a block outputs 4 x width channels.
_STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))
_SUMMARY_NAMES = 10


def keras_layer_name(vggface_name: str) -> str:
    """Keras 3 spelling of a VGGFace2 layer name: ``conv1/7x7_s2/bn`` -> ``conv1_7x7_s2_bn``."""
    return vggface_name.replace("/", "_")


@dataclass
class WeightsReport:
    """What :func:`load_weights_by_name` did: Keras layer names loaded, model layers the file lacks,
    and file layers (as spelled in the file) that the model lacks."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts, with the missing and unexpected names (the first few of each)."""
        return (
            f"loaded {len(self.loaded)} layers; {len(self.missing)} model layers not in the file"
            f"{_names(self.missing)}; {len(self.unexpected)} file layers not in the model"
            f"{_names(self.unexpected)}"
        )


def _names(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:_SUMMARY_NAMES])
    more = f", … and {len(names) - _SUMMARY_NAMES} more" if len(names) > _SUMMARY_NAMES else ""
    return f" ({shown}{more})"


def _conv_bn(
    x: keras.KerasTensor, filters: int, kernel: int, vggface_name: str, strides: int = 1
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same" if kernel > 1 else "valid",
        use_bias=False,
        name=keras_layer_name(vggface_name),
    )(x)
    return keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=keras_layer_name(f"{vggface_name}/bn"))(x)


def _bottleneck(x: keras.KerasTensor, stage: int, block: int, width: int, strides: int) -> keras.KerasTensor:
    prefix = f"conv{stage}_{block}"
    y = _conv_bn(x, width, 1, f"{prefix}_1x1_reduce", strides)
    y = keras.layers.Activation("relu", name=f"{prefix}_1x1_reduce_relu")(y)
    y = _conv_bn(y, width, 3, f"{prefix}_3x3")
    y = keras.layers.Activation("relu", name=f"{prefix}_3x3_relu")(y)
    y = _conv_bn(y, 4 * width, 1, f"{prefix}_1x1_increase")
    shortcut = _conv_bn(x, 4 * width, 1, f"{prefix}_1x1_proj", strides) if block == 1 else x
    y = keras.layers.Add(name=f"{prefix}_add")([y, shortcut])
    return keras.layers.Activation("relu", name=f"{prefix}_relu")(y)


def build(input_size: int, weights: str | None) -> keras.Model:
    """The VGGFace2 ResNet50 trunk + ``dim_proj``: (input_size, input_size, 3) -> (batch, 512).

    ``weights`` is None (random initialisation) or the path of a Keras HDF5 file, loaded by layer name.
    """
    if input_size < MIN_INPUT_SIZE:
        raise ConfigError(
            f"backbone.input_size={input_size} is below the VGGFace2 ResNet50's minimum of "
            f"{MIN_INPUT_SIZE} pixels; use {MIN_INPUT_SIZE} or larger."
        )
    inputs = keras.Input((input_size, input_size, 3), dtype="float32", name="image")
    x = _conv_bn(inputs, 64, 7, "conv1/7x7_s2", strides=2)
    x = keras.layers.Activation("relu", name="conv1_relu")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1")(x)
    for stage, blocks, width in _STAGES:
        for block in range(1, blocks + 1):
            strides = 2 if block == 1 and stage > 2 else 1
            x = _bottleneck(x, stage, block, width, strides)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(FEATURES, activation="relu", name="dim_proj")(x)
    model = keras.Model(inputs, x, name="backbone")
    if weights is not None:
        report = load_weights_by_name(model, weights)
        if not report.loaded:
            raise WeightsError(
                f"{weights} shares no layer name with the VGGFace2 ResNet50 (file layers: "
                f"{', '.join(report.unexpected[:_SUMMARY_NAMES]) or 'none with weights'}), so it is not "
                "VGGFace2 ResNet50 Keras weights; pass such a file (e.g. "
                "rcmalli_vggface_tf_notop_resnet50.h5) or backbone.weights=null to train from random "
                "initialisation."
            )
        logger.info("VGGFace2 ResNet50 weights from %s: %s", weights, report.summary())
    return model


def _attribute_list(group: h5py.Group, name: str) -> list[str]:
    """A list attribute as Keras writes it: whole, or split into ``name0``, ``name1``… when large."""
    if name in group.attrs:
        chunks = [group.attrs[name]]
    else:
        chunks = []
        while f"{name}{len(chunks)}" in group.attrs:
            chunks.append(group.attrs[f"{name}{len(chunks)}"])
    return [
        item.decode("utf8") if isinstance(item, bytes) else str(item) for chunk in chunks for item in chunk
    ]


def load_weights_by_name(model: keras.Model, path: str | os.PathLike) -> WeightsReport:
    """Copy weights from a Keras 2 HDF5 file into the model's layers of the same name.

    Reads both ``model.save_weights`` files (``layer_names`` at the top) and full-model files (under
    ``model_weights``). Every shape is checked before anything is assigned, so a mismatch (WeightsError
    naming the layer) leaves the model unchanged.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"VGGFace2 ResNet50 weights file {path} {path_problem(path, folder=False)}: the VGGFace2 ResNet50 "
            "Keras weights (e.g. the starting kit's / keras-vggface rcmalli_vggface_tf_notop_resnet50.h5) must be "
            "downloaded by you and passed as backbone.weights=/path/to/file.h5, or set "
            "backbone.weights=null to train from random initialisation."
        )
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise WeightsError(
            f"{path} is not a readable HDF5 file ({exc}); pass the VGGFace2 ResNet50 Keras .h5 weights "
            "or backbone.weights=null."
        ) from exc
    with h5:
        group = h5["model_weights"] if "layer_names" not in h5.attrs and "model_weights" in h5 else h5
        file_layers = _attribute_list(group, "layer_names")
        if not file_layers:
            raise WeightsError(
                f"{path} is not a Keras 2 HDF5 weights file: it has no `layer_names` attribute at its top "
                "level or under `model_weights` (Keras 3 `.weights.h5` files are not read by layer name)."
            )
        model_layers = {layer.name: layer for layer in model.layers if layer.weights}
        report = WeightsReport()
        pending = []
        for file_name in file_layers:
            layer_group = group[file_name]
            weight_names = _attribute_list(layer_group, "weight_names")
            if not weight_names:
                continue
            layer = model_layers.get(keras_layer_name(file_name))
            if layer is None:
                report.unexpected.append(file_name)
                continue
            try:
                values = [np.asarray(layer_group[weight_name]) for weight_name in weight_names]
            except KeyError as exc:
                raise WeightsError(
                    f"{path} lists weights {weight_names} for layer {file_name} but lacks some of them "
                    f"({exc})."
                ) from exc
            expected = [tuple(weight.shape) for weight in layer.weights]
            found = [value.shape for value in values]
            if found != expected:
                raise WeightsError(
                    f"Layer {layer.name} expects weights of shapes {expected} but {path} holds shapes "
                    f"{found} for {file_name}."
                )
            pending.append((layer, values))
    for layer, values in pending:
        for weight, value in zip(layer.weights, values, strict=True):
            weight.assign(value)
        report.loaded.append(layer.name)
    loaded = set(report.loaded)
    report.missing = [name for name in model_layers if name not in loaded]
    return report


def from_config(config: BackboneConfig, input_size: int) -> keras.Model:
    """The backbone a `backbone=resnet50` config describes (its weights)."""
    return build(input_size, config.weights)
