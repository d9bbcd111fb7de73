"""The lines printed when a run ends: each split's scores with their intervals, the de-biased bias scores, and each
bias against its noise floor with the permutation test's verdict."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from facebias.metrics.intervals import DEBIASED_SUFFIX
from facebias.metrics.permutation import NOISE_ALPHA

SUMMARY_METRICS: tuple[str, ...] = ("mae", "age_bias", "gender_bias", "ethnicity_bias", "expression_bias")


def _with_interval(metrics: Mapping[str, float], key: str, label: str) -> str:
    text = f"{label} {metrics[key]:.3f}"
    if f"{key}_ci_low" in metrics:
        text += f" [{metrics[f'{key}_ci_low']:.3f}, {metrics[f'{key}_ci_high']:.3f}]"
    return text


def summary_lines(metrics: Mapping[str, float], level: float) -> list[str]:
    """Each evaluated split's scores with their intervals, the de-biased scores, then each bias against its noise
    floor with the studentized permutation test's verdict."""
    lines = []
    for split in ("val", "test"):
        if f"{split}/mae" not in metrics:
            continue
        values = [_with_interval(metrics, f"{split}/{name}", name) for name in SUMMARY_METRICS]
        lines.append(f"{split:>4}: {', '.join(values)}")
        debiased = [_with_interval(metrics, f"{split}/{name}{DEBIASED_SUFFIX}", name.removesuffix("_bias"))
                    for name in SUMMARY_METRICS[1:] if f"{split}/{name}{DEBIASED_SUFFIX}" in metrics]
        if debiased:
            lines.append(f"      de-biased: {', '.join(debiased)}")
    if any(key.endswith("_ci_low") for key in metrics):
        lines.append(f"      [low, high]: {level:.0%} interval over the evaluated images (MAE: bootstrap; biases: "
                     "simultaneous intervals of the group gaps, valid at 0)")
    split = "test" if "test/mae" in metrics else "val"
    biases = [name for name in SUMMARY_METRICS[1:] if f"{split}/{name}_null" in metrics]
    if biases:
        lines.append(f"noise floor on {split} (the score if errors ignored the group; studentized permutation "
                     "p-value of equal group MAEs):")
        for name in biases:
            p_value = metrics[f"{split}/{name}_p"]
            verdict = "within noise" if p_value >= NOISE_ALPHA else "beyond noise"
            lines.append(f"  {name} {metrics[f'{split}/{name}']:.3f} vs. null {metrics[f'{split}/{name}_null']:.3f}"
                         f" (p {p_value:.3f}): {verdict}")
        lines.append(f"  Within noise (p >= {NOISE_ALPHA}): no evidence that the groups' MAEs differ. Each line is "
                     f"one test at {NOISE_ALPHA:.0%}; these trained weights on these images, not the configuration.")
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
