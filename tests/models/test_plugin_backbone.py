"""Adding a backbone takes one module and one YAML: a tiny backbone defined here (this module is its builder),
registered from here, with its YAML in a temporary config folder on Hydra's search path, trains in quick mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONF_DIR
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from facebias.config import BackboneConfig, to_train_config
from facebias.errors import ConfigError
from facebias.options import BACKBONES, BackboneOption

keras = pytest.importorskip("keras")

NAME = "tiny_test"
MIN_INPUT_SIZE = 32
QUICK = ["trainer=smoke", "tracking=none", "data.n_train=240", "data.n_valid=96", "data.n_test=96"]


def from_config(config: BackboneConfig, input_size: int) -> keras.Model:
    """One strided convolution and global average pooling: 4 features."""
    pixels = keras.Input((input_size, input_size, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="tiny_conv")(pixels)
    features = keras.layers.GlobalAveragePooling2D(name="tiny_pool")(x)
    return keras.Model(pixels, features, name="backbone")


@pytest.fixture
def plugin_conf(tmp_path: Path) -> Path:
    """A config folder holding only backbone/tiny_test.yaml."""
    conf = tmp_path / "plugin_conf"
    (conf / "backbone").mkdir(parents=True)
    (conf / "backbone" / f"{NAME}.yaml").write_text(
        f"name: {NAME}\ninput_size: 32\npreprocessing: unit\nweights: null\nwidths: []\n")
    return conf


@pytest.fixture
def tiny_backbone(plugin_conf: Path) -> Iterator[BackboneOption]:
    """The tiny backbone, registered for one test (this module is its builder)."""
    option = BACKBONES.register(BackboneOption(NAME, "Tiny test CNN", "one convolution, for tests", module=__name__))
    yield option
    BACKBONES.unregister(NAME)


def _compose(conf: Path, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=[f"hydra.searchpath=[file://{conf}]", *overrides])


def test_a_registered_backbone_with_its_yaml_trains_in_quick_mode(
    plugin_conf: Path, tiny_backbone: BackboneOption, tmp_path: Path
) -> None:
    from facebias.run.start import train
    from facebias.tracking.store import tracking_store

    cfg = _compose(plugin_conf, [f"backbone={NAME}", "head=linear", "schedule=two_stage", *QUICK])
    config = to_train_config(cfg)
    result = train(config, resolved=OmegaConf.to_container(cfg, resolve=True), output_dir=tmp_path / "out",
                   store=tracking_store(config.tracking, tmp_path), choices={"backbone": NAME, "head": "linear"})
    assert config.backbone.name == NAME
    assert result.metrics["test/mae"] > 0
    model = tmp_path / "out" / "model"
    assert result.model == str(model.resolve()), "untracked, the model stays in the output folder"
    assert (model / "MLmodel").is_file() and (model / "data" / "model.keras").is_file()
    assert not (tmp_path / "out" / "model.weights.h5").exists(), "the weights file is kept only when asked"
    assert BACKBONES.display(NAME) == tiny_backbone.display


def test_a_backbone_yaml_without_its_registration_is_refused(plugin_conf: Path) -> None:
    cfg = _compose(plugin_conf, [f"backbone={NAME}", *QUICK])
    with pytest.raises(ConfigError, match=rf"^backbone.name='{NAME}' is unknown; accepted: small_cnn, "):
        to_train_config(cfg)
