"""Epoch-end checkpoints of a run, so that a killed run can resume where it stopped (`resume=auto|<run id>`).

One checkpoint is one `.npz` file, `<output_dir>/checkpoint/last.npz`, replaced atomically (written to a temporary
file, synced, then renamed over the old one), so a kill at any moment leaves the last good checkpoint. It holds:

- the model's variables (`model.variables`: weights, BatchNorm statistics and the SeedGenerator states of
  Dropout & co., so the next epoch draws the same dropout masks as an uninterrupted run);
- the current stage's optimizer variables (iterations, Adam moments);
- where the run is: stage index, epochs done within the stage, epochs of the finished stages, whether the stage
  is over (early stopping fired or its epoch budget is spent);
- the early-stopping state: best value, best epoch, wait counter and best weights;
- the Python and NumPy RNG states and the run seed (shuffles and augmentation are stateless, keyed by
  (seed, epoch), so they need nothing more);
- the mitigations' state (e.g. group DRO's per-group weights q, JTT's up-weighted examples);
- what the loop noted per stage (whether it trained on cached features, with the cache's hits and misses), and
  the last curve values or, once the last stage is over, the run's loop summary (resent if a kill lost them).
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facebias.errors import StorageError
from facebias.io import atomic_file

log = logging.getLogger(__name__)

CHECKPOINT_FOLDER = "checkpoint"
CHECKPOINT_FILE = "last.npz"
FINAL_WEIGHTS_FILE = "model.weights.h5"
FORMAT = "facebias-checkpoint/2"


def checkpoint_path(output_dir: Path) -> Path:
    """Where a run's checkpoint lives."""
    return output_dir / CHECKPOINT_FOLDER / CHECKPOINT_FILE


@dataclass
class EarlyStoppingState:
    """What `keras.callbacks.EarlyStopping` has learnt so far in a stage."""

    best: float | None = None
    best_epoch: int = 0
    wait: int = 0
    best_weights: list[np.ndarray] | None = None


@dataclass
class Checkpoint:
    """The state of a run at the end of an epoch (or of a stage, then with `epoch=0` of the next stage)."""

    stage: int
    """1-based index of the stage in progress."""
    epoch: int
    """Epochs of that stage already trained."""
    stage_epochs: list[int]
    """Epochs run by each finished stage."""
    seed: int
    stage_over: bool = False
    """The stage ended after `epoch` epochs (early stopping, or its max_epochs reached)."""
    model_variables: list[np.ndarray] = field(default_factory=list)
    optimizer_variables: list[np.ndarray] | None = None
    early_stopping: EarlyStoppingState | None = None
    python_rng: Any = None
    numpy_rng: Any = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    """What the loop sent right after writing this checkpoint ({"records": [[metrics, step], …]}): the last epoch's
    curve values, or the loop summary after the last stage; resent on resume if a kill lost them."""
    notes: list[str] = field(default_factory=list)
    """One note per stage begun: whether it trained on cached backbone features, and why not."""
    cache_counts: list[list[int]] = field(default_factory=list)
    """Feature-cache [hits, misses] per stage begun."""
    mitigation_state: Any = None
    """The mitigations' state (facebias.training.hooks `state`, JSON-friendly), else None."""

    @property
    def global_epoch(self) -> int:
        """Epochs trained over the whole run so far."""
        return sum(self.stage_epochs) + self.epoch


def capture_rng() -> tuple[Any, Any]:
    """The Python and NumPy global RNG states, JSON-friendly."""
    version, internal, gauss = random.getstate()
    numpy_state: Any = np.random.get_state()
    name, keys, position, has_gauss, cached = numpy_state
    return [version, list(internal), gauss], [name, keys.tolist(), int(position), int(has_gauss), float(cached)]


def restore_rng(python_rng: Any, numpy_rng: Any) -> None:
    """Put back states taken by `capture_rng`."""
    if python_rng is not None:
        version, internal, gauss = python_rng
        random.setstate((version, tuple(internal), gauss))
    if numpy_rng is not None:
        name, keys, position, has_gauss, cached = numpy_rng
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write `checkpoint` to `path` atomically (facebias.io): a kill at any moment leaves the last good one."""
    state = {key: value for key, value in asdict(checkpoint).items()
             if key not in ("model_variables", "optimizer_variables", "early_stopping")}
    stopping = checkpoint.early_stopping
    state["format"] = FORMAT
    state["early_stopping"] = None if stopping is None else {
        "best": stopping.best, "best_epoch": stopping.best_epoch, "wait": stopping.wait,
        "has_best_weights": stopping.best_weights is not None}
    state["has_optimizer"] = checkpoint.optimizer_variables is not None
    arrays: dict[str, Any] = {"state": np.asarray(json.dumps(state))}
    arrays.update({f"model_{i}": np.asarray(v) for i, v in enumerate(checkpoint.model_variables)})
    for i, value in enumerate(checkpoint.optimizer_variables or []):
        arrays[f"optimizer_{i}"] = np.asarray(value)
    for i, value in enumerate((stopping.best_weights if stopping else None) or []):
        arrays[f"best_{i}"] = np.asarray(value)
    try:
        with atomic_file(path) as stream:
            np.savez(stream, **arrays)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise StorageError(f"cannot write the checkpoint in {path.parent} ({reason}): the previous checkpoint is "
                           "kept; free space there, then rerun the same command with resume=auto to continue from "
                           "it.") from error


def _numbered(data: Any, prefix: str) -> list[np.ndarray]:
    count = sum(1 for name in data.files if name.startswith(prefix))
    return [data[f"{prefix}{i}"] for i in range(count)]


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None if there is none."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        state = json.loads(str(data["state"]))
        written = state.pop("format", None)
        if written != FORMAT:
            warnings.warn(f"the checkpoint {path} was written in format {written!r} by another facebias version; this "
                          f"one reads {FORMAT!r}, so the run cannot continue from it and trains from the start",
                          stacklevel=2)
            return None
        stopping = state.pop("early_stopping")
        has_optimizer = state.pop("has_optimizer")
        early_stopping = None
        if stopping is not None:
            best_weights = _numbered(data, "best_") if stopping.pop("has_best_weights") else None
            early_stopping = EarlyStoppingState(**stopping, best_weights=best_weights)
        return Checkpoint(**state, model_variables=_numbered(data, "model_"),
                          optimizer_variables=_numbered(data, "optimizer_") if has_optimizer else None,
                          early_stopping=early_stopping)


def finish_checkpoints(output_dir: Path, model: Any, keep_final_model: bool) -> Path | None:
    """At the end of a run: remove the checkpoint folder; save the final weights when asked. Returns their path."""
    final = None
    if keep_final_model:
        final = output_dir / FINAL_WEIGHTS_FILE
        model.save_weights(final)
    shutil.rmtree(output_dir / CHECKPOINT_FOLDER, ignore_errors=True)
    return final
