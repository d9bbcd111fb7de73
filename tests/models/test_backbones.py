"""Backbones: VGGFace2 ResNet50 architecture and by-name weight loading; InceptionResNetV2 weights."""

from __future__ import annotations

import socket
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from facebias.config import BackboneConfig
from facebias.errors import ConfigError, WeightsError
from facebias.models import inception_resnet_v2, resnet50_vggface2
from facebias.models.registry import build_backbone

Layers = list[tuple[str, list[tuple[str, np.ndarray]]]]


def write_keras2_weights(path: Path, layers: Layers, group_name: str | None = None) -> None:
    """Write (layer name, [(weight name, value)]) in Keras 2's HDF5 layout: one group per layer, nested
    where a name holds ``/``, a ``weight_names`` attribute per layer and ``layer_names`` on the top group
    (the file's root, or ``group_name`` as in a full-model file)."""
    with h5py.File(path, "w") as h5:
        group = h5.create_group(group_name) if group_name else h5
        group.attrs["layer_names"] = [name.encode() for name, _ in layers]
        for name, weights in layers:
            layer_group = group.require_group(name)
            layer_group.attrs["weight_names"] = [weight_name.encode() for weight_name, _ in weights]
            for weight_name, value in weights:
                layer_group.create_dataset(weight_name, data=value)


def vggface_name(keras_name: str) -> str:
    """The name keras-vggface gives a layer of our model (inverse of keras_layer_name for its names)."""
    name = keras_name.replace("conv1_7x7_s2", "conv1/7x7_s2")
    return name[: -len("_bn")] + "/bn" if name.endswith("_bn") else name


def as_file_layer(name: str, values: list[np.ndarray]) -> tuple[str, list[tuple[str, np.ndarray]]]:
    return name, [(f"{name}/w{i}:0", value) for i, value in enumerate(values)]


def numpy_weights(layer: keras.layers.Layer) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(weight) for weight in layer.weights]


@pytest.fixture(scope="module")
def resnet() -> keras.Model:
    keras.utils.set_random_seed(1)
    return resnet50_vggface2.build(32, None)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a backbone test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_resnet_layer_names_and_convolutions_without_bias(resnet: keras.Model) -> None:
    names = {layer.name for layer in resnet.layers}
    for vggface in (
        "conv1/7x7_s2",
        "conv1/7x7_s2/bn",
        "conv2_1_1x1_reduce",
        "conv2_1_1x1_proj",
        "conv5_3_1x1_increase/bn",
        "dim_proj",
    ):
        assert resnet50_vggface2.keras_layer_name(vggface) in names
    assert "conv2_2_1x1_proj" not in names
    convs = [layer for layer in resnet.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 1 + 3 * 16 + 4
    assert all(not conv.use_bias and len(conv.weights) == 1 for conv in convs)
    assert resnet.name == "backbone"


def test_resnet_outputs_512_features_at_32_and_64(resnet: keras.Model) -> None:
    assert resnet.output.shape == (None, 512)
    assert resnet.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 512)
    assert resnet50_vggface2.build(64, None).output.shape == (None, 512)
    with pytest.raises(ConfigError, match="32"):
        resnet50_vggface2.build(31, None)


def test_resnet_params_are_keras_resnet50_without_conv_biases_plus_dim_proj(resnet: keras.Model) -> None:
    reference = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    conv_biases = sum(
        layer.bias.shape[0] for layer in reference.layers if isinstance(layer, keras.layers.Conv2D)
    )
    assert resnet.count_params() == reference.count_params() - conv_biases + 2048 * 512 + 512


@pytest.mark.parametrize("group_name", [None, "model_weights"], ids=["save_weights", "full_model"])
def test_weights_by_name_round_trip(resnet: keras.Model, tmp_path: Path, group_name: str | None) -> None:
    rng = np.random.default_rng(0)
    dropped = {"conv3_2_3x3", "dim_proj"}
    saved = {
        layer.name: [rng.standard_normal(weight.shape).astype("float32") for weight in layer.weights]
        for layer in resnet.layers
        if layer.name not in dropped
    }
    file_layers = [as_file_layer(vggface_name(name), values) for name, values in saved.items()]
    file_layers.append(as_file_layer("classifier", [np.zeros((4, 2), "float32")]))
    path = tmp_path / "vggface2.h5"
    write_keras2_weights(path, file_layers, group_name)

    keras.utils.set_random_seed(2)
    model = resnet50_vggface2.build(32, None)
    report = resnet50_vggface2.load_weights_by_name(model, path)

    assert report.missing == ["conv3_2_3x3", "dim_proj"]
    assert report.unexpected == ["classifier"]
    assert len(report.loaded) == len([layer for layer in resnet.layers if layer.weights]) - 2
    for layer in model.layers:
        if layer.name in report.loaded:
            for loaded, expected in zip(numpy_weights(layer), saved[layer.name], strict=True):
                np.testing.assert_array_equal(loaded, expected)
    assert "conv1_7x7_s2_bn" in report.loaded
    assert "2 model layers not in the file (conv3_2_3x3, dim_proj)" in report.summary()


def test_weights_shape_mismatch_names_layer_and_changes_nothing(resnet: keras.Model, tmp_path: Path) -> None:
    before = numpy_weights(resnet.get_layer("dim_proj"))
    path = tmp_path / "bad.h5"
    write_keras2_weights(
        path,
        [
            as_file_layer("dim_proj", [np.ones((2048, 512), "float32"), np.ones(512, "float32")]),
            as_file_layer("conv1/7x7_s2", [np.zeros((3, 3, 3, 64), "float32")]),
        ],
    )
    with pytest.raises(WeightsError, match=r"conv1_7x7_s2 expects .*\(7, 7, 3, 64\).*\(3, 3, 3, 64\)"):
        resnet50_vggface2.load_weights_by_name(resnet, path)
    for kept, now in zip(before, numpy_weights(resnet.get_layer("dim_proj")), strict=True):
        np.testing.assert_array_equal(kept, now)


