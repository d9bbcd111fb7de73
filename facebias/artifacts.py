"""Write a run's artifacts to a folder: resolved config, curves, per-group tables, predictions, plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from facebias.evaluation import SplitEvaluation
from facebias.plots import plot_group_mae, plot_learning_curves
from facebias.redaction import redacted_config
from facebias.training.history import CurveHistory


def write_run_artifacts(
    folder: Path,
    resolved: dict[str, Any],
    history: CurveHistory,
    stage_epochs: list[int],
    evaluations: list[SplitEvaluation],
) -> Path:
    """Write config.yaml (without credentials), history.csv, learning_curves.png, group_mae.csv,
    predictions_<split>.csv and group_mae_<split>.png into `folder`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(redacted_config(resolved), sort_keys=False))
    curves = history.frame()
    curves.to_csv(folder / "history.csv", index=False)
    plot_learning_curves(curves, stage_epochs, folder / "learning_curves.png")
    tables = [evaluation.groups.assign(split=evaluation.split) for evaluation in evaluations]
    pd.concat(tables)[["split", "attribute", "group", "count", "mae"]].to_csv(folder / "group_mae.csv", index=False)
    for evaluation in evaluations:
        evaluation.predictions.to_csv(folder / f"predictions_{evaluation.split}.csv", index=False)
        plot_group_mae(evaluation.groups, evaluation.split, folder / f"group_mae_{evaluation.split}.png")
    return folder
