"""Entry point: `python -m facebias.train [group=option ...]` — compose → build → run stages → evaluate → log.

Heavy libraries (TensorFlow, MLflow) are imported only once a run really starts, so `--help` and
`--cfg job` stay fast. Every epoch end leaves a checkpoint in the output folder; `resume=auto` (or
`resume=<run id>`) continues a killed run from its last checkpoint, in the same MLflow run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from facebias.config import TrainConfig, register_configs, to_train_config
from facebias.errors import ConfigError, FacebiasError

if TYPE_CHECKING:
    from facebias.training.checkpoint import Checkpoint
    from facebias.training.history import CurveHistory

register_configs()
log = logging.getLogger(__name__)

SUMMARY_METRICS: tuple[str, ...] = ("mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias")


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced: its MLflow run id, final metrics, output folder and how to view it."""

    run_id: str
    metrics: dict[str, float]
    output_dir: Path
    view_hint: str


def run_name(config: TrainConfig) -> str:
    """E.g. `resnet50-mlp-three_stage-group`, from the chosen options."""
    return f"{config.backbone.name}-{config.head.name}-{config.schedule.name}-{config.weighting.name}"


def run_tags(config: TrainConfig, choices: Mapping[str, str | None]) -> dict[str, str]:
    """One tag per config-group choice (hydra.runtime.choices), plus the seed and the description."""
    tags = {f"facebias.{group}": str(option) for group, option in choices.items() if not group.startswith("hydra")}
    tags["facebias.seed"] = str(config.seed)
    if config.description:
        tags["mlflow.note.content"] = config.description
    return tags


@dataclass(frozen=True)
class ResumeTarget:
    """A killed run to continue: its MLflow run id, its output folder and its last checkpoint."""

    run_id: str
    output_dir: Path
    checkpoint: Checkpoint


def fingerprint_of(resolved: Mapping[str, Any]) -> str:
    """The config fingerprint (as sweeps compute it) of the resolved config; `resume` does not count."""
    from facebias.sweep import config_fingerprint

    return config_fingerprint(resolved)


def find_resume_target(config: TrainConfig, fingerprint: str, base_dir: Path) -> ResumeTarget | None:
    """The run `config.resume` names (auto: the newest unfinished run of this config with a checkpoint), or None."""
    from facebias.run.identity import FINGERPRINT_TAG, OUTPUT_DIR_TAG
    from facebias.tracking.queries import run_tags_of, unfinished_runs
    from facebias.training.checkpoint import checkpoint_path, load_checkpoint

    if config.resume is None:
        return None
    if not config.tracking.enabled:
        raise ConfigError(f"resume={config.resume} needs MLflow tracking: drop tracking=none, or drop resume.")
    if config.resume == "auto":
        for run_id, folder in unfinished_runs(config.tracking, base_dir, {FINGERPRINT_TAG: fingerprint},
                                              OUTPUT_DIR_TAG):
            checkpoint = load_checkpoint(checkpoint_path(Path(folder))) if folder else None
            if checkpoint is not None:
                return ResumeTarget(run_id, Path(folder), checkpoint)
        print("resume=auto: no unfinished run of this config has a checkpoint, so a new run starts.")
        return None
    tags = run_tags_of(config.tracking, base_dir, config.resume)
    if tags is None:
        raise ConfigError(f"resume={config.resume}: the MLflow experiment {config.tracking.experiment!r} has no "
                          "such run; give the id of a killed run, or resume=auto.")
    if tags.get(FINGERPRINT_TAG) != fingerprint:
        raise ConfigError(f"resume={config.resume}: that run was started with another configuration; rerun its "
                          "own command with resume=….")
    folder = tags.get(OUTPUT_DIR_TAG)
    checkpoint = load_checkpoint(checkpoint_path(Path(folder))) if folder else None
    if checkpoint is None:
        raise ConfigError(f"resume={config.resume}: that run has no checkpoint to resume from (it finished, or "
                          "was started before checkpoints existed).")
    return ResumeTarget(config.resume, Path(folder), checkpoint)


