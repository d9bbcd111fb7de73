"""A sweep's report from its MLflow runs: load the children (marking those whose process died KILLED; for
experiments of ≥ 3 seeds, their predictions too), build the table, write results.md/.csv/.html/.png and log them
to the sweep's parent run under `report/`."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.liveness import mark_dead_children
from facebias.report.plot import plot_results
from facebias.report.render import format_html, format_markdown, notes
from facebias.report.significance import MIN_SEEDS
from facebias.report.table import experiment_names, results_table
from facebias.tracking.queries import download_artifact, load_sweep_runs
from facebias.tracking.runs import log_folder
from facebias.tracking.store import TrackingStore

REPORT_FILES: tuple[str, ...] = ("results.md", "results.csv", "results.html", "results.png")


def write_report(table: pd.DataFrame, folder: Path, title: str) -> list[Path]:
    """Write results.md, results.csv (numeric, unrounded), results.html and results.png into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, csv, page, png = (folder / name for name in REPORT_FILES)
    listed = "\n".join(f"- {note}" for note in notes(table))
    markdown.write_text(f"# {title}\n\n{format_markdown(table)}\n\n{listed}\n", encoding="utf-8")
    table.to_csv(csv, index=False)
    page.write_text(format_html(table, title), encoding="utf-8")
    plot_results(table, png, title)
    return [markdown, csv, page, png]


def report_title(parent_run_id: str, parent_run_name: str | None, split: str) -> str:
    name = f"{parent_run_name} ({parent_run_id})" if parent_run_name else parent_run_id
    return f"facebias results, {split} split — sweep {name}"


def run_predictions(store: TrackingStore, children: pd.DataFrame, split: str) -> dict[str, pd.DataFrame]:
    """run id → predictions_<split>.csv of each FINISHED child, when every experiment has at least MIN_SEEDS runs
    (the two-level bootstrap resamples their test images); empty otherwise; runs without the artifact are left
    out (the table then says why it marks no best set)."""
    if children is None or children.empty or "status" not in children:
        return {}
    finished = children[children["status"] == "FINISHED"]
    if finished.empty or experiment_names(finished).value_counts().min() < MIN_SEEDS:
        return {}
    frames = {}
    with tempfile.TemporaryDirectory(prefix="facebias-report-") as scratch:
        for run_id in finished["run_id"]:
            path = download_artifact(store, str(run_id), f"predictions_{split}.csv", Path(scratch) / run_id)
            if path is not None:
                frames[str(run_id)] = pd.read_csv(path)
    return frames


def build_report(store: TrackingStore, parent, children: pd.DataFrame, folder: Path, split: str,
                 log: bool) -> tuple[pd.DataFrame, list[Path]]:
    """Table, files and (if `log`) the `report` artifacts of a loaded sweep."""
    run_id = parent.info.run_id
    predictions = run_predictions(store, children, split)
    table = results_table(children, split, parent_run_id=run_id, predictions=predictions)
    paths = write_report(table, folder, report_title(run_id, getattr(parent.info, "run_name", None), split))
    if log:
        log_folder(store, run_id, folder, "report")
    return table, paths


def load_sweep(store: TrackingStore, parent_run_id: str | None = None):
    """The sweep's parent run and its children (the given sweep, else the most recent); children left RUNNING by a
    process that died (their folder is on this machine, its lock free) are marked KILLED first, in the same store,
    and said so."""
    parent, children = load_sweep_runs(store, parent_run_id, parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    if children is None or children.empty or not (children["status"] == "RUNNING").any():
        return parent, children
    marked = mark_dead_children(store, parent.info.run_id, "the report of its sweep")
    if not marked:
        return parent, children
    print(f"run(s) {', '.join(marked)} of the sweep died without ending and are marked KILLED.", file=sys.stderr)
    return load_sweep_runs(store, parent.info.run_id, parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})


def report_for_parent(store: TrackingStore, parent_run_id: str, folder: Path, split: str = "test", *,
                      log: bool = True) -> pd.DataFrame:
    """Load a sweep's runs, build the table, write the files into `folder` and log them to the parent run."""
    parent, children = load_sweep(store, parent_run_id)
    table, _ = build_report(store, parent, children, Path(folder), split, log)
    return table
