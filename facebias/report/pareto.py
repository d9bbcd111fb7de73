"""The Pareto front of a two-objective search: which trials no other trial beats on both objectives, how much of
the objective plane they dominate (the hypervolume), as a table (pareto.md, pareto.csv) and a picture (pareto.png).

Trial a dominates trial b when a is no worse on both objectives (both minimised) and better on at least one. The
non-dominated trials form the front. Its hypervolume is the area dominated by the front and bounded by a reference
point (worse than every trial on both objectives): larger is better, and comparable only at the same point.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

PARETO_FILES: tuple[str, ...] = ("pareto.md", "pareto.csv", "pareto.png")
FRONT = "pareto_front"
"""The table's column saying whether a trial is non-dominated."""
TRIAL = "trial"
"""The table's column of trial numbers (the labels of the picture)."""
RUN_IDS = "run_ids"
"""The table's column of each trial's runs (`;`-separated): in pareto.csv, left out of pareto.md."""
REFERENCE_MARGIN = 1.1
"""The default reference point: the worst observed value of each objective times this."""


def non_dominated(values: np.ndarray) -> np.ndarray:
    """For an (n, k) array of objectives to minimise, whether each row is dominated by no other row."""
    values = np.asarray(values, dtype=float)
    no_worse = (values[:, None, :] <= values[None, :, :]).all(axis=2)
    better = (values[:, None, :] < values[None, :, :]).any(axis=2)
    dominates = no_worse & better
    return np.asarray(~dominates.any(axis=0), dtype=bool)


def reference_point(values: np.ndarray, configured: Sequence[float] | None = None) -> np.ndarray:
    """`configured`, else the worst (largest) observed value of each objective × REFERENCE_MARGIN."""
    if configured is not None:
        return np.asarray(configured, dtype=float)
    return np.asarray(values, dtype=float).max(axis=0) * REFERENCE_MARGIN


def hypervolume_2d(values: np.ndarray, reference: np.ndarray | Sequence[float]) -> float:
    """The area that the (n, 2) points dominate within the box below `reference` (both objectives minimised).

    The front's points strictly better than the reference on both objectives, by the first objective, each add the
    strip between its second objective and the previous point's, as wide as it is from the reference."""
    points = np.asarray(values, dtype=float).reshape(-1, 2)
    ref_x, ref_y = (float(v) for v in reference)
    inside = points[(points[:, 0] < ref_x) & (points[:, 1] < ref_y)]
    front = inside[non_dominated(inside)] if len(inside) else inside
    area, ceiling = 0.0, ref_y
    for x, y in sorted(map(tuple, front)):
        area += (ref_x - x) * max(ceiling - y, 0.0)
        ceiling = min(ceiling, y)
    return area


def plot_pareto(table: pd.DataFrame, objectives: Sequence[str], path: Path, title: str) -> Path:
    """Every trial as a point, the front as a step line, each point labelled with its trial number."""
    x, y = objectives
    front = table[table[FRONT]].sort_values(x)
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    others = table[~table[FRONT]]
    axes.scatter(others[x], others[y], color="0.6", label="dominated trial")
    axes.step(front[x], front[y], where="post", color="tab:red", alpha=0.6)
    axes.scatter(front[x], front[y], color="tab:red", label="Pareto front")
    for trial, x_value, y_value in zip(table[TRIAL], table[x], table[y], strict=True):
        axes.annotate(str(int(trial)), (x_value, y_value), textcoords="offset points", xytext=(4, 3), fontsize=8)
    axes.set_xlabel(f"{x} (years, lower is better)")
    axes.set_ylabel(f"{y} (years, lower is better)")
    axes.set_title(title, fontsize=10)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def _markdown(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    rows = [[cell(value) for value in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def write_pareto(table: pd.DataFrame, objectives: Sequence[str], folder: Path, title: str, summary: str
                 ) -> list[Path]:
    """pareto.md (`summary`, then the non-dominated trials, without run ids), pareto.csv (every trial), pareto.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, csv, png = (folder / name for name in PARETO_FILES)
    front = table[table[FRONT]].drop(columns=[FRONT, RUN_IDS], errors="ignore")
    markdown.write_text(
        f"# {title}\n\n{summary}\n\nNon-dominated trials ({len(front)} of {len(table)} finished):\n\n"
        f"{_markdown(front)}\n",
        encoding="utf-8",
    )
    table.to_csv(csv, index=False)
    plot_pareto(table, objectives, png, title)
    return [markdown, csv, png]