def train(
    config: TrainConfig,
    *,
    resolved: dict[str, Any],
    output_dir: Path,
    base_dir: Path,
    choices: Mapping[str, str | None],
    parent_run_id: str | None = None,
    extra_tags: Mapping[str, str] | None = None,
    on_run_open: Callable[[str], None] | None = None,
) -> RunResult:
    """Train and evaluate one composed run, recording everything in one MLflow run.

    In a sweep, the run is a child of `parent_run_id` and carries `extra_tags` (job number, fingerprint).
    """
    from facebias.artifacts import write_run_artifacts
    from facebias.data.sources import load_dataset
    from facebias.run.identity import FINGERPRINT_TAG, OUTPUT_DIR_TAG
    from facebias.runtime import build_run_model, configure_devices, evaluate_model, seed_everything
    from facebias.tracking.params import flatten_params
    from facebias.tracking.runs import tracked_run
    from facebias.training.checkpoint import checkpoint_path, finish_checkpoints
    from facebias.training.feature_cache import FeatureStore
    from facebias.training.history import CurveHistory
    from facebias.training.loop import FeatureCacheContext, LoopContext, run_schedule
    from facebias.training.schedule import plan_stages
    from facebias.training.weighting import sample_weights

    fingerprint = fingerprint_of(resolved)
    target = find_resume_target(config, fingerprint, base_dir)
    if target is not None:
        output_dir = target.output_dir
        print(f"resuming run {target.run_id} from its checkpoint in {output_dir} (stage "
              f"{target.checkpoint.stage}, {target.checkpoint.epoch} epoch(s) done in it)")
    output_dir.mkdir(parents=True, exist_ok=True)
    params = flatten_params({key: value for key, value in resolved.items() if key != "resume"})
    tags = {**run_tags(config, choices), FINGERPRINT_TAG: fingerprint, OUTPUT_DIR_TAG: str(output_dir.resolve()),
            **(extra_tags or {})}
    with tracked_run(config.tracking, base_dir, output_dir, run_name(config), tags, params, parent_run_id,
                     on_run_open, None if target is None else target.run_id) as recorder:
        if target is not None:
            recorder.set_tags(tags)
        configure_devices(config.trainer)
        seed_everything(config.seed, config.trainer.deterministic)
        dataset = load_dataset(config.data)
        record_dataset(recorder, dataset, output_dir / "artifacts")
        model, strategy = build_run_model(config, dataset.image_size)
        weights = sample_weights(config.weighting.name, dataset.train.attributes)
        limit = config.trainer.max_eval_samples
        valid = dataset.valid.images[:limit], dataset.valid.ages[:limit] / 100.0
        history = CurveHistory(recorder.log_metrics)
        if target is not None:
            restore_history(recorder, history, target.checkpoint)
        store = FeatureStore()
        context = LoopContext(
            sink=history.record,
            verbose=config.trainer.verbose if config.trainer.verbose == "auto" else int(config.trainer.verbose),
            seed=config.seed,
            augmentation=config.augmentation,
            feature_cache=FeatureCacheContext(store, dataset.digest(), config.trainer.feature_cache),
            strategy=strategy,
            jit_compile=config.trainer.jit_compile,
            checkpoint_file=checkpoint_path(output_dir),
            resume=None if target is None else target.checkpoint,
        )
        train_data = dataset.train.images, dataset.train.ages / 100.0, weights
        stage_epochs = run_schedule(model, plan_stages(config.schedule.stages, config.trainer), train_data, valid,
                                    context)
        record_loop_notes(recorder, context, stage_epochs)
        evaluations = evaluate_model(model, dataset, limit, config.statistics)
        metrics = {}
        for evaluation in evaluations:
            metrics.update(evaluation.flat_metrics())
        recorder.log_metrics(metrics)
        artifacts = write_run_artifacts(output_dir / "artifacts", resolved, history, stage_epochs, evaluations)
        recorder.log_artifacts(artifacts)
        finish_checkpoints(output_dir, model, config.trainer.keep_final_model)
    return RunResult(recorder.run_id, metrics, output_dir, recorder.view_hint())


def restore_history(recorder: Any, history: CurveHistory, checkpoint: Checkpoint) -> None:
    """Resuming: send the checkpoint's last epoch curves if a kill came between writing the checkpoint and sending
    them, then load the curves of the epochs before the checkpoint into `history` (for the learning-curve plot)."""
    from facebias.tracking.queries import logged_history
    from facebias.training.loop import CURVE_KEYS

    for metrics, step in checkpoint.last_metrics.get("records", []):
        missing = {key: value for key, value in metrics.items() if step not in logged_history(recorder, key)}
        if missing:
            recorder.log_metrics(missing, step)
    for key in CURVE_KEYS.values():
        for step, value in logged_history(recorder, f"epoch/{key}").items():
            if step < checkpoint.global_epoch:
                history.rows.setdefault(step, {})[key] = value


