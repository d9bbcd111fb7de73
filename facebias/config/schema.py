"""The structured-config schema of a run: the dataclasses Hydra's ConfigStore holds, which conf/*.yaml extend and
OmegaConf type-checks while Hydra composes (facebias.config converts to them and validates the values)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from facebias.config.mitigation import CalibrationConfig, SamplingConfig, WeightingConfig


@dataclass
class SyntheticDataConfig:
    """The embedded synthetic dataset (facebias.data.synthetic)."""

    name: str = "synthetic"
    n_train: int = 4065
    n_valid: int = 1482
    n_test: int = 1978
    image_size: int = 64
    seed: int = 0
    cache_dir: str | None = None


@dataclass
class AppaRealDataConfig:
    """The official APPA-REAL release folder plus the allcategories_*.csv attribute files (facebias.data.appa_real)."""

    name: str = "appa_real"
    root: str = MISSING
    attributes_dir: str | None = None
    crop_suffix: str = "_face.jpg"
    image_size: int = 224
    on_bad_image: str = "fail"
    cache_dir: str | None = None


@dataclass
class KitArraysDataConfig:
    """The course starting kit's data_*.npy / labels_*.npy / meta_data_*.npy arrays (facebias.data.kit_arrays)."""

    name: str = "kit_arrays"
    root: str = MISSING
    channel_order: str = "bgr"
    allow_object_arrays: bool = False
    image_size: int = 224
    cache_dir: str | None = None


@dataclass
class BackboneConfig:
    """A feature extractor: registry name, input size, preprocessing and optional pretrained weights."""

    name: str = MISSING
    input_size: int = 64
    preprocessing: str = "unit"
    weights: str | None = None
    widths: list[int] = field(default_factory=list)


@dataclass
class HeadConfig:
    """The regression head: Dropout(dropout) → Dense(h, ReLU) for h in hidden_units → Dense(1, sigmoid)."""

    name: str = MISSING
    dropout: float = 0.0
    hidden_units: list[int] = field(default_factory=list)


@dataclass
class StageConfig:
    """One fine-tuning stage: which part trains, with which learning rate, for how long."""

    trainable: str = "all"
    lr: float = 1e-5
    max_epochs: int = 50
    patience: int = 5
    batch_size: int = 32


@dataclass
class ScheduleConfig:
    """A schedule is a list of stages, run in order by one generic loop."""

    name: str = MISSING
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class TrackingConfig:
    """Where MLflow records. `uri: null` → SQLite at <original cwd>/<store_dir>/mlflow.db (MLFLOW_TRACKING_URI wins)."""

    enabled: bool = True
    uri: str | None = None
    store_dir: str = "mlruns"
    experiment: str = "facebias"
    offline_after_s: float = 300.0
    log_model: bool = True
    register_as: str | None = None
    system_metrics: bool = False


@dataclass
class TrainerConfig:
    """How training runs; the `smoke` option caps epochs, batches, sizes and evaluation for seconds-long runs."""

    name: str = "default"
    verbose: str = "auto"
    deterministic: bool = False
    run_eagerly: bool = False
    feature_cache: bool = True
    precision: str = "float32"
    jit_compile: bool | None = None
    distribute: str = "none"
    cpu_devices: int | None = None
    max_epochs_cap: int | None = None
    max_train_batches: int | None = None
    max_batch_size: int | None = None
    max_input_size: int | None = None
    max_eval_samples: int | None = None
    truncate_backbone: bool = False
    keep_final_model: bool = False


@dataclass
class AugmentationConfig:
    """Training-batch augmentation (off by default, as in the study): flip, small crop and brightness jitter."""

    enabled: bool = False
    horizontal_flip: bool = True
    crop_fraction: float = 0.1
    brightness: float = 0.1


@dataclass
class StatisticsConfig:
    """The uncertainty of every score (docs/metrics.md): bootstrap intervals over images, permutation nulls."""

    bootstrap_resamples: int = 1000
    level: float = 0.95
    permutations: int = 1000
    seed: int = 0


@dataclass
class TrainConfig:
    """A whole run, composed by Hydra from one option of every config group."""

    seed: int = 0
    description: str = ""
    pretrained: dict[str, str | None] = field(default_factory=dict)
    sweep_name: str = "sweep"
    data: Any = MISSING
    backbone: BackboneConfig = MISSING
    head: HeadConfig = MISSING
    schedule: ScheduleConfig = MISSING
    weighting: WeightingConfig = MISSING
    sampling: SamplingConfig = MISSING
    calibration: CalibrationConfig = MISSING
    tracking: TrackingConfig = MISSING
    trainer: TrainerConfig = MISSING
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)
    resume: str | None = None
