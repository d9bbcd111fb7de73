"""The results table as text: Markdown and a self-contained HTML page, with the notes a reader needs.

A metric cell is `mean [low, high]` (the 95 % interval the table's notes name). When the table has a best set,
each metric column's set is bold (Markdown) and green (HTML), and the worst experiment is red when it is out of
the set. Without a best set nothing is shaded, and the notes say why.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from facebias.metrics.permutation import NOISE_ALPHA
from facebias.report.significance import FAMILY_ALPHA, MIN_SEEDS, TWO_LEVEL, column_alpha
from facebias.report.table import METRIC_COLUMNS, TEXT_COLUMNS

DIGITS = 4
"""Decimals of a mean (the study reported 4)."""
INTERVAL_DIGITS = 2
"""Decimals of an interval's bounds."""
BEST_COLOUR = "#c6efce"
WORST_COLOUR = "#ffc7ce"


def format_value(mean: float, low: float, high: float) -> str:
    """`mean [low, high]`, or the plain mean when there is no interval."""
    if math.isnan(low) or math.isnan(high):
        return f"{mean:.{DIGITS}f}"
    return f"{mean:.{DIGITS}f} [{low:.{INTERVAL_DIGITS}f}, {high:.{INTERVAL_DIGITS}f}]"


def display_columns() -> list[str]:
    return [*TEXT_COLUMNS, *METRIC_COLUMNS, "n"]


NOISE_MARK = "†"
"""Follows a bias score whose permutation p-value (median over the runs) is ≥ NOISE_ALPHA."""


def has_best_set(table: pd.DataFrame) -> bool:
    """Whether the table marks a best set per column (two-level bootstrap, every experiment with enough seeds)."""
    return table.attrs.get("interval") == "two-level" and table.attrs.get("no_best_set") is None


def within_noise(row: pd.Series, column: str) -> bool:
    """Whether a bias cell is within its noise floor (its p-value is known and ≥ NOISE_ALPHA)."""
    p_value = row.get(f"{column} p", float("nan"))
    return not math.isnan(p_value) and p_value >= NOISE_ALPHA


