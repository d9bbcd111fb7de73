"""The study's results table from a sweep: one row per experiment, mean ± std over its seeds.

`python -m facebias.report` reads the child runs of a sweep (the most recent one, or `--parent RUN_ID`) through
`facebias.tracking`, prints the table as Markdown and writes, into one folder, `results.md`, `results.csv`
(numeric, unrounded), `results.html` (best cell of each metric column green, worst red, as in the study) and
`results.png`; the folder is then logged to the sweep's parent run under the artifact path `report`.

The table itself is pure pandas: `results_table(children)` takes `mlflow.search_runs`-shaped rows (columns
`run_id`, `status`, `tags.*`, `params.*`, `metrics.*`) and only FINISHED runs count.
"""

from __future__ import annotations

import argparse
import html
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facebias.errors import FacebiasError, ReportError
from facebias.options import BACKBONES, HEADS, Registry
from facebias.run.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
from facebias.tracking.queries import load_sweep_runs
from facebias.tracking.runs import log_folder
from facebias.tracking.store import store_uri

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
DIGITS = 4
"""Decimals shown in the Markdown and HTML tables (the study reported 4)."""

DATA_TAGS: tuple[str, ...] = ("facebias.dataset_digest", "facebias.data")
MISSING_TAG_VALUES = {"", "none", "null", "nan"}
BEST_COLOUR = "#c6efce"
WORST_COLOUR = "#ffc7ce"
MAX_LISTED = 10
"""Runs named at most in an error message."""
REPORT_FILES: tuple[str, ...] = ("results.md", "results.csv", "results.html", "results.png")


# --------------------------------------------------------------------------------------------------------- the table


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
    """The experiment of each run: tag `facebias.experiment`, else the run name, else the run id."""
    names = []
    for tag, run_name, run_id in zip(
        _column(children, "tags.facebias.experiment"),
        _column(children, "tags.mlflow.runName"),
        _column(children, "run_id"),
        strict=True,
    ):
        names.append(next((str(v) for v in (tag, run_name, run_id) if _present(v)), "?"))
    return pd.Series(names, index=children.index, dtype=object)


def format_lr(value: float) -> str:
    """A learning rate the way the study writes it: 0.0001 → '1e-4', 0.00025 → '2.5e-4'."""
    mantissa, exponent = f"{value:.6e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def learning_rates(run: pd.Series) -> list[float]:
    """The learning rate of each stage, from params `schedule.stage1.lr`, `schedule.stage2.lr`, … in order."""
    rates = []
    stage = 1
    while _present(run.get(f"params.schedule.stage{stage}.lr")):
        rates.append(float(run[f"params.schedule.stage{stage}.lr"]))
        stage += 1
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


def _experiment_row(name: str, runs: pd.DataFrame, split: str) -> dict[str, object]:
    """One row of the table: the description of the experiment, mean and std of each metric, and n."""
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
    row["n"] = len(runs)
    return row


def results_table(children: pd.DataFrame, split: str = "test", parent_run_id: str | None = None) -> pd.DataFrame:
    """The study's table: one row per experiment (natural order), mean and sample std (ddof=1) over FINISHED runs.

    Columns: Experiment, Backbone, Head, Stages, Learning rates, then for each metric `<Metric>` (mean) and
    `<Metric> std` (NaN when n == 1), then n. `parent_run_id` only makes the error messages name the sweep.
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
    columns = [*TEXT_COLUMNS, *(c for metric in METRIC_COLUMNS for c in (metric, f"{metric} std")), "n"]
    table = pd.DataFrame(rows, columns=columns)
    table.attrs["split"] = split
    return table


# ------------------------------------------------------------------------------------------------------ formatting


def format_value(mean: float, std: float, n: int, digits: int = DIGITS) -> str:
    """`mean ± std` when the experiment has several runs, the plain mean for a single run."""
    if n > 1 and not math.isnan(std):
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def display_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, in the order of `display_columns()`."""
    rows = []
    for _, row in table.iterrows():
        cells = [str(row[column]) for column in TEXT_COLUMNS]
        cells += [format_value(row[c], row[f"{c} std"], int(row["n"])) for c in METRIC_COLUMNS]
        rows.append([*cells, str(int(row["n"]))])
    return rows


def display_columns() -> list[str]:
    return [*TEXT_COLUMNS, *METRIC_COLUMNS, "n"]


