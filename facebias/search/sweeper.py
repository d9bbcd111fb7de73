"""facebias' Hydra sweeper for the accuracy-vs-fairness search: Optuna's ask-and-tell API over a persistent study.

Each trial is `seeds` jobs (seeds seed, seed + 1, …; the seed is never searched), launched by the configured Hydra
launcher as children of the search's parent run (facebias.run.sweep); the trial's objectives, told to Optuna, are
the means over its seeds of what the jobs return (val/mae, val/mean_bias: validation only). A trial with a failed
seed is told FAILED and the search goes on. Rerunning a killed search with the same command loads its study: the
trials it left RUNNING are trained again first — their FINISHED seeds skipped by config fingerprint, a killed run
resumed from its checkpoint (resume=auto) — then new trials are asked for until `n_trials` have ended. At the end the
front is written and logged (facebias.search.front).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

from facebias.errors import ConfigError
from facebias.redaction import redacted
from facebias.run.sweep import PARENT_FILE, read_outcomes, sweep_store
from facebias.search.space import SearchSpace, search_space, trial_overrides
from facebias.search.study import RUN_IDS_ATTR, SEEDS_ATTR, open_study, study_name, study_storage

log = logging.getLogger(__name__)

DIRECTIONS = ["minimize", "minimize"]
"""val/mae and val/mean_bias, both minimised: what every job of a search returns (facebias.run.sweep)."""


@dataclass
class SamplerConf:
    """NSGA-II: the first `population_size` trials are drawn at random, later ones bred from the best."""

    seed: int | None = 0
    population_size: int = 10


@dataclass
class SearchSweeperConf:
    """hydra/sweeper=facebias_search (conf/search/fair_pareto.yaml sets it); docs/search.md says what each key does."""

    _target_: str = "hydra_plugins.facebias_search.SearchSweeper"
    direction: list[str] = field(default_factory=lambda: list(DIRECTIONS))
    study_name: str = "search"
    storage: str | None = None
    n_trials: int = 40
    n_jobs: int = 1
    seeds: int = 3
    sampler: SamplerConf = field(default_factory=SamplerConf)
    reference_point: list[float] | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class _Trial:
    """A trial to train: its number, sampled parameters and Optuna handle (to set its attributes)."""

    number: int
    params: dict[str, Any]
    handle: Any


def _value(job: JobReturn) -> Any:
    """What a job returned; None for a job that raised (facebias jobs record their failure and return None)."""
    try:
        return job.return_value
    except Exception:
        return None


class FacebiasSearchSweeper(Sweeper):
    """Trains `n_trials` trials of `seeds` jobs each, `n_jobs` trials at a time, and tells Optuna their means."""

    def __init__(self, direction: list[str], study_name: str, storage: str | None, n_trials: int, n_jobs: int,
                 seeds: int, sampler: DictConfig, reference_point: list[float] | None, params: DictConfig) -> None:
        self.direction, self.name, self.storage = list(direction), study_name, storage
        self.n_trials, self.n_jobs, self.seeds = n_trials, n_jobs, seeds
        self.sampler_seed, self.population_size = sampler.seed, sampler.population_size
        self.reference_point = None if reference_point is None else [float(v) for v in reference_point]
        self.params = {str(key): str(value) for key, value in (params or {}).items()}
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        """Run the search; a bad setting raises its FacebiasError, which `python -m facebias.train` reports in one
        sentence (exit status 1) and records in the sweep's parent run, as a bad run config is."""
        self._validate()
        return self._search(arguments)

    def _validate(self) -> None:
        if self.direction != DIRECTIONS:
            raise ConfigError(f"hydra.sweeper.direction={self.direction}: the search minimises val/mae and "
                              "val/mean_bias, so it must be [minimize, minimize].")
        for key, value in (("n_trials", self.n_trials), ("n_jobs", self.n_jobs), ("seeds", self.seeds)):
            if value < 1:
                raise ConfigError(f"hydra.sweeper.{key}={value}: give a whole number of at least 1.")
        if self.reference_point is not None and len(self.reference_point) != 2:
            raise ConfigError(f"hydra.sweeper.reference_point={self.reference_point}: give two values (val/mae, "
                              "val/mean_bias, in years), or null for the worst observed values × 1.1.")

    def _search(self, arguments: list[str]) -> Any:
        import optuna

        from facebias.search.front import finish_search  # matplotlib: only once a search runs, not at --help

        config = self.config
        assert config is not None and self.launcher is not None
        space = search_space(self.params, arguments, int(config.seed))
        store = sweep_store(config)
        storage = study_storage(self.storage, store.uri if store else None,
                                Path(config.hydra.runtime.cwd) / str(config.tracking.store_dir))
        name = study_name(self.name, list(config.hydra.overrides.task), str(config.tracking.experiment), self.seeds)
        sampler = optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=self.sampler_seed)
        study = open_study(name, storage, self.direction, sampler)
        log.info("Optuna study %s in %s (see it: optuna-dashboard %s)", name, redacted(storage), redacted(storage))
        sweep_dir = Path(config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(config, sweep_dir / "multirun.yaml")
        resume = store is not None and config.get("resume") is None
        running = optuna.trial.TrialState.RUNNING
        stale = [_Trial(t.number, dict(t.params), optuna.trial.Trial(study, t._trial_id))
                 for t in study.get_trials(deepcopy=False, states=(running,))]
        if stale:
            log.warning("trial(s) %s were cut short by a killed search: trained on first (FINISHED seeds are "
                        "skipped, a killed run resumes)", ", ".join(str(t.number) for t in stale))
        job_idx = 0
        while True:
            batch, stale = stale[: self.n_jobs], stale[self.n_jobs:]
            ended = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                   optuna.trial.TrialState.FAIL)))
            if not batch:
                for _ in range(min(self.n_jobs, self.n_trials - ended)):
                    trial = study.ask(space.distributions)
                    batch.append(_Trial(trial.number, dict(trial.params), trial))
            if not batch:
                break
            job_idx = self._train(study, space, batch, resume, sweep_dir, job_idx)
        parent_file = sweep_dir / PARENT_FILE
        tracked = store is not None and parent_file.is_file()
        parent_run_id = json.loads(parent_file.read_text())["parent_run_id"] if tracked else None
        finish_search(study, store, parent_run_id, sweep_dir / "pareto", self.reference_point)
        return study

    def _train(self, study: Any, space: SearchSpace, batch: list[_Trial], resume: bool, sweep_dir: Path,
               job_idx: int) -> int:
        """Launch the jobs of `batch` (numbered from `job_idx`), tell Optuna each trial's outcome; the next number."""
        import optuna

        jobs = [job for trial in batch for job in trial_overrides(space, trial.params, trial.number, self.seeds,
                                                                    resume)]
        try:
            self.validate_batch_is_legal(jobs)
        except Exception:  # an override the config cannot take: FAILED, or a rerun would retry them forever
            for trial in batch:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            raise
        log.info("trial(s) %s: %d job(s), %d seed(s) each", ", ".join(str(t.number) for t in batch), len(jobs),
                 self.seeds)
        returns = self.launcher.launch(jobs, initial_job_idx=job_idx)
        outcomes = {outcome.num: outcome for outcome in read_outcomes(sweep_dir)}
        for position, trial in enumerate(batch):
            nums = range(job_idx + position * self.seeds, job_idx + (position + 1) * self.seeds)
            values = [_value(returns[num - job_idx]) for num in nums]
            run_ids = [outcomes[num].run_id if num in outcomes else None for num in nums]
            trial.handle.set_user_attr(RUN_IDS_ATTR, run_ids)
            trial.handle.set_user_attr(SEEDS_ATTR, [space.base_seed + k for k in range(self.seeds)])
            if any(value is None for value in values):
                log.warning("trial %d failed: %d of its %d seed(s) returned no objectives", trial.number,
                            sum(value is None for value in values), self.seeds)
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
                continue
            means = np.mean(np.asarray(values, dtype=float), axis=0).tolist()
            log.info("trial %d: val/mae %.4f, val/mean_bias %.4f (means over %d seeds)", trial.number, *means,
                     self.seeds)
            study.tell(trial.number, means)
        return job_idx + len(jobs)
