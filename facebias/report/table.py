"""The study's results table of a sweep: one row per experiment, its scores with their uncertainty (pure pandas).

`results_table(children)` takes `mlflow.search_runs`-shaped rows (columns `run_id`, `status`, `tags.*`, `params.*`,
`metrics.*`); only FINISHED runs count. A cell is the mean over an experiment's runs (seeds) with a 95 % interval.
When every experiment has ≥ 3 runs and their predictions are given, the interval is the two-level bootstrap's
(seeds and test images) and each column marks its best set, the Model Confidence Set at the column's share of the
table's 5 % error rate (facebias.report.significance). Otherwise no best set is marked, the table says why, and
the interval is over seeds only (n ≥ 2) or the run's own interval over the test images (n = 1).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import pandas as pd

from facebias.config import stage_key
from facebias.errors import ReportError
from facebias.identity import ENVIRONMENT_TAGS, TRIAL_TAG
from facebias.metrics.uncertainty import percentile_interval
from facebias.options import BACKBONES, HEADS, Registry
from facebias.report.replicates import experiment_replicates, same_images
from facebias.report.significance import (
    LEVEL,
    MIN_SEEDS,
    RESAMPLES,
    column_alpha,
    model_confidence_set,
    seed_interval,
)

METRICS: tuple[tuple[str, str], ...] = (
    ("mae", "MAE"),
    ("age_bias", "Age Bias"),
    ("gender_bias", "Gender Bias"),
    ("ethnicity_bias", "Ethnicity Bias"),
    ("expression_bias", "Face Expression Bias"),
)
"""(metric name under `<split>/`, column of the table), in the study's order."""

METRIC_COLUMNS: tuple[str, ...] = tuple(column for _, column in METRICS)
BIAS_COLUMNS: tuple[str, ...] = METRIC_COLUMNS[1:]
TEXT_COLUMNS: tuple[str, ...] = ("Experiment", "Backbone", "Head", "Stages", "Learning rates")
SPLITS: tuple[str, ...] = ("test", "val")
DATA_TAGS: tuple[str, ...] = ("facebias.dataset_digest", "facebias.data")
MISSING_TAG_VALUES = {"", "none", "null", "nan"}
NOT_RECORDED = "not recorded"
"""An environment tag's value on a run that has none (made by an older facebias) while other runs have one."""
MAX_LISTED = 10
"""Runs named at most in an error message."""


def natural_key(name: str) -> tuple:
    """Sort key that orders embedded numbers by value: exp2 < exp10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name))


def _column(children: pd.DataFrame, name: str) -> pd.Series:
    """A column of the runs, or all-missing when no run has it."""
    if name in children.columns:
        return children[name]
    return pd.Series([None] * len(children), index=children.index, dtype=object)


def _present(value: object) -> bool:
    """Whether a tag/param value is really set (search_runs spells a missing one NaN/None, the trainer 'None')."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return str(value).strip().lower() not in MISSING_TAG_VALUES


def experiment_names(children: pd.DataFrame) -> pd.Series:
    """The experiment of each run: tag `facebias.experiment`, else `trial <n>` (a search's trial, whose runs are its
    seeds: trials that differ only in a learning rate or a dropout share their run names), else the run name, else
    the run id."""
    names = []
    for tag, trial, run_name, run_id in zip(
        _column(children, "tags.facebias.experiment"),
        _column(children, f"tags.{TRIAL_TAG}"),
        _column(children, "tags.mlflow.runName"),
        _column(children, "run_id"),
        strict=True,
    ):
        trial = f"trial {trial}" if _present(trial) else None
        names.append(next((str(v) for v in (tag, trial, run_name, run_id) if _present(v)), "?"))
    return pd.Series(names, index=children.index, dtype=object)


def format_lr(value: float) -> str:
    """A learning rate the way the study writes it: 0.0001 → '1e-4', 0.00025 → '2.5e-4'."""
    mantissa, exponent = f"{value:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def learning_rates(run: pd.Series) -> list[float]:
    """The learning rate of each stage, from params `schedule.stages.0.lr`, `schedule.stages.1.lr`, … in order."""
    rates = []
    position = 0
    while _present(run.get(f"params.{stage_key(position)}.lr")):
        rates.append(float(run[f"params.{stage_key(position)}.lr"]))
        position += 1
    return rates


def _label(run: pd.Series, tag: str, param: str, names: Registry) -> str:
    """A run's backbone/head: the `facebias.<group>` tag, else the `<group>.name` param, as its registry displays it."""
    value = next((str(v) for v in (run.get(tag), run.get(param)) if _present(v)), "?")
    return names.display(value)


def _joined(values: Sequence[str]) -> str:
    """The distinct values of an experiment's runs, normally exactly one."""
    return " / ".join(dict.fromkeys(values))


def _status_counts(children: pd.DataFrame) -> str:
    counts = _column(children, "status").value_counts()
    parts = [f"{counts.get(status, 0)} {status}" for status in ("FAILED", "KILLED", "RUNNING")]
    others = [f"{count} {status}" for status, count in counts.items() if status not in ("FINISHED", "FAILED",
                                                                                         "KILLED", "RUNNING")]
    return ", ".join(parts + others)