def record_loop_notes(recorder: Any, context: Any, stage_epochs: list[int]) -> None:
    """Epochs per stage, feature-cache hits/misses, replicas, and why each stage did or did not use the cache."""
    for note in context.notes:
        log.info(note)
    store = context.feature_cache.store
    recorder.log_metrics({**{f"stage{i}/epochs": n for i, n in enumerate(stage_epochs, start=1)},
                          "feature_cache/hits": store.hits, "feature_cache/misses": store.misses})
    recorder.set_tags({"facebias.feature_cache": " | ".join(context.notes), "facebias.replicas": context.replicas})


def record_dataset(recorder: Any, dataset: Any, folder: Path) -> None:
    """Tag the run with the dataset digest, log the dataset as a run input, and write its card."""
    from facebias.data.card import dataset_card

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_card.md").write_text(dataset_card(dataset))
    digest = dataset.digest()
    recorder.set_tags({"facebias.dataset_digest": digest})
    source = dataset.extras.get("prepared_cache", f"facebias:{dataset.name}")
    recorder.log_dataset(dataset.name, digest, source, {name: len(split) for name, split in dataset.splits.items()})


NOISE_ALPHA = 0.05
"""A bias whose permutation p-value is at least this is reported as within noise."""


def summary_lines(metrics: Mapping[str, float], level: float) -> list[str]:
    """Each evaluated split's scores with their bootstrap intervals, then each bias against its noise floor."""
    lines = []
    for split in ("val", "test"):
        if f"{split}/mae" not in metrics:
            continue
        values = []
        for name in SUMMARY_METRICS:
            text = f"{name} {metrics[f'{split}/{name}']:.3f}"
            if f"{split}/{name}_ci_low" in metrics:
                text += f" [{metrics[f'{split}/{name}_ci_low']:.3f}, {metrics[f'{split}/{name}_ci_high']:.3f}]"
            values.append(text)
        lines.append(f"{split:>4}: {', '.join(values)}")
    if any(key.endswith("_ci_low") for key in metrics):
        lines.append(f"      [low, high]: {level:.0%} bootstrap interval over the evaluated images")
    split = "test" if "test/mae" in metrics else "val"
    biases = [name for name in SUMMARY_METRICS[1:] if f"{split}/{name}_null" in metrics]
    if biases:
        lines.append(f"noise floor on {split} (the score if errors ignored the group; permutation p-value):")
        for name in biases:
            p_value = metrics[f"{split}/{name}_p"]
            verdict = "within noise" if p_value >= NOISE_ALPHA else "beyond noise"
            lines.append(f"  {name} {metrics[f'{split}/{name}']:.3f} vs. null {metrics[f'{split}/{name}_null']:.3f}"
                         f" (p {p_value:.3f}): {verdict}")
        lines.append(f"  A bias within noise (p >= {NOISE_ALPHA}) is not evidence of unfairness: errors that do not "
                     "depend on the group would score as much.")
    return lines


def print_summary(result: RunResult, level: float) -> None:
    """The headline metrics with their uncertainty, the run id and how to look at the run."""
    print("\n== facebias run finished ==")
    for line in summary_lines(result.metrics, level):
        print(line)
    print(f"run id: {result.run_id}")
    print(f"outputs: {result.output_dir}")
    print(f"view it: {result.view_hint}")


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra task: validate the config, train, print the summary; returns the validation MAE (for sweepers: tuning
    must never see the test split)."""
    logging.captureWarnings(True)
    hydra_config = HydraConfig.get()
    choices = dict(hydra_config.runtime.choices)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    run = partial(train, resolved=resolved, output_dir=Path(hydra_config.runtime.output_dir),
                  base_dir=Path(hydra.utils.get_original_cwd()), choices=choices)
    if hydra_config.mode == RunMode.MULTIRUN:
        from facebias.sweep import run_sweep_job

        try:
            config: TrainConfig | FacebiasError = to_train_config(cfg)
        except FacebiasError as error:
            config = error
        name = "-".join(str(choices.get(group)) for group in ("backbone", "head", "schedule", "weighting"))
        tags = run_tags(config, choices) if isinstance(config, TrainConfig) else {}
        return run_sweep_job(config, resolved, hydra_config, run, name, tags)
    try:
        config = to_train_config(cfg)
        result = run(config)
    except FacebiasError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from error
    print_summary(result, config.statistics.level)
    return result.metrics.get("val/mae")


if __name__ == "__main__":
    main()
