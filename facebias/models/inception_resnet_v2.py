"""InceptionResNetV2 from Keras applications, without its top, average-pooled to 1536 features.

ImageNet weights come only from Keras' own cache (``$KERAS_HOME/models`` or ``~/.keras/models``): when the
file is not there this raises a WeightsError saying how to get it, and never tries the network.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import keras

from facebias.config import BackboneConfig
from facebias.errors import ConfigError, WeightsError, path_problem

MIN_INPUT_SIZE = 75
FIRST_BLOCK_END = "mixed_5b"
"""The stem and the first Inception block (320 channels), before the 10 Inception-ResNet-A blocks."""
FEATURES = 1536
IMAGENET_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"


def imagenet_cache_path() -> Path:
    """Where ``keras.applications.InceptionResNetV2(include_top=False)`` caches its ImageNet weights.

    Same rule as Keras (``backend.config`` and ``utils.get_file``): ``$KERAS_HOME``, else ``~/.keras``
    (``/tmp/.keras`` when the home directory is not writable); a base that is not writable is replaced by
    ``/tmp/.keras``; then the ``models`` subdirectory. A ``$KERAS_HOME`` that is a file is a WeightsError.
    """
    home = os.environ.get("KERAS_HOME")
    if home is not None and os.path.exists(home) and not os.path.isdir(home):
        raise WeightsError(f"KERAS_HOME={home} {path_problem(Path(home), folder=True)}: point it at Keras' folder "
                           "(its models/ holds the cached weights), or unset it for ~/.keras.")
    if home is None:
        user_home = os.path.expanduser("~")
        home = os.path.join(user_home if os.access(user_home, os.W_OK) else "/tmp", ".keras")
    base = os.path.expanduser(home)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(base) / "models" / IMAGENET_FILE


def _weights_file(weights: str) -> Path:
    if weights == "imagenet":
        path = imagenet_cache_path()
        if not path.is_file():
            raise WeightsError(
                f"InceptionResNetV2 ImageNet weights are not cached at {path} and this run does not "
                "download them (offline): run "
                '`python -c "import keras; keras.applications.InceptionResNetV2(include_top=False)"` '
                "once on a machine with internet (same KERAS_HOME) or copy the file there, or set "
                "backbone.weights=null to train from scratch."
            )
        return path
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"InceptionResNetV2 weights file {path} {path_problem(path, folder=False)}; pass an existing .h5 file, "
            "backbone.weights=imagenet (Keras' cached ImageNet weights) or backbone.weights=null."
        )
    return path


def build(input_size: int, weights: str | None) -> keras.Model:
    """InceptionResNetV2 trunk + global average pooling: (input_size, input_size, 3) -> (batch, 1536).

    ``weights`` is ``"imagenet"`` (Keras' cached file, never downloaded here), None (random
    initialisation) or the path of a weights file for InceptionResNetV2 without its top.
    """
    if input_size < MIN_INPUT_SIZE:
        raise ConfigError(
            f"backbone.input_size={input_size} is below InceptionResNetV2's minimum of {MIN_INPUT_SIZE} "
            f"pixels; use {MIN_INPUT_SIZE} or larger (299 is its native size)."
        )
    path = None if weights is None else _weights_file(weights)
    trunk = keras.applications.InceptionResNetV2(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3), pooling="avg"
    )
    if path is not None:
        try:
            trunk.load_weights(path)
        except (ValueError, OSError) as exc:
            raise WeightsError(
                f"{path} does not hold InceptionResNetV2 (include_top=False) weights that Keras can load "
                f"({exc})."
            ) from exc
    return keras.Model(trunk.input, trunk.output, name="backbone")


def from_config(config: BackboneConfig, input_size: int) -> keras.Model:
    """The backbone a `backbone=inception_resnet_v2` config describes (its weights)."""
    return build(input_size, config.weights)
