"""Resume: find the killed run that `resume=auto|<run id>` continues, and put its logged curves back.

A run leaves a checkpoint at every epoch end (facebias.training.checkpoint) in its output folder, whose path is the
run's `facebias.output_dir` tag; `resume=auto` looks for the newest unfinished run with the same config
fingerprint that has one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facebias.config import TrainConfig
from facebias.errors import ConfigError
from facebias.run.identity import FINGERPRINT_TAG, OUTPUT_DIR_TAG
from facebias.tracking.queries import logged_history, run_tags_of, unfinished_runs
from facebias.tracking.recorder import Recorder
from facebias.training.checkpoint import Checkpoint, checkpoint_path, load_checkpoint
from facebias.training.history import CurveHistory
from facebias.training.loop import CURVE_KEYS


@dataclass(frozen=True)
class ResumeTarget:
    """A killed run to continue: its MLflow run id, its output folder and its last checkpoint."""

    run_id: str
    output_dir: Path
    checkpoint: Checkpoint


def find_resume_target(config: TrainConfig, fingerprint: str, base_dir: Path) -> ResumeTarget | None:
    """The run `config.resume` names (auto: the newest unfinished run of this config with a checkpoint), or None."""
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


def restore_history(recorder: Recorder, history: CurveHistory, checkpoint: Checkpoint) -> None:
    """Resuming: send the checkpoint's last epoch curves if a kill came between writing the checkpoint and sending
    them, then load the curves of the epochs before the checkpoint into `history` (for the learning-curve plot)."""
    for metrics, step in checkpoint.last_metrics.get("records", []):
        missing = {key: value for key, value in metrics.items() if step not in logged_history(recorder, key)}
        if missing:
            recorder.log_metrics(missing, step)
    for key in CURVE_KEYS.values():
        for step, value in logged_history(recorder, f"epoch/{key}").items():
            if step < checkpoint.global_epoch:
                history.rows.setdefault(step, {})[key] = value
