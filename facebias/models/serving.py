"""The model a run hands to users: uint8 images in, apparent age in years out, built from Keras' own layers only.

The trained model outputs age / 100 and preprocesses with facebias' `Preprocess` layer, which only a process that
imported facebias can load. `serving_model` shares the trained layers (same weights) but swaps `Preprocess` for
built-in layers computing the same function, and appends the ×100 to years, so that MLflow (`mlflow.keras` or
`mlflow.pyfunc`) loads it in any Python with Keras 3.

Post-processing hook: `calibrate(years, images) -> years`, called on the years tensor (and the image input), may add
steps after the age output, e.g. a post-hoc per-group offset. It must build its steps from built-in Keras layers
(or ones registered in a module MLflow's loader imports), and may add inputs by returning them in `extra_inputs`
(a group index per image, say): the model's inputs are then `{"image": …, **extra_inputs}`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

import keras
import numpy as np

from facebias.models.preprocessing import VGGFACE2_BGR_MEANS, Preprocess
from facebias.vocab import AGE_NORMALISATION

Calibrate = Callable[[keras.KerasTensor, keras.KerasTensor], keras.KerasTensor]
"""A post-processing step: (ages in years, image input) → calibrated ages in years."""


def builtin_preprocess(layer: Preprocess) -> keras.layers.Layer:
    """A built-in Keras layer computing what `layer` computes (up to float rounding), with the same name."""
    if layer.mode == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name=layer.name, dtype=layer.dtype_policy)
    if layer.mode == "inception":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=layer.name, dtype=layer.dtype_policy)
    swap = np.eye(3, dtype="float32")[::-1].reshape(1, 1, 3, 3)  # RGB → BGR as a 1×1 convolution
    bias = -np.asarray(VGGFACE2_BGR_MEANS, dtype="float32")
    return keras.layers.Conv2D(3, 1, name=layer.name, trainable=False, dtype=layer.dtype_policy,
                               kernel_initializer=keras.initializers.Constant(swap),
                               bias_initializer=keras.initializers.Constant(bias))


def _uncompiled(model: keras.Model) -> keras.Model:
    """The same graph and layers as a model that was never compiled (a compiled model, or a head trained on cached
    features, would save a compile config naming facebias' metrics, which a loader without facebias cannot read)."""
    return keras.Model(model.inputs, model.outputs, name=model.name)


def _swap(layer: keras.layers.Layer) -> keras.layers.Layer:
    """`Preprocess` → built-in layers; a nested model → its uncompiled twin; any other layer stays (shared)."""
    if isinstance(layer, Preprocess):
        return builtin_preprocess(layer)
    if isinstance(layer, keras.Model):
        return _uncompiled(layer)
    return layer


def _inference_call(layer: keras.layers.Layer, *args, **kwargs) -> keras.KerasTensor:
    """Call `layer` in the served graph in inference mode unless told otherwise: Keras runs a nested model's batch
    normalisation with batch statistics when the outer model is called directly without `training` (seen with Keras
    3.15), so `model(images)` would not give `model.predict(images)`'s ages. A caller's explicit `training=True`
    still wins."""
    if "training" in inspect.signature(layer.call).parameters:
        kwargs.setdefault("training", False)
    return layer(*args, **kwargs)


def serving_model(model: keras.Model, calibrate: Calibrate | None = None,
                  extra_inputs: Mapping[str, keras.KerasTensor] | None = None) -> keras.Model:
    """`model` (uint8 images → age / 100) as uint8 images → apparent age in years, loadable without facebias.

    The layers are `model`'s own (shared weights), but for `Preprocess`, each called in inference mode
    (`_inference_call`); `calibrate` and `extra_inputs` are the post-processing hook described in the module docstring.
    """
    inner = keras.models.clone_model(_uncompiled(model), clone_function=_swap, call_function=_inference_call)
    images = inner.inputs[0]
    years = keras.layers.Rescaling(AGE_NORMALISATION, name="years", dtype="float32")(inner.outputs[0])
    if calibrate is not None:
        years = calibrate(years, images)
    inputs = {"image": images, **extra_inputs} if extra_inputs else images
    return keras.Model(inputs, years, name=f"{model.name}_years")