def _sweep(parent_run_id: str | None) -> str:
    return f"sweep {parent_run_id}" if parent_run_id else "the sweep"


def finished_runs(children: pd.DataFrame, parent_run_id: str | None = None) -> pd.DataFrame:
    """The FINISHED children; ReportError when there are none."""
    if children is None or len(children) == 0:
        raise ReportError(
            f"no runs found for {_sweep(parent_run_id)}: it has no child runs yet (is it still starting, or was it "
            "made by `python -m facebias.train` without -m?), so there is nothing to report."
        )
    finished = children[_column(children, "status") == "FINISHED"]
    if finished.empty:
        raise ReportError(
            f"no runs found for {_sweep(parent_run_id)}: none of its {len(children)} child runs is FINISHED "
            f"({_status_counts(children)}); look at their `error` tag in the MLflow UI, or wait for them to finish."
        )
    return finished


def check_metrics(finished: pd.DataFrame, split: str, parent_run_id: str | None = None) -> None:
    """ReportError naming the runs that lack one of the `<split>/…` metrics the table needs."""
    experiments = experiment_names(finished)
    missing_by_run = []
    missing_metrics: dict[str, None] = {}
    for index, run in finished.iterrows():
        missing = [f"{split}/{metric}" for metric, _ in METRICS if not _present(run.get(f"metrics.{split}/{metric}"))]
        if missing:
            missing_by_run.append(f"{experiments[index]} (run {run['run_id']})")
            missing_metrics.update(dict.fromkeys(missing))
    if missing_by_run:
        shown = ", ".join(missing_by_run[:MAX_LISTED])
        if len(missing_by_run) > MAX_LISTED:
            shown += f" and {len(missing_by_run) - MAX_LISTED} more"
        raise ReportError(
            f"{len(missing_by_run)} finished run(s) of {_sweep(parent_run_id)} have no "
            f"{', '.join(missing_metrics)} metric: {shown} — probably runs that crashed before "
            "evaluating or were made by an older facebias version; rerun them or pick another sweep with --parent."
        )


def check_same_data(finished: pd.DataFrame, parent_run_id: str | None = None) -> None:
    """ReportError when the runs were trained/evaluated on different data (dataset digest or data option)."""
    differing = []
    for tag in DATA_TAGS:
        values = [str(v) for v in dict.fromkeys(_column(finished, f"tags.{tag}")) if _present(v)]
        if len(values) > 1:
            differing.append(f"{tag} is {', '.join(sorted(values))}")
    if differing:
        raise ReportError(
            f"the runs of {_sweep(parent_run_id)} do not share their data ({'; '.join(differing)}), so their "
            "metrics are not comparable in one table; pick one sweep with --parent RUN_ID."
        )


def environment_differences(finished: pd.DataFrame) -> list[str]:
    """One entry per environment tag (`facebias.identity.ENVIRONMENT_TAGS`: the versions of Python, TensorFlow,
    Keras, numpy and MLflow, the CPU threads) in which the runs differ, e.g. `facebias.version.tensorflow 2.20.0
    (1 run), 2.21.0 (5 runs)`; a run without the tag counts as `NOT_RECORDED` when another run has it."""
    differences = []
    for tag in ENVIRONMENT_TAGS:
        counts = Counter(str(value).strip() if _present(value) else NOT_RECORDED
                         for value in _column(finished, f"tags.{tag}"))
        if len(counts) > 1:
            listed = ", ".join(f"{value} ({count} run{'s' if count > 1 else ''})"
                               for value, count in sorted(counts.items(), key=lambda item: natural_key(item[0])))
            differences.append(f"{tag} {listed}")
    return differences


def _experiment_row(name: str, runs: pd.DataFrame, split: str) -> dict[str, object]:
    """One row: the description of the experiment, then per metric its mean, std, interval over seeds (n ≥ 2) or
    the run's own interval over images (n = 1), and n; the two-level interval replaces it when it applies."""
    schedules = [learning_rates(run) for _, run in runs.iterrows()]
    row: dict[str, object] = {
        "Experiment": name,
        "Backbone": _joined([_label(r, "tags.facebias.backbone", "params.backbone.name", BACKBONES)
                             for _, r in runs.iterrows()]),
        "Head": _joined([_label(r, "tags.facebias.head", "params.head.name", HEADS) for _, r in runs.iterrows()]),
        "Stages": max(len(rates) for rates in schedules),
        "Learning rates": _joined([", ".join(format_lr(rate) for rate in rates) or "?" for rates in schedules]),
    }
    for metric, column in METRICS:
        values = runs[f"metrics.{split}/{metric}"].astype(float)
        row[column] = float(values.mean())
        row[f"{column} std"] = float(values.std(ddof=1)) if len(values) > 1 else float("nan")
        if len(values) > 1:
            row[f"{column} low"], row[f"{column} high"] = seed_interval(values.to_numpy(), LEVEL)
        else:
            run = runs.iloc[0]
            low, high = run.get(f"metrics.{split}/{metric}_ci_low"), run.get(f"metrics.{split}/{metric}_ci_high")
            row[f"{column} low"] = float(low) if _present(low) else float("nan")
            row[f"{column} high"] = float(high) if _present(high) else float("nan")
    for metric, column in METRICS[1:]:
        nulls, p_values = (runs.get(f"metrics.{split}/{metric}_{kind}") for kind in ("null", "p"))
        present = nulls is not None and p_values is not None and nulls.notna().all() and p_values.notna().all()
        row[f"{column} null"] = float(nulls.astype(float).mean()) if present else float("nan")
        row[f"{column} p"] = float(p_values.astype(float).median()) if present else float("nan")
    row["n"] = len(runs)
    return row