def display_rows(table: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, in the order of `display_columns()`."""
    rows = []
    for _, row in table.iterrows():
        cells = [str(row[column]) for column in TEXT_COLUMNS]
        cells += [format_value(row[c], row[f"{c} low"], row[f"{c} high"]) + (f" {NOISE_MARK}"
                  if within_noise(row, c) else "") for c in METRIC_COLUMNS]
        rows.append([*cells, str(int(row["n"]))])
    return rows


def shading(table: pd.DataFrame, column: str) -> tuple[set[int], set[int]]:
    """Positions shaded best (green) and worst (red) in a column: the column's best set, and the highest mean when
    it is out of the set; nothing without a best set."""
    values = table[column].to_numpy(dtype=float)
    if len(values) < 2 or not has_best_set(table):
        return set(), set()
    worst = set(int(i) for i in (values == values.max()).nonzero()[0])
    best = set(int(i) for i in table[f"{column} best"].to_numpy().nonzero()[0])
    return best, worst - best


def environment_warning(table: pd.DataFrame) -> str | None:
    """The warning when the table's runs computed with different software or CPU threads (None when they agree)."""
    differences = table.attrs.get("environment_differences") or []
    if not differences:
        return None
    return (f"the runs differ in what they computed with ({'; '.join(differences)}): the same config and seed need "
            "not give the same numbers there, so part of a difference between experiments can be the environment's; "
            "compare runs made with the same versions and CPU threads.")


def notes(table: pd.DataFrame) -> list[str]:
    """What the reader must know to read the numbers: the environment warning, split, units, the interval shown,
    the best set's family."""
    split = table.attrs.get("split", "test")
    interval = table.attrs.get("interval", "images")
    warning = environment_warning(table)
    lines = [f"Warning: {warning}"] if warning else []
    lines.append(f"Metrics on the {split} split, in years; n is the number of FINISHED runs (seeds) per experiment.")
    if interval == "two-level":
        lines.append(f"A cell is the mean over seeds and its 95 % interval [low, high] from a {TWO_LEVEL} (both "
                     "sources of noise: training randomness and which images were tested).")
    if interval in ("seeds", "mixed"):
        lines.append("With n ≥ 2, [low, high] is the 95 % t interval over seeds only: the test images' sampling "
                     "noise is not in it.")
    if interval in ("images", "mixed"):
        lines.append("With n = 1, [low, high] is the run's 95 % interval over the evaluated images: training "
                     "randomness is not in it, so it describes this trained network, not its configuration.")
    if any(within_noise(row, column) for _, row in table.iterrows() for column in METRIC_COLUMNS[1:]):
        lines.append(f"{NOISE_MARK}: the bias's studentized permutation p-value (median over the runs) is ≥ "
                     f"{NOISE_ALPHA}: no evidence that its groups' MAEs differ.")
    if has_best_set(table):
        lines.append(f"Bold / green: the column's best set — the Model Confidence Set at α = "
                     f"{column_alpha(METRIC_COLUMNS):.3g} per column, so that over the whole table (family: all "
                     f"{len(METRIC_COLUMNS)} columns) the chance that any truly best experiment is left out is ≤ "
                     f"{FAMILY_ALPHA:.0%}; red: the worst, when it is out of the set.")
    else:
        reason = table.attrs.get("no_best_set") or (f"a verdict on configurations needs ≥ {MIN_SEEDS} seeds per "
                                                    "experiment and each run's predictions_<split>.csv")
        lines.append(f"No best set is marked: {reason}.")
    return lines


def display_frame(table: pd.DataFrame, bold: bool = False) -> pd.DataFrame:
    """The table's cells as text, one column per `display_columns()`; with `bold`, the best group of each tested
    metric column in Markdown bold."""
    frame = pd.DataFrame(display_rows(table), columns=display_columns())
    if bold and has_best_set(table):
        for column in METRIC_COLUMNS:
            best = sorted(shading(table, column)[0])
            frame.loc[best, column] = "**" + frame.loc[best, column] + "**"
    return frame


def format_markdown(table: pd.DataFrame) -> str:
    """The table as GitHub-flavoured Markdown (pandas' `to_markdown`; numbers right-aligned; best group in bold
    when tested)."""
    frame = display_frame(table, bold=True).replace(r"\|", r"\\|", regex=True)
    numeric = {"Stages", *METRIC_COLUMNS, "n"}
    align = ["right" if column in numeric else "left" for column in frame.columns]
    return frame.to_markdown(index=False, tablefmt="pipe", colalign=align, disable_numparse=True)


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


def cell_classes(table: pd.DataFrame) -> pd.DataFrame:
    """The CSS classes of every cell: `text` or `num`, plus `best` / `worst` for shaded metric cells."""
    numeric = {*METRIC_COLUMNS, "n"}
    classes = pd.DataFrame([["num" if c in numeric else "text" for c in display_columns()]] * len(table),
                           columns=display_columns())
    for column in METRIC_COLUMNS:
        best, worst = shading(table, column)
        classes.loc[sorted(best), column] += " best"
        classes.loc[sorted(worst), column] += " worst"
    return classes


def format_html(table: pd.DataFrame, title: str) -> str:
    """A self-contained HTML page: title, legend, the table (pandas' `Styler`) with best/worst metric cells shaded,
    notes."""
    styler = display_frame(table).style.format(escape="html").hide(axis="index").set_uuid("results")
    rendered = styler.set_td_classes(cell_classes(table)).to_html()
    page_notes = "\n".join(f'<p class="note">{html.escape(note)}</p>' for note in notes(table))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{HTML_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="legend">Legend: <span class="best">green</span> = the column's best set (when the table has one: see the
notes); <span class="worst">red</span> = the worst, out of the best set; lower is better for MAE and every bias
score. A cell is the mean [95 % interval].</p>
{rendered}
{page_notes}
</body>
</html>
"""
