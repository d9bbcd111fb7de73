"""The model users get: the trained model's function in years, built from Keras' own layers, with a post-processing
hook (e.g. a per-group offset taking the group as a second input)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from facebias.config import BackboneConfig, HeadConfig
from facebias.models.assemble import build_model
from facebias.models.preprocessing import Preprocess
from facebias.models.serving import serving_model

IMAGES = np.random.default_rng(0).integers(0, 256, (6, 40, 40, 3)).astype("uint8")


def _model(preprocessing: str) -> keras.Model:
    """An untrained model whose batch normalisation's moving statistics are far from any batch's: batch norm in
    training mode (batch statistics) would then give other ages than in inference mode."""
    keras.utils.set_random_seed(1)
    backbone = BackboneConfig(name="small_cnn", input_size=32, preprocessing=preprocessing, widths=[4, 8])
    model = build_model(backbone, HeadConfig(name="mlp", hidden_units=[8]), (40, 40), 32)
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(np.full(layer.moving_mean.shape, -0.2, "float32"))
            layer.moving_variance.assign(np.full(layer.moving_variance.shape, 0.5, "float32"))
    return model


@pytest.mark.parametrize("preprocessing", ["unit", "vggface2", "inception"])
def test_the_serving_model_is_the_trained_model_in_years(preprocessing: str) -> None:
    model = _model(preprocessing)
    served = serving_model(model)
    assert not any(isinstance(layer, Preprocess) for layer in served.layers), "only Keras' own layers"
    expected = model.predict(IMAGES, verbose=0).reshape(-1) * 100.0
    assert expected.std() > 0, "the untrained model's ages differ between images"
    np.testing.assert_allclose(served.predict(IMAGES, verbose=0).reshape(-1), expected, rtol=1e-5)
    # called directly, in eager mode (as `run_eagerly` trains, or `mlflow.keras.load_model(…)(images)` runs): the
    # resized images stay float there too, so the ages are the same
    np.testing.assert_allclose(np.asarray(model(IMAGES, training=False)).reshape(-1) * 100.0, expected, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(served(IMAGES, training=False)).reshape(-1), expected, rtol=1e-5)
    # without `training`, the served model is in inference mode too (the trained model itself is not: Keras runs its
    # nested backbone's batch norm on batch statistics); an explicit training=True still uses batch statistics
    np.testing.assert_allclose(np.asarray(served(IMAGES)).reshape(-1), expected, rtol=1e-5)
    in_training = np.asarray(served(IMAGES, training=True)).reshape(-1)
    assert np.abs(in_training - expected).max() > 1.0, "batch statistics give other ages on this model"


def test_the_hook_adds_a_per_group_offset_with_the_group_as_an_input() -> None:
    model = _model("unit")
    offsets = np.array([[1.5], [-2.0], [0.25]], dtype="float32")
    group = keras.Input(shape=(), dtype="int32", name="group")

    def calibrate(years: keras.KerasTensor, images: keras.KerasTensor) -> keras.KerasTensor:
        table = keras.layers.Embedding(3, 1, embeddings_initializer=keras.initializers.Constant(offsets),
                                       trainable=False, name="group_offset")
        return keras.layers.Subtract(name="calibrated")([years, table(group)])

    served = serving_model(model, calibrate, {"group": group})
    groups = np.array([0, 1, 2, 2, 1, 0], dtype="int32")
    plain = serving_model(model).predict(IMAGES, verbose=0).reshape(-1)
    calibrated = served.predict({"image": IMAGES, "group": groups}, verbose=0).reshape(-1)
    np.testing.assert_allclose(calibrated, plain - offsets[groups, 0], rtol=1e-6, atol=1e-5)