def _no_best_set(runs: Mapping[str, pd.DataFrame], predictions: Mapping[str, pd.DataFrame] | None) -> str | None:
    """Why the table cannot mark a best set (None when it can)."""
    if len(runs) < 2:
        return "a single experiment: nothing to compare"
    fewest = min(len(frame) for frame in runs.values())
    if fewest < MIN_SEEDS:
        return (f"an experiment has {fewest} run(s): a verdict on configurations needs their seed-to-seed "
                f"variance, so every experiment needs at least {MIN_SEEDS} seeds (rerun with seed=0,1,2)")
    run_ids = [str(run_id) for frame in runs.values() for run_id in frame["run_id"]]
    frames = [(predictions or {}).get(run_id) for run_id in run_ids]
    if any(frame is None for frame in frames):
        return "some runs have no predictions artifact, so the test-image part of the noise cannot be resampled"
    if not same_images(frames):
        return "the runs were evaluated on different images"
    return None


def _mark_best(table: pd.DataFrame, finished: pd.DataFrame, experiments: pd.Series,
               predictions: Mapping[str, pd.DataFrame] | None) -> str | None:
    """Fill `<Metric> best` (the column's Model Confidence Set) and the two-level intervals; returns why no best
    set could be marked (None when it was)."""
    names = list(table["Experiment"])
    for column in METRIC_COLUMNS:
        table[f"{column} best"] = False
    runs = {name: finished[experiments == name] for name in names}
    reason = _no_best_set(runs, predictions)
    if reason is not None or predictions is None:  # without predictions there is a reason
        return reason
    by_score = experiment_replicates({name: [predictions[str(run_id)] for run_id in runs[name]["run_id"]]
                                      for name in names}, RESAMPLES)
    alpha = column_alpha(METRIC_COLUMNS)
    for metric, column in METRICS:
        replicates = by_score[metric][1]
        for position, name in enumerate(names):
            table.loc[position, [f"{column} low", f"{column} high"]] = percentile_interval(replicates[name], LEVEL)
        best = model_confidence_set(dict(zip(names, table[column], strict=True)), replicates, alpha)
        table[f"{column} best"] = table["Experiment"].isin(best)
    return None


def results_table(children: pd.DataFrame, split: str = "test", parent_run_id: str | None = None,
                  predictions: Mapping[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The study's table: one row per experiment (natural order) over its FINISHED runs.

    Columns: Experiment, Backbone, Head, Stages, Learning rates, then per metric `<Metric>` (mean), `<Metric> std`
    (sample std, NaN when n == 1), `<Metric> low` / `<Metric> high` (the 95 % interval, see the module) and
    `<Metric> best` (in the column's best set), per bias `<Bias> null` (mean of the runs' noise floors) and
    `<Bias> p` (median of their permutation p-values), then n. `predictions` (run id → its predictions_<split>.csv
    frame, for every run) enables the two-level bootstrap. `attrs`: the split, the interval shown ("two-level",
    "seeds", "images" or "mixed"), `no_best_set` (why no best set is marked; None when it is) and
    `environment_differences` (`environment_differences` of the FINISHED runs; empty when they agree).
    `parent_run_id` only makes the error messages name the sweep.
    """
    if split not in SPLITS:
        raise ReportError(f"unknown split {split!r}: choose one of {', '.join(SPLITS)}.")
    finished = finished_runs(children, parent_run_id)
    check_metrics(finished, split, parent_run_id)
    check_same_data(finished, parent_run_id)
    experiments = experiment_names(finished)
    rows = [
        _experiment_row(name, finished[experiments == name], split)
        for name in sorted(set(experiments), key=natural_key)
    ]
    columns = [*TEXT_COLUMNS,
               *(c for metric in METRIC_COLUMNS for c in (metric, f"{metric} std", f"{metric} low", f"{metric} high")),
               *(c for metric in BIAS_COLUMNS for c in (f"{metric} null", f"{metric} p")), "n"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["split"] = split
    table.attrs["environment_differences"] = environment_differences(finished)
    table.attrs["no_best_set"] = _mark_best(table, finished, experiments, predictions)
    counts = table["n"].astype(int)
    table.attrs["interval"] = ("two-level" if table.attrs["no_best_set"] is None else "seeds" if (counts > 1).all()
                               else "images" if (counts == 1).all() else "mixed")
    return table
