"""The offline journal: everything one run recorded, as written to <output_dir>/tracking_offline/ when its tracking
server stays away, and read back by `python -m facebias.sync`.

Format `facebias-offline-run/1`: run.json (the run's id, store, experiment, name, start and end time, status),
params.json, tags.json, metrics.jsonl (one `{"key", "value", "timestamp", "step"}` per line), datasets.json,
artifacts/ and, once the run has saved it, model/ (its MLflow model, uploaded as the run's LoggedModel). Every file
is replaced atomically (`facebias.io`), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facebias.errors import TrackingError, path_problem
from facebias.io import write_json, write_text
from facebias.overrides import override_value

OFFLINE_FOLDER = "tracking_offline"
"""Where, under a run's output directory, a run whose tracking server stayed away is written."""
OFFLINE_FORMAT = "facebias-offline-run/1"


def sync_command(folder: Path) -> str:
    """The command that uploads an offline run folder."""
    return f"python -m facebias.sync {shlex.quote(f'folder={override_value(str(folder))}')}"


@dataclass
class RunJournal:
    """Everything one run recorded: its identity (`info`), params, tags, every metric value, datasets, artifacts,
    and the folder of its saved model (`model`).

    Kept in memory while the run lasts, so that a run whose tracking server stays away can be written out whole
    (`save`, into <output_dir>/tracking_offline/) and replayed later by `python -m facebias.sync` (`load`).
    """

    info: dict[str, Any]
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    model: str | None = None

    def save(self, folder: Path, copied: int = 0) -> int:
        """Write the journal to `folder`, copying the artifacts logged after the first `copied`; returns the count."""
        (folder / "artifacts").mkdir(parents=True, exist_ok=True)
        for name in ("params", "tags", "datasets"):
            write_json(folder / f"{name}.json", getattr(self, name))
        write_text(folder / "metrics.jsonl", "".join(json.dumps(metric) + "\n" for metric in self.metrics))
        for source in self.artifacts[copied:]:
            if Path(source).is_dir():
                shutil.copytree(source, folder / "artifacts", dirs_exist_ok=True)
            else:
                shutil.copy2(source, folder / "artifacts")
        if self.model is not None and not (folder / "model").is_dir():
            shutil.copytree(self.model, folder / "model")
        write_json(folder / "run.json", self.info)
        return len(self.artifacts)

    @classmethod
    def load(cls, folder: Path) -> RunJournal:
        """Read a folder written by `save`; TrackingError if it is not one."""
        if not (folder / "run.json").is_file():
            reason = "it has no run.json" if folder.is_dir() else f"it {path_problem(folder, folder=True)}"
            raise TrackingError(f"{folder} is not an offline run folder: {reason} (give the "
                                f"{OFFLINE_FOLDER} folder of a run's output directory).")
        try:
            info = json.loads((folder / "run.json").read_text())
            parts = {name: json.loads((folder / f"{name}.json").read_text()) for name in ("params", "tags", "datasets")}
            metrics_file = folder / "metrics.jsonl"
            metrics = [json.loads(line) for line in metrics_file.read_text().splitlines() if line.strip()]
        except (OSError, ValueError) as error:
            raise TrackingError(f"the offline run folder {folder} is unreadable: {error}.") from error
        if info.get("format") != OFFLINE_FORMAT:
            raise TrackingError(f"{folder / 'run.json'} has format {info.get('format')!r}; this version of facebias "
                                f"reads {OFFLINE_FORMAT!r}.")
        model = folder / "model"
        return cls(info, metrics=metrics, model=str(model) if (model / "MLmodel").is_file() else None, **parts)


def dataset_inputs(entries: list[dict[str, Any]]) -> list:
    """MLflow DatasetInputs of journaled dataset entries (name, digest, source, profile, context)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    return [
        DatasetInput(
            Dataset(name=entry["name"], digest=entry["digest"], source_type="local", source=entry["source"],
                    profile=entry["profile"]),
            tags=[InputTag("mlflow.data.context", entry["context"])],
        )
        for entry in entries
    ]
