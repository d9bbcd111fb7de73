"""The registry of every named option: one `Registry` per kind, the one place an option's name is written.

Config validation (facebias.config), the results table's display names (facebias.report) and
`python -m facebias.train --help` all read these registries. Importing this module imports neither TensorFlow
nor anything heavy: an entry names its implementation as a module path, imported only when it is used.

Adding a backbone (or a head, a data source): docs/development/extending.md; a mitigation: docs/architecture.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

from facebias.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One choice of a kind: its name in configs, its name for people, and what it is in one line."""

    name: str
    display: str
    summary: str


@dataclass(frozen=True)
class BackboneOption(Option):
    """A feature extractor, built by `module` (MIN_INPUT_SIZE; from_config(config, input_size) → model `backbone`).

    `takes_weights`: whether `backbone.weights` may name pretrained weights (False: it must stay null).
    """

    module: str
    takes_weights: bool = True

    def builder(self) -> ModuleType:
        """The builder module (importing it imports Keras)."""
        return importlib.import_module(self.module)


@dataclass(frozen=True)
class MitigationOption(Option):
    """A weighting, sampling or calibration, implemented by `module` (`from_config(config: TrainConfig)` returns its
    `facebias.mitigations.base.Mitigation`, whose hooks say what it changes in a run).

    `single_device`: it runs on one device only (`trainer.distribute=none`).
    """

    module: str
    single_device: bool = False

    def implementation(self) -> ModuleType:
        """The implementation module (imported now; it may import TensorFlow)."""
        return importlib.import_module(self.module)


@dataclass(frozen=True)
class TrainablePart(Option):
    """What a stage trains: the backbone, the head or both (the other part is frozen)."""

    backbone: bool
    head: bool

    @property
    def parts(self) -> dict[str, bool]:
        """Sub-model name → whether it trains."""
        return {"backbone": self.backbone, "head": self.head}


@dataclass(frozen=True)
class DataSource(Option):
    """A data source: `loader` ("module:function") turns a `data` config into a Dataset.

    A `prepared` source is validated once and then read from its prepared cache (facebias.data.prepared).
    `checker` ("module:function", optional) checks the source's folder without reading it, before a run opens its
    tracking store.
    """

    loader: str
    prepared: bool = False
    checker: str = ""

    def load_function(self) -> Callable[[Any], Any]:
        """The loader function (its module is imported now)."""
        return _function(self.loader)

    def check_function(self) -> Callable[[Any], None] | None:
        """The folder check (its module is imported now), or None for a source without a folder."""
        return _function(self.checker) if self.checker else None


def _function(name: str) -> Callable[..., Any]:
    """The function "module:function" names (its module is imported now)."""
    module, _, function = name.partition(":")
    return getattr(importlib.import_module(module), function)


OptionT = TypeVar("OptionT", bound=Option)


class Registry(Generic[OptionT]):
    """The options of one kind, in registration order, checked under the config key `key`.

    `group` is the Hydra config group whose `conf/<group>/<name>.yaml` files choose them, if any.
    """

    def __init__(self, key: str, options: Iterable[OptionT], group: str | None = None) -> None:
        self.key = key
        self.group = group
        self._options: dict[str, OptionT] = {}
        for option in options:
            self.register(option)

    def register(self, option: OptionT) -> OptionT:
        """Add an option; ValueError if its name is taken."""
        if option.name in self._options:
            raise ValueError(f"{self.key}={option.name!r} is already registered")
        self._options[option.name] = option
        return option

    def unregister(self, name: str) -> None:
        """Remove an option (KeyError if it is not registered)."""
        del self._options[name]

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._options)

    def __iter__(self) -> Iterator[OptionT]:
        return iter(self._options.values())

    def get(self, name: object, key: str | None = None, where: str = "") -> OptionT:
        """The option `name`; else a ConfigError naming the key (default: the registry's), value and accepted names
        (`where`, e.g. " (stage 2)", follows the value)."""
        if not isinstance(name, str) or name not in self._options:
            raise ConfigError(f"{key or self.key}={name!r} is unknown{where}; accepted: {', '.join(self._options)}.")
        return self._options[name]

    def display(self, name: str) -> str:
        """How people call option `name` (tables, plots); an unregistered name as it is."""
        option = self._options.get(name)
        return name if option is None else option.display


DATA_SOURCES: Registry[DataSource] = Registry("data.name", [
    DataSource("synthetic", "Synthetic", "the embedded synthetic dataset (no download, CPU only)",
               "facebias.data.synthetic:from_config"),
    DataSource("appa_real", "APPA-REAL", "the official APPA-REAL release folder and attribute CSVs (data.root=...)",
               "facebias.data.appa_real:load_appa_real", prepared=True,
               checker="facebias.data.appa_real:check_folders"),
    DataSource("kit_arrays", "Starting kit", "the course starting kit's .npy arrays (data.root=...)",
               "facebias.data.kit_arrays:load_kit_arrays", prepared=True,
               checker="facebias.data.kit_arrays:check_folder"),
], group="data")

BACKBONES: Registry[BackboneOption] = Registry("backbone.name", [
    BackboneOption("small_cnn", "small CNN", "a small CNN trained from scratch, CPU-friendly (not one of the study's)",
                   "facebias.models.small_cnn", takes_weights=False),
    BackboneOption("resnet50", "ResNet50", "ResNet50 (VGGFace2 layer names, 512-unit dim_proj); backbone.weights=<.h5>",
                   "facebias.models.resnet50_vggface2"),
    BackboneOption("inception_resnet_v2", "InceptionResNetV2",
                   "Keras applications' InceptionResNetV2; weights imagenet (Keras' cache), null or a path",
                   "facebias.models.inception_resnet_v2"),
], group="backbone")