def format_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown (numbers right-aligned, `mean ± std` when n > 1)."""
    header = display_columns()
    numeric = {"Stages", *METRIC_COLUMNS, "n"}

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    rule = "|" + "|".join("---:" if column in numeric else "---" for column in header) + "|"
    return "\n".join([line(header), rule, *(line(cells) for cells in display_rows(table))])


def extreme_rows(table: pd.DataFrame, column: str) -> tuple[set[int], set[int]]:
    """Positions of the best (lowest) and worst (highest) mean of a column; none when all rows are equal."""
    values = table[column].to_numpy(dtype=float)
    if len(values) < 2 or np.nanmin(values) == np.nanmax(values):
        return set(), set()
    best = set(np.flatnonzero(values == np.nanmin(values)).tolist())
    worst = set(np.flatnonzero(values == np.nanmax(values)).tolist())
    return best, worst


def _notes(table: pd.DataFrame) -> list[str]:
    """What the reader must know to read the numbers."""
    split = table.attrs.get("split", "test")
    counts = table["n"].astype(int)
    notes = [f"Metrics on the {split} split, in years; n is the number of FINISHED runs (seeds) per experiment."]
    if (counts > 1).any():
        notes.append("With n > 1 a cell is the mean ± sample standard deviation over the runs.")
    if (counts == 1).any():
        notes.append("A single run per experiment (n = 1) has no error bars: differences of a few tenths may be "
                     "noise — rerun with seed=0,1,2.")
    return notes


HTML_STYLE = f"""
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #bbb; padding: 4px 10px; }}
th {{ background: #eee; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.best, span.best {{ background: {BEST_COLOUR}; }}
td.worst, span.worst {{ background: {WORST_COLOUR}; }}
p.note {{ color: #555; font-size: 0.9em; }}
"""


def _html_cell(text: str, css: str, colour: str | None) -> str:
    style = f' style="background:{colour}"' if colour else ""
    return f'<td class="{css}"{style}>{html.escape(text)}</td>'


def format_html(table: pd.DataFrame, title: str) -> str:
    """A self-contained HTML page: title, legend, the table with best/worst metric cells shaded, notes."""
    extremes = {column: extreme_rows(table, column) for column in METRIC_COLUMNS}
    body_rows = []
    for position, cells in enumerate(display_rows(table)):
        parts = [_html_cell(text, "text", None) for text in cells[: len(TEXT_COLUMNS)]]
        for column, text in zip(METRIC_COLUMNS, cells[len(TEXT_COLUMNS) : -1], strict=True):
            best, worst = extremes[column]
            if position in best:
                parts.append(_html_cell(text, "num best", BEST_COLOUR))
            elif position in worst:
                parts.append(_html_cell(text, "num worst", WORST_COLOUR))
            else:
                parts.append(_html_cell(text, "num", None))
        parts.append(_html_cell(cells[-1], "num", None))
        body_rows.append("<tr>" + "".join(parts) + "</tr>")
    header = "".join(f"<th>{html.escape(column)}</th>" for column in display_columns())
    notes = "\n".join(f'<p class="note">{html.escape(note)}</p>' for note in _notes(table))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{HTML_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="legend">Legend: <span class="best">green</span> = best (lowest) value of the column,
<span class="worst">red</span> = worst (highest); lower is better for MAE and every bias score.</p>
<table>
<thead><tr>{header}</tr></thead>
<tbody>
{chr(10).join(body_rows)}
</tbody>
</table>
{notes}
</body>
</html>
"""


# ---------------------------------------------------------------------------------------------------------- the plot


def _tick_label(row: pd.Series) -> str:
    """Short x-axis label: `expN` (or the name) over backbone, head and number of stages."""
    name = str(row["Experiment"])
    match = re.match(r"(exp\d+)(_|$)", name)
    short = match.group(1) if match else name
    stages = int(row["Stages"])
    return f"{short}\n{row['Backbone']}\n{row['Head']}, {stages} stage{'s' if stages != 1 else ''}"


def _error_bars(table: pd.DataFrame, column: str) -> np.ndarray | None:
    """Std as error bars where n > 1 (0 elsewhere); None when no experiment has several runs."""
    if not (table["n"] > 1).any():
        return None
    return table[f"{column} std"].fillna(0.0).to_numpy(dtype=float)


def plot_results(table: pd.DataFrame, path: Path, title: str) -> Path:
    """Grouped bars of the four bias scores per experiment above bars of its MAE, ± std when n > 1."""
    positions = np.arange(len(table))
    labels = [_tick_label(row) for _, row in table.iterrows()]
    figure, (bias_axis, mae_axis) = plt.subplots(
        2, 1, figsize=(max(8.0, 1.3 * len(table) + 2), 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    bar_width = 0.8 / len(BIAS_COLUMNS)
    for offset, column in enumerate(BIAS_COLUMNS):
        shift = (offset - (len(BIAS_COLUMNS) - 1) / 2) * bar_width
        bias_axis.bar(positions + shift, table[column], bar_width, yerr=_error_bars(table, column), capsize=2,
                      label=column.removesuffix(" Bias").replace("Face ", ""), color=f"C{offset}")
    bias_axis.set_ylabel("bias (years)")
    bias_axis.set_title("Bias scores (lower is better)", fontsize=10)
    bias_axis.legend(title="bias of", fontsize=8, title_fontsize=8, ncols=len(BIAS_COLUMNS))
    bias_axis.set_ylim(top=bias_axis.get_ylim()[1] * 1.12)
    errors = _error_bars(table, "MAE")
    mae_axis.bar(positions, table["MAE"], 0.5, yerr=errors, capsize=3, color="0.5")
    tops = table["MAE"].to_numpy(dtype=float) + (errors if errors is not None else 0.0)
    for position, top, value in zip(positions, tops, table["MAE"], strict=True):
        mae_axis.text(position, top, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    mae_axis.set_ylim(top=max(tops) * 1.15)
    mae_axis.set_ylabel("MAE (years)")
    mae_axis.set_title("MAE (lower is better)", fontsize=10)
    mae_axis.set_xticks(positions, labels, fontsize=8)
    padding = max(0.0, (4 - len(table)) / 2)
    mae_axis.set_xlim(-0.6 - padding, len(table) - 0.4 + padding)
    for axis in (bias_axis, mae_axis):
        axis.grid(axis="y", alpha=0.3)
        axis.set_axisbelow(True)
    caption = "error bars: ± std over seeds" if (table["n"] > 1).any() else "one run per experiment: no error bars"
    figure.suptitle(f"{title}\n({caption})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# -------------------------------------------------------------------------------------------------------- the files


def write_report(table: pd.DataFrame, folder: Path, title: str) -> list[Path]:
    """Write results.md, results.csv (numeric, unrounded), results.html and results.png into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    markdown, csv, page, png = (folder / name for name in REPORT_FILES)
    notes = "\n".join(f"- {note}" for note in _notes(table))
    markdown.write_text(f"# {title}\n\n{format_markdown(table)}\n\n{notes}\n", encoding="utf-8")
    table.to_csv(csv, index=False)
    page.write_text(format_html(table, title), encoding="utf-8")
    plot_results(table, png, title)
    return [markdown, csv, page, png]


def report_title(parent_run_id: str, parent_run_name: str | None, split: str) -> str:
    name = f"{parent_run_name} ({parent_run_id})" if parent_run_name else parent_run_id
    return f"facebias results, {split} split — sweep {name}"


def _build(tracking_uri: str, parent, children: pd.DataFrame, folder: Path, split: str,
           log: bool) -> tuple[pd.DataFrame, list[Path]]:
    """Table, files and (if `log`) the `report` artifacts of a loaded sweep."""
    run_id = parent.info.run_id
    table = results_table(children, split, parent_run_id=run_id)
    paths = write_report(table, folder, report_title(run_id, getattr(parent.info, "run_name", None), split))
    if log:
        log_folder(tracking_uri, run_id, folder, "report")
    return table, paths


def report_for_parent(tracking_uri: str, experiment: str, parent_run_id: str, folder: Path, split: str = "test",
                      *, log: bool = True) -> pd.DataFrame:
    """Load a sweep's runs, build the table, write the files into `folder` and log them to the parent run."""
    parent, children = load_sweep_runs(tracking_uri, experiment, parent_run_id,
                                       parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    table, _ = _build(tracking_uri, parent, children, Path(folder), split, log)
    return table


# ------------------------------------------------------------------------------------------------------------ the CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m facebias.report",
        description="The study's results table (mean ± std over seeds) of a sweep's runs, as Markdown, CSV, "
                    "HTML and a plot; logged to the sweep's parent run under `report/`.",
    )
    parser.add_argument("--parent", metavar="RUN_ID", help="parent run of the sweep (default: the most recent sweep)")
    parser.add_argument("--experiment", default="facebias", help="MLflow experiment (default: %(default)s)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="MLflow store (default: MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    parser.add_argument("--split", choices=SPLITS, default="test", help="metrics of this split (default: test)")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="output folder (default: multirun/reports/<parent run id>)")
    parser.add_argument("--no-log", action="store_true", help="do not log the files to the parent run")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; user errors print `error: <sentence>` on stderr and return 1."""
    args = parse_args(argv)
    try:
        tracking_uri = store_uri(args.tracking_uri, Path.cwd())
        parent, children = load_sweep_runs(tracking_uri, args.experiment, args.parent,
                                           parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
        folder = args.out or Path("multirun") / "reports" / parent.info.run_id
        table, paths = _build(tracking_uri, parent, children, folder, args.split, not args.no_log)
    except (FacebiasError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_markdown(table))
    print()
    print(f"wrote {', '.join(path.name for path in paths)} to {folder}")
    if not args.no_log:
        print(f"logged them to run {parent.info.run_id} under artifact path report/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
