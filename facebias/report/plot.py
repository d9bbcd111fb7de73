"""The results plot: per experiment, the four bias scores above its MAE, with 95 % interval error bars."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from facebias.report.table import BIAS_COLUMNS


def _tick_label(row: pd.Series) -> str:
    """Short x-axis label: `expN` (or the name) over backbone, head and number of stages."""
    name = str(row["Experiment"])
    match = re.match(r"(exp\d+)(_|$)", name)
    short = match.group(1) if match else name
    stages = int(row["Stages"])
    return f"{short}\n{row['Backbone']}\n{row['Head']}, {stages} stage{'s' if stages != 1 else ''}"


def _error_bars(table: pd.DataFrame, column: str) -> np.ndarray | None:
    """The 95 % interval around each mean as (2, experiments) error bars; None when no experiment has one."""
    low = table[f"{column} low"].to_numpy(dtype=float)
    high = table[f"{column} high"].to_numpy(dtype=float)
    if np.isnan(low).all():
        return None
    means = table[column].to_numpy(dtype=float)
    return np.nan_to_num(np.vstack([means - low, high - means]), nan=0.0).clip(min=0.0)


def caption(table: pd.DataFrame) -> str:
    """Which uncertainty the error bars show."""
    interval = table.attrs.get("interval", "images")
    if interval == "seeds":
        return "error bars: 95 % t interval over seeds"
    if interval == "images":
        return "error bars: 95 % bootstrap interval over the test images (one run each, seeds not included)"
    return "error bars: over seeds where n ≥ 2, over the test images where n = 1"


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
    tops = table["MAE"].to_numpy(dtype=float) + (errors[1] if errors is not None else 0.0)
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
    figure.suptitle(f"{title}\n({caption(table)})", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