def test_weights_missing_file_says_how_to_train_without(tmp_path: Path) -> None:
    expected = r"absent\.h5 does not exist.*rcmalli_vggface_tf_notop_resnet50\.h5.*backbone\.weights=null"
    with pytest.raises(WeightsError, match=expected):
        resnet50_vggface2.build(32, str(tmp_path / "absent.h5"))


def test_weights_file_without_any_resnet_layer_is_rejected(resnet: keras.Model, tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    write_keras2_weights(path, [as_file_layer("fc8", [np.zeros((4, 2), "float32")])])
    with pytest.raises(WeightsError, match="fc8"):
        resnet50_vggface2.build(32, str(path))
    not_keras = tmp_path / "plain.h5"
    with h5py.File(not_keras, "w") as h5:
        h5["data"] = np.zeros(3)
    with pytest.raises(WeightsError, match="layer_names"):
        resnet50_vggface2.load_weights_by_name(resnet, not_keras)


@pytest.fixture(scope="module")
def inception() -> keras.Model:
    return inception_resnet_v2.build(75, None)


def test_inception_builds_at_75_with_1536_features(inception: keras.Model) -> None:
    assert inception.name == "backbone"
    assert inception.output.shape == (None, 1536)
    with pytest.raises(ConfigError, match=r"input_size=64 .* minimum of 75 pixels"):
        inception_resnet_v2.build(64, None)


def test_inception_imagenet_not_cached_names_the_cache_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected = tmp_path / "models" / "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert inception_resnet_v2.imagenet_cache_path() == expected
    with pytest.raises(WeightsError, match=r"not cached at .*backbone\.weights=null") as error:
        inception_resnet_v2.build(75, "imagenet")
    assert str(expected) in str(error.value)


def test_a_keras_home_that_is_a_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "keras").write_text("")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(WeightsError) as error:
        inception_resnet_v2.build(75, "imagenet")
    assert str(error.value) == (f"KERAS_HOME={tmp_path / 'keras'} is a file, not a folder: point it at Keras' folder "
                                "(its models/ holds the cached weights), or unset it for ~/.keras.")


def test_inception_imagenet_loads_the_cached_file(
    inception: keras.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    cached = inception_resnet_v2.imagenet_cache_path()
    cached.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    saved = [
        (layer.name, [rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
        for layer in inception.layers
    ]
    write_keras2_weights(cached, [as_file_layer(name, values) for name, values in saved])

    model = inception_resnet_v2.build(75, "imagenet")
    # Keras applications name most layers from global counters, so layers are matched by position,
    # as Keras' own HDF5 loader does.
    for layer, (_, values) in zip(model.layers, saved, strict=True):
        for loaded, expected in zip(numpy_weights(layer), values, strict=True):
            np.testing.assert_array_equal(loaded, expected)


def test_inception_weights_path_must_exist(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"nowhere\.h5"):
        inception_resnet_v2.build(75, str(tmp_path / "nowhere.h5"))


def test_a_truncated_resnet_is_its_first_block_average_pooled_with_the_files_weights(
    resnet: keras.Model, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    saved = [(vggface_name(layer.name), [rng.standard_normal(w.shape).astype("float32") for w in layer.weights])
             for layer in resnet.layers if layer.weights]
    path = tmp_path / "vggface2.h5"
    write_keras2_weights(path, [as_file_layer(name, values) for name, values in saved])
    config = BackboneConfig(name="resnet50", input_size=224, preprocessing="vggface2", weights=str(path))
    truncated = build_backbone(config, 32, truncate=True)
    whole = build_backbone(config, 32)
    assert truncated.name == "backbone"
    assert truncated.output.shape == (None, 256)
    kept = {layer.name for layer in truncated.layers if layer.weights}
    first_block_layers = {layer.name for layer in whole.layers if layer.name.startswith(("conv1", "conv2_1"))}
    assert kept == {layer.name for layer in whole.layers if layer.weights} & first_block_layers
    images = rng.uniform(-1, 1, (4, 32, 32, 3)).astype("float32")
    first_block = keras.Model(whole.input, whole.get_layer(resnet50_vggface2.FIRST_BLOCK_END).output)
    expected = keras.ops.convert_to_numpy(first_block(images)).mean(axis=(1, 2))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(truncated(images)), expected, rtol=1e-5, atol=1e-6)


def test_a_truncated_inception_keeps_its_stem_and_first_block_and_small_cnn_stays_whole() -> None:
    config = BackboneConfig(name="inception_resnet_v2", input_size=299, preprocessing="inception", weights=None)
    truncated = build_backbone(config, 75, truncate=True)
    assert truncated.output.shape == (None, 320)
    names = [layer.name for layer in truncated.layers]
    assert names[-2:] == [inception_resnet_v2.FIRST_BLOCK_END, "first_block_pool"]
    assert not any(name.startswith(("block35", "block17", "block8")) for name in names)
    assert sum(isinstance(layer, keras.layers.Conv2D) for layer in truncated.layers) == 5 + 7
    small = BackboneConfig(name="small_cnn", input_size=64, preprocessing="unit", weights=None, widths=[8, 16])
    assert [layer.name for layer in build_backbone(small, 32, truncate=True).layers] == [
        layer.name for layer in build_backbone(small, 32).layers]
