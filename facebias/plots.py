"""Matplotlib figures of a run: learning curves with stage boundaries, per-group MAE bars (no MLflow, no TF)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

LEARNING_CURVE_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("training objective", "loss (weighted MSE when weighting is on)", ("loss",)),
    ("unweighted MSE, train vs. validation", "MSE (targets = age / 100)", ("train_mse", "val_loss")),
    ("MAE, train vs. validation", "MAE (years)", ("mae", "val_mae")),
)
"""(title, y label, history columns) of each panel: like is plotted with like — the weighted objective on its own,
the unweighted training MSE beside the (unweighted) validation loss, training MAE beside validation MAE."""


def plot_learning_curves(history: pd.DataFrame, stage_epochs: list[int], path: Path) -> Path:
    """Three panels per global epoch (see LEARNING_CURVE_PANELS) with dashed lines at stage boundaries.

    `history` has one row per global epoch (1-based column `epoch`) and the curve columns of the run.
    """
    figure, axes = plt.subplots(1, len(LEARNING_CURVE_PANELS), figsize=(16, 4))
    for axis, (title, label, columns) in zip(axes, LEARNING_CURVE_PANELS, strict=True):
        for column in columns:
            if column in history:
                style = "--" if column.startswith("val_") else "-"
                axis.plot(history["epoch"], history[column], style, marker="o", markersize=3, label=column)
        boundary = 0
        for stage, epochs in enumerate(stage_epochs[:-1], start=1):
            boundary += epochs
            axis.axvline(boundary + 0.5, color="grey", linestyle=":", linewidth=1)
            axis.text(boundary + 0.5, 1.0, f" end of stage {stage}", transform=axis.get_xaxis_transform(),
                      fontsize=8, va="top", color="grey")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch (all stages)")
        axis.set_ylabel(label)
        axis.legend()
        axis.grid(alpha=0.3)
    figure.suptitle("Learning curves")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_group_mae(groups: pd.DataFrame, split: str, path: Path) -> Path:
    """One bar chart per attribute of the per-group MAE (years), with sample counts on the bars."""
    attributes = list(dict.fromkeys(groups["attribute"]))
    figure, axes = plt.subplots(1, len(attributes), figsize=(4 * len(attributes), 4), sharey=True)
    for axis, attribute in zip(axes, attributes, strict=True):
        rows = groups[groups["attribute"] == attribute]
        bars = axis.bar(rows["group"], rows["mae"].fillna(0.0), color="tab:blue")
        for bar, count in zip(bars, rows["count"], strict=True):
            axis.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"n={count}", ha="center",
                      va="bottom", fontsize=8)
        axis.set_title(attribute)
        axis.tick_params(axis="x", rotation=30)
    axes[0].set_ylabel(f"MAE on {split} (years)")
    figure.suptitle(f"MAE per group ({split} split)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
