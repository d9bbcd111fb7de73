"""A run's config: the schema (dataclasses in Hydra's ConfigStore, defined in facebias.config.schema and
facebias.config.mitigation, importable from here) and its value validation.

OmegaConf checks the types while Hydra composes; `to_train_config` then converts the composed config to the schema's
dataclasses and `validate` checks the values, so a bad value stops the run before any data is loaded, with one
sentence that names the key, the value and what would be accepted.
"""

from __future__ import annotations

import os
from dataclasses import fields, is_dataclass
from numbers import Integral
from typing import Any, cast
from urllib.parse import urlparse

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from facebias.config.mitigation import CalibrationConfig, SamplingConfig, WeightingConfig, validate_groupings
from facebias.config.mitigation import check as _check
from facebias.config.schema import (
    AppaRealDataConfig,
    AugmentationConfig,
    BackboneConfig,
    HeadConfig,
    KitArraysDataConfig,
    ScheduleConfig,
    StageConfig,
    StatisticsConfig,
    SyntheticDataConfig,
    TrackingConfig,
    TrainConfig,
    TrainerConfig,
)
from facebias.errors import ConfigError, UnknownKeyError
from facebias.options import (
    BACKBONES,
    CHANNEL_ORDERS,
    DATA_SOURCES,
    DISTRIBUTIONS,
    HEADS,
    ON_BAD_IMAGES,
    PRECISIONS,
    PREPROCESSINGS,
    TRAINABLE_PARTS,
    describe,
)
from facebias.redaction import redacted

SYNTHETIC_IMAGE_SIZES: tuple[int, int] = (32, 1024)
"""The smallest and largest side (pixels) of a synthetic image."""
DATABASE_SCHEMES: tuple[str, ...] = ("postgresql", "mysql", "mssql")
"""Database servers MLflow's SQLAlchemy store reaches over the network (a `+driver` suffix allowed)."""
FOLDER_SCHEMES = ("", "file")
"""The URI schemes of a folder store ("": a plain path)."""
TRACKING_SCHEMES: tuple[str, ...] = (*FOLDER_SCHEMES, "sqlite", *DATABASE_SCHEMES, "http", "https", "databricks")
"""The URI schemes MLflow's tracking stores accept (`postgresql+psycopg2` counts as postgresql)."""
FOLDER_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"
"""MLflow's environment variable that lets it open a folder store, which MLflow 3 refuses by default."""


__all__ = [
    "DATABASE_SCHEMES",
    "SYNTHETIC_IMAGE_SIZES",
    "TRACKING_SCHEMES",
    "AppaRealDataConfig",
    "AugmentationConfig",
    "BackboneConfig",
    "CalibrationConfig",
    "HeadConfig",
    "KitArraysDataConfig",
    "SamplingConfig",
    "ScheduleConfig",
    "StageConfig",
    "StatisticsConfig",
    "SyntheticDataConfig",
    "TrackingConfig",
    "TrainConfig",
    "TrainerConfig",
    "WeightingConfig",
    "check_whole_number",
    "register_configs",
    "stage_key",
    "stage_label",
    "to_train_config",
    "tracking_config",
    "unknown_key",
    "validate",
]

def tracking_config(section: DictConfig | dict[str, Any]) -> TrackingConfig:
    """A composed `tracking` section (or the plain dict it resolves to) as a TrackingConfig."""
    plain = OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else section
    return TrackingConfig(**cast(dict[str, Any], plain))


def stage_key(position: int) -> str:
    """The stage at 0-based `position` as a user overrides it and MLflow params name it: `schedule.stages.1`."""
    return f"schedule.stages.{position}"


def stage_label(position: int) -> str:
    """The stage at 0-based `position` as messages and curves count it: `stage 2` (curves: `stage2/…`)."""
    return f"stage {position + 1}"


def register_configs() -> None:
    """Register the schema nodes that conf/*.yaml extend through their defaults lists, and the
    `${facebias_options:}` resolver with which conf/hydra/help/facebias.yaml lists the registered options."""
    OmegaConf.register_new_resolver("facebias_options", describe, replace=True)
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(group="data", name="synthetic_schema", node=SyntheticDataConfig)
    store.store(group="data", name="appa_real_schema", node=AppaRealDataConfig)
    store.store(group="data", name="kit_arrays_schema", node=KitArraysDataConfig)


def _check_positive_optional(value: int | None, key: str) -> None:
    _check(value is None or value >= 1, f"{key}={value} is invalid: use a whole number >= 1, or null for no cap.")


