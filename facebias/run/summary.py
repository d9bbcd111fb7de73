"""The lines printed when a run ends: each split's scores with their intervals, each bias against its noise floor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

SUMMARY_METRICS: tuple[str, ...] = ("mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias")
NOISE_ALPHA = 0.05
"""A bias whose permutation p-value is at least this is reported as within noise."""


def summary_lines(metrics: Mapping[str, float], level: float) -> list[str]:
    """Each evaluated split's scores with their bootstrap intervals, then each bias against its noise floor."""
    lines = []
    for split in ("val", "test"):
        if f"{split}/mae" not in metrics:
            continue
        values = []
        for name in SUMMARY_METRICS:
            text = f"{name} {metrics[f'{split}/{name}']:.3f}"
            if f"{split}/{name}_ci_low" in metrics:
                text += f" [{metrics[f'{split}/{name}_ci_low']:.3f}, {metrics[f'{split}/{name}_ci_high']:.3f}]"
            values.append(text)
        lines.append(f"{split:>4}: {', '.join(values)}")
    if any(key.endswith("_ci_low") for key in metrics):
        lines.append(f"      [low, high]: {level:.0%} bootstrap interval over the evaluated images")
    split = "test" if "test/mae" in metrics else "val"
    biases = [name for name in SUMMARY_METRICS[1:] if f"{split}/{name}_null" in metrics]
    if biases:
        lines.append(f"noise floor on {split} (the score if errors ignored the group; permutation p-value):")
        for name in biases:
            p_value = metrics[f"{split}/{name}_p"]
            verdict = "within noise" if p_value >= NOISE_ALPHA else "beyond noise"
            lines.append(f"  {name} {metrics[f'{split}/{name}']:.3f} vs. null {metrics[f'{split}/{name}_null']:.3f}"
                         f" (p {p_value:.3f}): {verdict}")
        lines.append(f"  A bias within noise (p >= {NOISE_ALPHA}) is not evidence of unfairness: errors that do not "
                     "depend on the group would score as much.")
    return lines


def print_summary(metrics: Mapping[str, float], level: float, run_id: str, output_dir: Path, view_hint: str,
                  model: str = "") -> None:
    """The headline metrics with their uncertainty, the run id, where the model is and how to look at the run."""
    print("\n== facebias run finished ==")
    for line in summary_lines(metrics, level):
        print(line)
    print(f"run id: {run_id}")
    print(f"outputs: {output_dir}")
    if model:
        print(f"model: {model} (predict with `python -m facebias.predict model={model} images=…`)")
    print(f"view it: {view_hint}")
