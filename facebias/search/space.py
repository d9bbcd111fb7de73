"""The search space: Hydra sweep overrides (`choice(…)`, `interval(…)`, `tag(log, interval(…))`, `range(…)`) as
Optuna distributions, and the overrides of the jobs that train one trial, one job per seed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override

from facebias.errors import ConfigError
from facebias.run.sweep import TRIAL_ENV

SEED_KEY = "seed"
"""The config key of a run's seed: never searched; each trial trains `seeds` of them."""


@dataclass(frozen=True)
class SearchSpace:
    """What Optuna samples (`distributions`, by config key) and what every job gets as it is (`fixed` overrides)."""

    distributions: dict[str, Any]
    fixed: list[str]
    base_seed: int


def _distribution(override: Override) -> Any:
    """The Optuna distribution of one sweep override: categorical for a choice or range (their values as written),
    else a float interval, log-uniform when tagged `log` (Hydra reads an interval's bounds as floats)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    if override.is_discrete_sweep():
        return CategoricalDistribution(list(override.sweep_string_iterator()))
    value = override.value()
    if not isinstance(value, IntervalSweep) or value.start is None or value.end is None:
        raise ConfigError(f"{override.input_line}: the search takes choice(…), range(…) or interval(…) sweeps only.")
    return FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)


def search_space(params: Mapping[str, str], arguments: Sequence[str], seed: int) -> SearchSpace:
    """The space of `hydra.sweeper.params` plus any sweep on the command line; other overrides are fixed.

    `seed` is the composed `seed` (the first replicate's); a `seed=` override is dropped from the fixed ones, and a
    searched seed is refused: replicates, not a parameter, are what vary the seed."""
    overrides = OverridesParser.create().parse_overrides(
        [*(f"{key}={value}" for key, value in params.items()), *arguments])
    latest = {override.key_or_group: override for override in overrides}  # the command line wins over params
    if SEED_KEY in latest and latest[SEED_KEY].is_sweep_override():
        raise ConfigError("the search cannot search `seed`: every trial trains hydra.sweeper.seeds seeds.")
    distributions = {key: _distribution(o) for key, o in latest.items() if o.is_sweep_override()}
    fixed = [o.input_line or f"{o.get_key_element()}={o.get_value_element_as_str()}" for key, o in latest.items()
             if not o.is_sweep_override() and key != SEED_KEY]
    return SearchSpace(distributions, fixed, seed)


def trial_overrides(space: SearchSpace, params: Mapping[str, Any], trial: int, seeds: int, resume: bool
                    ) -> list[list[str]]:
    """The overrides of the `seeds` jobs of trial number `trial` with sampled `params`: seeds base, base + 1, …

    With `resume`, each job continues its killed run, if any (resume=auto): a trial cut short by a killed search
    trains on from its runs' last checkpoints when the search is rerun."""
    sampled = [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()]
    extra = ["resume=auto"] if resume else []
    return [[*space.fixed, *sampled, f"{SEED_KEY}={space.base_seed + k}", *extra,
             f"+hydra.job.env_set.{TRIAL_ENV}={trial}"] for k in range(seeds)]
