"""The mitigation options' config schema — weighting, sampling, calibration — and their value validation."""

from __future__ import annotations

from dataclasses import dataclass, field

from facebias.errors import ConfigError
from facebias.options import CALIBRATIONS, SAMPLINGS, WEIGHTINGS

GROUPING_COLUMNS: tuple[str, ...] = ("gender", "ethnicity", "age_group", "expression")
"""The attributes a group may be formed of (weighting, sampling, calibration)."""


LDS_FORMS: tuple[str, ...] = ("inverse", "sqrt_inverse")
"""Label-distribution smoothing's weight of a sample: 1 / p̃(age) or 1 / √p̃(age)."""


@dataclass
class JTTConfig:
    """Just Train Twice: a first pass of at most `first_epochs` epochs; the `share` of training images it fits worst
    weigh `upweight` in the second."""

    first_epochs: int = 5
    share: float = 0.2
    upweight: float = 5.0


@dataclass
class LDSConfig:
    """Label-distribution smoothing: the 1-year age histogram convolved with a Gaussian of `sigma` years; weights
    1 / p̃ (`inverse`) or 1 / √p̃ (`sqrt_inverse`), mean 1."""

    sigma: float = 2.0
    form: str = "sqrt_inverse"


@dataclass
class WeightingConfig:
    """The training loss: plain MSE (`none`), the study's group class weights (`group`), online group DRO
    (`group_dro`, exponentiated-gradient step `dro_step_size`), Just Train Twice (`jtt`) or label-distribution
    smoothing (`lds`); groups are combinations of `attributes`."""

    name: str = "group"
    attributes: list[str] = field(default_factory=lambda: list(GROUPING_COLUMNS))
    dro_step_size: float = 1.0
    jtt: JTTConfig = field(default_factory=JTTConfig)
    lds: LDSConfig = field(default_factory=LDSConfig)


@dataclass
class SamplingConfig:
    """How training batches draw images: `shuffle` (a permutation per epoch) or `balanced` over the groups of
    `attributes` (every group equally likely, an epoch as long as a shuffled one)."""

    name: str = "shuffle"
    attributes: list[str] = field(default_factory=lambda: list(GROUPING_COLUMNS))


@dataclass
class CalibrationConfig:
    """Post-hoc correction of predictions: `none`, or `group_offset` (each group of `attributes` minus its
    validation mean residual, shrunk toward 0 when `shrinkage`, 0 for a group of fewer than `min_count` validation
    images; validation scores cross-fitted over `folds` folds drawn with `seed`). Age group is not allowed: at
    prediction time the true age is unknown."""

    name: str = "none"
    attributes: list[str] = field(default_factory=lambda: ["gender", "ethnicity", "expression"])
    folds: int = 5
    shrinkage: bool = True
    min_count: int = 5
    seed: int = 0


def check(condition: bool, message: str) -> None:
    """ConfigError(message) unless `condition`."""
    if not condition:
        raise ConfigError(message)


def _check_attributes(key: str, attributes: list[str], allowed: tuple[str, ...]) -> None:
    check(
        len(attributes) > 0 and len(set(attributes)) == len(attributes) and set(attributes) <= set(allowed),
        f"{key}={list(attributes)} is invalid: use a non-empty list of distinct attributes from {', '.join(allowed)}.",
    )


def _validate_jtt_lds(jtt: JTTConfig, lds: LDSConfig) -> None:
    check(jtt.first_epochs >= 1, f"weighting.jtt.first_epochs={jtt.first_epochs} is invalid: use a whole number "
          ">= 1 (e.g. 5).")
    check(0.0 < jtt.share < 1.0, f"weighting.jtt.share={jtt.share} is invalid: use a fraction in (0, 1) of the "
          "training images (e.g. 0.2).")
    check(jtt.upweight > 0, f"weighting.jtt.upweight={jtt.upweight} is invalid: use a weight > 0 (e.g. 5).")
    check(lds.sigma > 0, f"weighting.lds.sigma={lds.sigma} is invalid: use a kernel width > 0 years (e.g. 2).")
    check(lds.form in LDS_FORMS, f"weighting.lds.form={lds.form!r} is invalid; accepted: {', '.join(LDS_FORMS)}.")


def validate_groupings(
    weighting: WeightingConfig, sampling: SamplingConfig, calibration: CalibrationConfig, distribute: str
) -> None:
    """Weighting, sampling and calibration: registered names, their attributes and settings; ConfigError
    naming the key, value and what would be accepted."""
    for registry, section in ((WEIGHTINGS, weighting), (SAMPLINGS, sampling), (CALIBRATIONS, calibration)):
        option = registry.get(section.name)
        check(not option.single_device or distribute == "none", f"{registry.group}={option.name} runs on one "
              f"device: trainer.distribute={distribute} is not supported with it; accepted: none.")
    _check_attributes("weighting.attributes", weighting.attributes, GROUPING_COLUMNS)
    _validate_jtt_lds(weighting.jtt, weighting.lds)
    check(
        weighting.dro_step_size > 0,
        f"weighting.dro_step_size={weighting.dro_step_size} is invalid: use a step size > 0 (e.g. 1.0).",
    )
    _check_attributes("sampling.attributes", sampling.attributes, GROUPING_COLUMNS)
    observable = tuple(column for column in GROUPING_COLUMNS if column != "age_group")
    _check_attributes("calibration.attributes", calibration.attributes, observable)
    check(calibration.folds >= 2, f"calibration.folds={calibration.folds} is invalid: use a whole number >= 2 "
          "(e.g. 5).")
    check(calibration.min_count >= 1, f"calibration.min_count={calibration.min_count} is invalid: use a whole "
          "number >= 1 (e.g. 5).")
    check(calibration.seed >= 0, f"calibration.seed={calibration.seed} is invalid: use a whole number >= 0.")