HEADS: Registry[Option] = Registry("head.name", [
    Option("mlp", "MLP", "Dropout(0.5) -> Dense(128, ReLU) -> Dense(32, ReLU) -> Dense(1, sigmoid)"),
    Option("linear", "Linear", "Dense(1, sigmoid): the study's 'Classification' head"),
], group="head")

NO_MITIGATION = "facebias.mitigations.base"
"""The implementation of the options that change nothing (weighting=none, sampling=shuffle, calibration=none)."""

WEIGHTINGS: Registry[MitigationOption] = Registry("weighting.name", [
    MitigationOption("none", "None", "plain MSE: every training sample weighs the same", NO_MITIGATION),
    MitigationOption("group", "Group", "a sample of group g (weighting.attributes, default all four) weighs "
                     "N / (2 n_g)", "facebias.mitigations.group_weights"),
    MitigationOption("group_dro", "Group DRO", "online group DRO: loss = sum_g q_g loss_g, q updated by "
                     "exponentiated gradient", "facebias.mitigations.group_dro", single_device=True),
    MitigationOption("jtt", "JTT", "Just Train Twice: the images a first pass fits worst (weighting.jtt.share) weigh "
                     "weighting.jtt.upweight in a second", "facebias.mitigations.jtt"),
    MitigationOption("lds", "LDS", "label-distribution smoothing: weights 1 / p~(age) or 1 / sqrt p~(age), p~ the "
                     "Gaussian-smoothed age histogram", "facebias.mitigations.lds"),
], group="weighting")

SAMPLINGS: Registry[MitigationOption] = Registry("sampling.name", [
    MitigationOption("shuffle", "Shuffle", "every epoch a fresh permutation of the training split", NO_MITIGATION),
    MitigationOption("balanced", "Balanced", "each draw: a group (sampling.attributes) with equal probability, then "
                     "an image", "facebias.mitigations.balanced"),
], group="sampling")

CALIBRATIONS: Registry[MitigationOption] = Registry("calibration.name", [
    MitigationOption("none", "None", "predictions as the model makes them", NO_MITIGATION),
    MitigationOption("group_offset", "Group offset", "minus each group's shrunk mean validation residual "
                     "(calibration.attributes)", "facebias.mitigations.group_offset"),
], group="calibration")

PREPROCESSINGS: Registry[Option] = Registry("backbone.preprocessing", [
    Option("unit", "[0, 1]", "RGB scaled to [0, 1]"),
    Option("vggface2", "VGGFace2", "RGB -> BGR, minus the VGGFace2 per-channel means"),
    Option("inception", "[-1, 1]", "RGB scaled to [-1, 1]"),
])

TRAINABLE_PARTS: Registry[TrainablePart] = Registry("schedule.stages.<i>.trainable", [
    TrainablePart("all", "All", "backbone and head train", backbone=True, head=True),
    TrainablePart("head", "Head", "the head trains, the backbone is frozen", backbone=False, head=True),
    TrainablePart("backbone", "Backbone", "the backbone trains, the head is frozen", backbone=True, head=False),
])

PRECISIONS: Registry[Option] = Registry("trainer.precision", [
    Option("float32", "float32", "full precision"),
    Option("mixed_float16", "mixed float16", "Keras mixed precision (the age output stays float32)"),
    Option("mixed_bfloat16", "mixed bfloat16", "Keras mixed precision (the age output stays float32)"),
])

DISTRIBUTIONS: Registry[Option] = Registry("trainer.distribute", [
    Option("none", "one device", "train on one device"),
    Option("mirrored", "MirroredStrategy", "tf.distribute.MirroredStrategy over every GPU; batch_size is per replica"),
])

ON_BAD_IMAGES: Registry[Option] = Registry("data.on_bad_image", [
    Option("fail", "fail", "appa_real: stop and list every unreadable image"),
    Option("skip", "skip", "appa_real: leave unreadable images out and log them"),
])

CHANNEL_ORDERS: Registry[Option] = Registry("data.channel_order", [
    Option("bgr", "BGR", "kit_arrays: the arrays hold BGR pixels (the kit's), converted to RGB"),
    Option("rgb", "RGB", "kit_arrays: the arrays hold RGB pixels, kept as they are"),
])

REGISTRIES: tuple[Registry[Any], ...] = (DATA_SOURCES, BACKBONES, HEADS, WEIGHTINGS, SAMPLINGS, CALIBRATIONS,
                                         PREPROCESSINGS, TRAINABLE_PARTS, PRECISIONS, DISTRIBUTIONS, ON_BAD_IMAGES,
                                         CHANNEL_ORDERS)


def describe() -> str:
    """Every registered option with its display name and summary, one block per kind (for `--help`)."""
    blocks = []
    for registry in REGISTRIES:
        heading = f"{registry.group}=<option>" if registry.group else f"{registry.key}=<value>"
        width = max((len(option.name) for option in registry), default=0)
        display_width = max((len(option.display) for option in registry), default=0)
        lines = [f"  {option.name:<{width}}  {option.display:<{display_width}}  {option.summary}"
                 for option in registry]
        blocks.append("\n".join([heading, *lines]))
    return "\n\n".join(blocks)
