"""The Pareto front of a two-objective search: which trials no other trial beats on both objectives, as a table
(pareto.md, pareto.csv) and a picture (pareto.png), logged to the search's parent run under `pareto/`.

Trial a dominates trial b when a is no worse on both objectives (both minimised) and better on at least one. The
non-dominated trials form the front. The table lists every FINISHED trial with the parameters that vary between
trials, its two objectives and whether it is on the front (front first, by the first objective).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facebias.errors import ReportError
from facebias.report.build import load_sweep
from facebias.run.identity import JOB_NUM_TAG
from facebias.tracking.runs import log_folder

PARETO_FILES: tuple[str, ...] = ("pareto.md", "pareto.csv", "pareto.png")
FRONT = "pareto_front"
"""The table's column saying whether a trial is non-dominated."""


def non_dominated(values: np.ndarray) -> np.ndarray:
    """For an (n, k) array of objectives to minimise, whether each row is dominated by no other row."""
    values = np.asarray(values, dtype=float)
    no_worse = (values[:, None, :] <= values[None, :, :]).all(axis=2)
    better = (values[:, None, :] < values[None, :, :]).any(axis=2)
    dominates = no_worse & better
    return ~dominates.any(axis=0)


def pareto_table(children: pd.DataFrame, objectives: Sequence[str]) -> pd.DataFrame:
    """The FINISHED trials: job number, run id, the parameters that vary, the objectives and `pareto_front`."""
    columns = [f"metrics.{name}" for name in objectives]
    finished = children[children["status"] == "FINISHED"].dropna(subset=[c for c in columns if c in children])
    if finished.empty or not set(columns) <= set(finished.columns):
        raise ReportError(f"no FINISHED trial of this search has both {' and '.join(objectives)}: nothing to plot.")
    params = [c for c in finished.columns if c.startswith("params.") and finished[c].nunique(dropna=False) > 1]
    table = pd.DataFrame(
        {"job": pd.to_numeric(finished.get(f"tags.{JOB_NUM_TAG}"), errors="coerce"), "run_id": finished["run_id"]}
    )
    for column in params:
        table[column.removeprefix("params.")] = finished[column].to_numpy()
    for name, column in zip(objectives, columns, strict=True):
        table[name] = finished[column].astype(float).to_numpy()
    table[FRONT] = non_dominated(table[list(objectives)].to_numpy())
    return table.sort_values([FRONT, objectives[0]], ascending=[False, True]).reset_index(drop=True)


def plot_pareto(table: pd.DataFrame, objectives: Sequence[str], path: Path, title: str) -> Path:
    """Every trial as a point, the front as a step line, each point labelled with its job number."""
    x, y = objectives
    front = table[table[FRONT]].sort_values(x)
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    others = table[~table[FRONT]]
    axes.scatter(others[x], others[y], color="0.6", label="dominated trial")
    axes.step(front[x], front[y], where="post", color="tab:red", alpha=0.6)
    axes.scatter(front[x], front[y], color="tab:red", label="Pareto front")
    for job, x_value, y_value in zip(table["job"], table[x], table[y], strict=True):
        if not pd.isna(job):
            axes.annotate(str(int(job)), (x_value, y_value), textcoords="offset points", xytext=(4, 3), fontsize=8)
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


def write_pareto(table: pd.DataFrame, objectives: Sequence[str], folder: Path, title: str) -> list[Path]:
    """pareto.md (the non-dominated trials, then the count of the others), pareto.csv (every trial), pareto.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, csv, png = (folder / name for name in PARETO_FILES)
    front = table[table[FRONT]].drop(columns=[FRONT])
    markdown.write_text(
        f"# {title}\n\nNon-dominated trials ({len(front)} of {len(table)} finished):\n\n{_markdown(front)}\n",
        encoding="utf-8",
    )
    table.to_csv(csv, index=False)
    plot_pareto(table, objectives, png, title)
    return [markdown, csv, png]


def pareto_for_parent(
    tracking_uri: str, experiment: str, parent_run_id: str, folder: Path, objectives: Sequence[str], *, log: bool = True
) -> pd.DataFrame:
    """Load a search's trials, write its Pareto files into `folder`, log them to the parent under `pareto/`."""
    parent, children = load_sweep(tracking_uri, experiment, parent_run_id)
    if children is None or children.empty:
        raise ReportError(f"the search {parent_run_id} has no trial runs: nothing to plot.")
    table = pareto_table(children, objectives)
    name = getattr(parent.info, "run_name", None) or parent_run_id
    write_pareto(table, objectives, folder, f"Pareto front of search {name}: {objectives[0]} vs {objectives[1]}")
    if log:
        log_folder(tracking_uri, parent.info.run_id, folder, "pareto")
    return table
