"""The recipe of one run: data → model → stages → evaluate → record, in one MLflow run (or a local recorder).

`run_locked` is what facebias.run.start hands a run over to once what can fail fast has not (the tracking store is
reached, the run to resume found, the output folder locked). Importing this module loads TensorFlow.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from facebias.artifacts import write_run_artifacts
from facebias.data.card import dataset_card
from facebias.data.dataset import Dataset
from facebias.data.sources import load_dataset
from facebias.identity import DATASET_DIGEST_TAG, FEATURE_CACHE_TAG, REPLICAS_TAG, run_name
from facebias.io import write_text
from facebias.progress import set_verbosity
from facebias.redaction import redacted_text
from facebias.run.mitigation import prepare_mitigations, served_inputs, write_mitigation_artifacts
from facebias.run.plan import RunPlan
from facebias.run.resume import restore_history, unlogged
from facebias.runtime import (
    build_run_model,
    configure_devices,
    evaluate_model,
    seed_everything,
    serving,
)
from facebias.tracking.models import MODEL_NAME, save_logged_model
from facebias.tracking.params import flatten_params
from facebias.tracking.recorder import Recorder
from facebias.tracking.runs import RunRequest, tracked_run
from facebias.training.checkpoint import checkpoint_path, finish_checkpoints
from facebias.training.feature_cache import FeatureStore
from facebias.training.history import CurveHistory
from facebias.training.loop import FeatureCacheContext, LoopContext, run_schedule
from facebias.training.schedule import plan_stages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced: its MLflow run id, final metrics, output folder, how to view it, and where its
    model is (`models:/<model id>`, its LoggedModel, or a folder when the store does not hold it)."""

    run_id: str
    metrics: dict[str, float]
    output_dir: Path
    view_hint: str
    model: str = ""


def run_locked(plan: RunPlan) -> RunResult:
    """Train, evaluate and record the run, once facebias.run.start has reached the tracking store, found the run to
    resume (`plan.target`) and locked the run's output folder for this process."""
    config, resolved, output_dir, tags, target = plan.config, plan.resolved, plan.output_dir, plan.tags, plan.target
    params = flatten_params({key: value for key, value in resolved.items() if key != "resume"})
    request = RunRequest(run_name(config), output_dir, tags, params, plan.parent_run_id, plan.on_run_open,
                         None if target is None else target.run_id, config.tracking.system_metrics)
    with tracked_run(plan.store, request) as recorder:
        if target is not None:
            recorder.set_tags(tags)
        set_verbosity(config.trainer.verbose)
        configure_devices(config.trainer)
        seed_everything(config.seed, config.trainer.deterministic)
        dataset = load_dataset(config.data)
        record_dataset(recorder, dataset, output_dir / "artifacts")
        model, strategy = build_run_model(config, dataset.image_size)
        inputs = prepare_mitigations(config, dataset, recorder.log_metrics,
                                     None if target is None else target.checkpoint.mitigation_state)
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
            hooks=inputs.mitigations,
            sampling_groups=inputs.mitigations.sampling_groups(),
        )
        stage_epochs = run_schedule(model, plan_stages(config.schedule.stages, config.trainer), inputs.data, valid,
                                    context)
        record_loop_notes(recorder, context)
        print("evaluating the validation and test splits", flush=True)
        evaluations, correction = evaluate_model(model, dataset, limit, config.statistics, config.trainer,
                                                 inputs.mitigations.calibrate)
        metrics = dict(inputs.mitigations.metrics())
        for evaluation in evaluations:
            metrics.update(evaluation.flat_metrics())
        recorder.log_metrics(metrics if target is None else unlogged(recorder, metrics))
        print("writing the run's artifacts", flush=True)
        artifacts = write_run_artifacts(output_dir / "artifacts", resolved, history, stage_epochs, evaluations)
        write_mitigation_artifacts(artifacts, inputs.mitigations)
        copy_hydra_files(output_dir, artifacts / "hydra")
        model_folder = None
        if config.tracking.log_model:
            example = served_inputs(dataset.test.images[:1], dataset.test.attributes.iloc[:1], correction)
            hook = () if correction is None else correction.serving_hook()
            model_folder = save_logged_model(serving(model, strategy, hook), output_dir / MODEL_NAME, example,
                                             None if correction is None else correction.group_attributes)
        recorder.log_artifacts(artifacts)
        if model_folder is not None:
            recorder.log_model(model_folder, list(metrics))
        if config.tracking.register_as:
            version = recorder.register_model(config.tracking.register_as)
            if version is not None:
                print(f"registered the model as {config.tracking.register_as!r} version {version}", flush=True)
        finish_checkpoints(output_dir, model, config.trainer.keep_final_model)
    return RunResult(recorder.run_id, metrics, output_dir, recorder.view_hint(),
                     "" if model_folder is None else model_location(recorder, model_folder))


def model_location(recorder: Recorder, model_folder: Path) -> str:
    """Where the run's saved model is: its LoggedModel's URI, the folder removed (the store holds it); else, the
    store not holding it (tracking disabled, or offline until synced), the folder's path."""
    location = recorder.model_uri()
    if location is None:
        return str(model_folder.resolve())
    shutil.rmtree(model_folder)
    return location


def copy_hydra_files(output_dir: Path, folder: Path) -> None:
    """Hydra's record of the run (.hydra/: the composed config.yaml, the command line's overrides.yaml and
    hydra.yaml), copied among the artifacts without credentials; nothing when Hydra wrote none (a run started
    in-process)."""
    source = output_dir / ".hydra"
    if not source.is_dir():
        return
    folder.mkdir(parents=True, exist_ok=True)
    for file in sorted(source.glob("*.yaml")):
        write_text(folder / file.name, redacted_text(file.read_text(encoding="utf-8")))


def record_loop_notes(recorder: Recorder, context: LoopContext) -> None:
    """Replicas, and why each stage did or did not use the feature cache (the loop sent its metrics itself)."""
    for note in context.notes:
        log.info(note)
    recorder.set_tags({FEATURE_CACHE_TAG: " | ".join(context.notes), REPLICAS_TAG: str(context.replicas)})


def record_dataset(recorder: Recorder, dataset: Dataset, folder: Path) -> None:
    """Tag the run with the dataset digest, log the dataset as a run input, and write its card."""
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / "dataset_card.md", dataset_card(dataset))
    digest = dataset.digest()
    recorder.set_tags({DATASET_DIGEST_TAG: digest})
    source = dataset.extras.get("prepared_cache", f"facebias:{dataset.name}")
    recorder.log_dataset(dataset.name, digest, source, {name: len(split) for name, split in dataset.splits.items()})