def check_whole_number(value: object, key: str, low: int, high: int | None = None) -> int:
    """`value` as an int; ConfigError `<key>=<value> is invalid: use a whole number >= low` (or `between low and
    high`) unless it is one."""
    number = int(value) if isinstance(value, Integral) and not isinstance(value, bool) else None
    if number is None or number < low or (high is not None and number > high):
        accepted = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{key}={value!r} is invalid: use a whole number {accepted}.")
    return number


def _validate_data(data: Any) -> None:
    """The data source's name, that it matches the chosen `data=` option, and each of its values."""
    name = getattr(data, "name", None)
    DATA_SOURCES.get(name)
    if not is_dataclass(data) or isinstance(data, type):
        return
    chosen = next((item.default for item in fields(data) if item.name == "name"), name)
    _check(name == chosen, f"data.name={name!r} does not match the chosen data source {chosen!r}: choose the source "
           f"with data={name}, not data.name=….")
    if isinstance(data, SyntheticDataConfig):
        for key in ("n_train", "n_valid", "n_test"):
            check_whole_number(getattr(data, key), f"data.{key}", 1)
        check_whole_number(data.image_size, "data.image_size", *SYNTHETIC_IMAGE_SIZES)
        check_whole_number(data.seed, "data.seed", 0)
        return
    if isinstance(data, (AppaRealDataConfig, KitArraysDataConfig)):
        check_whole_number(data.image_size, "data.image_size", 1)
    if isinstance(data, AppaRealDataConfig):
        ON_BAD_IMAGES.get(data.on_bad_image)
    elif isinstance(data, KitArraysDataConfig):
        CHANNEL_ORDERS.get(data.channel_order)


def _validate_backbone(backbone: BackboneConfig) -> None:
    option = BACKBONES.get(backbone.name)
    _check(option.takes_weights or backbone.weights is None, f"backbone.weights={backbone.weights} is invalid: "
           f"{backbone.name} trains from scratch and takes no pretrained weights; accepted: null (or choose a "
           f"pretrained backbone: {', '.join(o.name for o in BACKBONES if o.takes_weights)}).")
    _check(backbone.input_size >= 32, f"backbone.input_size={backbone.input_size} is too small: use 32 or more.")
    PREPROCESSINGS.get(backbone.preprocessing)


def _check_store_uri(key: str, uri: str | None) -> None:
    scheme = urlparse(uri or "").scheme.partition("+")[0]
    shown = None if uri is None else redacted(uri)
    _check(scheme in TRACKING_SCHEMES, f"{key}={shown!r} is not a store MLflow can track to; "
           "accepted: sqlite:///….db, postgresql://…, mysql://…, mssql://…, http(s)://… (a tracking server) or "
           "databricks, or null for sqlite:///<tracking.store_dir>/mlflow.db.")
    allowed = os.environ.get(FOLDER_STORE_OPT_IN, "").lower() in ("true", "1")
    _check(uri is None or scheme not in FOLDER_SCHEMES or allowed, f"{key}={shown!r} is a folder store, which "
           f"MLflow 3 opens only with {FOLDER_STORE_OPT_IN}=true: give sqlite:///<folder>/mlflow.db instead "
           "(`mlflow migrate-filestore` copies an old folder store's runs into one).")


