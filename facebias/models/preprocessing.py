"""In-graph image preprocessing: uint8 RGB → the float input a backbone expects (per backbone)."""

from __future__ import annotations

import keras
from keras import ops

from facebias.options import PREPROCESSINGS

VGGFACE2_BGR_MEANS: tuple[float, float, float] = (91.4953, 103.8827, 131.0912)


@keras.saving.register_keras_serializable(package="facebias")
class Preprocess(keras.layers.Layer):
    """Turn RGB pixel values in [0, 255] into a backbone's input.

    Modes (facebias.options.PREPROCESSINGS): `unit` (scale to [0, 1]), `vggface2` (RGB → BGR, then subtract the
    VGGFace2 per-channel means), `inception` (scale to [-1, 1]).
    """

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        PREPROCESSINGS.get(mode)  # a ConfigError (ValueError) on an unknown mode
        self.mode = mode

    def call(self, images):
        pixels = ops.cast(images, "float32")
        if self.mode == "unit":
            return pixels / 255.0
        if self.mode == "inception":
            return pixels / 127.5 - 1.0
        bgr = ops.flip(pixels, axis=-1)
        return bgr - ops.convert_to_tensor(VGGFACE2_BGR_MEANS, dtype="float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}
