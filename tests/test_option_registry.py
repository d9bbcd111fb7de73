"""The option registry (facebias.options) agrees with conf/: every option YAML is registered, every registered
option has its YAML, and the values the YAMLs use are registered; validation, --help and reports read it."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import CONF_DIR, compose_train
from omegaconf import OmegaConf

from facebias.config import to_train_config
from facebias.errors import ConfigError
from facebias.options import (
    BACKBONES,
    DISTRIBUTIONS,
    PRECISIONS,
    PREPROCESSINGS,
    REGISTRIES,
    TRAINABLE_PARTS,
    Option,
    Registry,
)

GROUP_REGISTRIES = [registry for registry in REGISTRIES if registry.group is not None]


def _yamls(group: str) -> dict[str, dict]:
    """The option files of a config group: file stem → its content."""
    return {path.stem: OmegaConf.to_container(OmegaConf.load(path)) for path in (CONF_DIR / group).glob("*.yaml")}


def test_the_config_groups_with_a_registry() -> None:
    assert [registry.group for registry in GROUP_REGISTRIES] == ["data", "backbone", "head", "weighting", "sampling",
                                                                 "calibration"]


@pytest.mark.parametrize("registry", GROUP_REGISTRIES, ids=lambda registry: registry.group)
def test_every_option_yaml_is_registered_and_every_registered_option_has_a_yaml(registry: Registry) -> None:
    files = _yamls(registry.group)
    assert sorted(files) == sorted(registry.names())
    for stem, content in files.items():
        assert content["name"] == stem, f"conf/{registry.group}/{stem}.yaml names itself {content['name']!r}"


def test_the_values_the_option_yamls_use_are_registered() -> None:
    for backbone in _yamls("backbone").values():
        assert backbone["preprocessing"] in PREPROCESSINGS.names()
    for schedule in _yamls("schedule").values():
        assert {stage["trainable"] for stage in schedule["stages"]} <= set(TRAINABLE_PARTS.names())
    for trainer in _yamls("trainer").values():
        assert trainer["precision"] in PRECISIONS.names()
        assert trainer["distribute"] in DISTRIBUTIONS.names()


@pytest.mark.parametrize(("override", "key"), [
    ("backbone.name=vgg16", "backbone.name"),
    ("head.name=attention", "head.name"),
    ("weighting.name=inverse", "weighting.name"),
    ("sampling.name=stratified", "sampling.name"),
    ("calibration.name=isotonic", "calibration.name"),
    ("backbone.preprocessing=zscore", "backbone.preprocessing"),
    ("trainer.distribute=horovod", "trainer.distribute"),
])
def test_validation_accepts_exactly_the_registered_names(override: str, key: str) -> None:
    registry = next(registry for registry in REGISTRIES if registry.key == key)
    value = override.split("=")[1]
    with pytest.raises(ConfigError) as caught:
        to_train_config(compose_train([override]))
    assert str(caught.value) == f"{key}={value!r} is unknown; accepted: {', '.join(registry.names())}."


def test_a_registered_name_is_refused_twice_and_displayed_by_its_display_name() -> None:
    registry: Registry[Option] = Registry("thing.name", [Option("a", "Alpha", "the first")])
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Option("a", "Again", "a second a"))
    assert registry.display("a") == "Alpha"
    assert registry.display("unknown") == "unknown"
    assert BACKBONES.display("inception_resnet_v2") == "InceptionResNetV2"


def test_help_lists_every_registered_option() -> None:
    result = subprocess.run([sys.executable, "-m", "facebias.train", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    for registry in REGISTRIES:
        for option in registry:
            row = rf"^ +{re.escape(option.name)} +{re.escape(option.display)} +{re.escape(option.summary)}$"
            assert re.search(row, result.stdout, re.MULTILINE), f"--help does not list {registry.key}={option.name}"