def _validate_tracking(tracking: TrackingConfig) -> None:
    _check_store_uri("tracking.uri", tracking.uri)
    if tracking.enabled and os.environ.get("MLFLOW_TRACKING_URI"):
        _check_store_uri("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])
    _check(bool(tracking.experiment), "tracking.experiment is empty: give the MLflow experiment a name.")
    _check(tracking.offline_after_s >= 0, f"tracking.offline_after_s={tracking.offline_after_s} is "
           "invalid: use a number of seconds >= 0.")
    _check(tracking.log_model or not tracking.register_as, f"tracking.register_as={tracking.register_as} needs "
           "the run's model, which tracking.log_model=false does not save: set tracking.log_model=true or "
           "tracking.register_as=null.")


def validate(config: TrainConfig) -> TrainConfig:
    """Check every value a type cannot express; raise ConfigError naming the key, value and accepted range."""
    _check(config.seed >= 0, f"seed={config.seed} is invalid: use a whole number >= 0.")
    _validate_data(config.data)
    _validate_backbone(config.backbone)
    head = config.head
    HEADS.get(head.name)
    _check(0.0 <= head.dropout < 1.0, f"head.dropout={head.dropout} is invalid: use a rate in [0, 1).")
    for index, units in enumerate(head.hidden_units):
        _check(units >= 1, f"head.hidden_units[{index}]={units} is invalid: use whole numbers >= 1.")
    stages = config.schedule.stages
    _check(len(stages) > 0, f"schedule {config.schedule.name!r} has no stages: give schedule.stages at least "
           "one stage (trainable, lr, max_epochs, patience, batch_size).")
    for position, stage in enumerate(stages):
        key, label = stage_key(position), f" ({stage_label(position)})"
        TRAINABLE_PARTS.get(stage.trainable, f"{key}.trainable", label)
        _check(stage.lr > 0, f"{key}.lr={stage.lr} is invalid{label}: the learning rate must be > 0 (e.g. 1e-4).")
        _check(stage.max_epochs >= 1, f"{key}.max_epochs={stage.max_epochs} is invalid{label}: use a whole number "
               ">= 1.")
        _check(stage.patience >= 0, f"{key}.patience={stage.patience} is invalid{label}: use a whole number >= 0.")
        _check(stage.batch_size >= 1, f"{key}.batch_size={stage.batch_size} is invalid{label}: use a whole number "
               ">= 1.")
    validate_groupings(config.weighting, config.sampling, config.calibration, config.trainer.distribute)
    _validate_tracking(config.tracking)
    augmentation = config.augmentation
    _check(0.0 <= augmentation.crop_fraction < 0.5, f"augmentation.crop_fraction={augmentation.crop_fraction} is "
           "invalid: use a fraction in [0, 0.5) of the image side.")
    _check(0.0 <= augmentation.brightness <= 1.0, f"augmentation.brightness={augmentation.brightness} is invalid: "
           "use a value in [0, 1].")
    statistics = config.statistics
    for key in ("bootstrap_resamples", "permutations"):
        value = getattr(statistics, key)
        _check(value >= 1, f"statistics.{key}={value} is invalid: use a whole number >= 1 (e.g. 1000).")
    _check(0.0 < statistics.level < 1.0, f"statistics.level={statistics.level} is invalid: use a coverage in (0, 1), "
           "e.g. 0.95.")
    trainer = config.trainer
    for key in ("max_epochs_cap", "max_train_batches", "max_batch_size", "max_eval_samples"):
        _check_positive_optional(getattr(trainer, key), f"trainer.{key}")
    _check(trainer.max_input_size is None or trainer.max_input_size >= 32,
           f"trainer.max_input_size={trainer.max_input_size} is invalid: use 32 or more, or null for no cap.")
    PRECISIONS.get(trainer.precision)
    DISTRIBUTIONS.get(trainer.distribute)
    _check_positive_optional(trainer.cpu_devices, "trainer.cpu_devices")
    _check(trainer.verbose in ("auto", "0", "1", "2"), f"trainer.verbose={trainer.verbose!r} is invalid; "
           "accepted: auto, 0, 1, 2.")
    return config


def unknown_key(node: DictConfig | ListConfig, path: str = "") -> tuple[str, list[str]] | None:
    """The first key of `node` (depth first) that its schema does not know, as `schedule.stages.0.foo`, with the keys
    its section has; None when there is none. Hydra lets `+foo=1` add any key and OmegaConf drops or ignores it."""
    if isinstance(node, ListConfig):
        items: list[tuple[str, Any]] = [(str(index), node._get_node(index)) for index in range(len(node))]
    else:
        schema = OmegaConf.get_type(node)
        known = [item.name for item in fields(schema)] if is_dataclass(schema) else None
        if known is not None:
            extra = next((str(key) for key in node if str(key) not in known), None)
            if extra is not None:
                return f"{path}{extra}", known
        items = [(str(key), node._get_node(key)) for key in node]
    for key, child in items:
        if isinstance(child, DictConfig | ListConfig) and not child._is_none() and not child._is_missing():
            found = unknown_key(child, f"{path}{key}.")
            if found is not None:
                return found
    return None


def to_train_config(cfg: DictConfig) -> TrainConfig:
    """Convert a composed config to the typed schema and validate it (ConfigError on any bad value; UnknownKeyError
    for a key the schema does not know)."""
    unknown = unknown_key(cfg)
    if unknown is not None:
        added, known = unknown
        section = added.rpartition(".")[0] or "the config"
        raise UnknownKeyError(f"{added}: no such key; {section} has: {', '.join(known)}.")
    try:
        config = OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        key = getattr(error, "full_key", None) or "a required value"
        raise ConfigError(f"{key} is required but not set: add {key}=… to the command line.") from error
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"invalid configuration value{f' at {key}' if key else ''}: {error.msg}") from error
    if not isinstance(config, TrainConfig):
        raise ConfigError("the composed config does not follow the train schema: compose it from conf/train.yaml.")
    return validate(config)
