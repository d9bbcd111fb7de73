"""Arms against a baseline chosen in advance, on both sources of noise, Holm-corrected over the whole table (pure
numpy/pandas) — the verdicts of the weighting and mitigation benchmarks.

Every arm's runs (seeds) were evaluated on the same test images. Per score, the two-level bootstrap
(facebias.report.significance) gives each arm's replicates; an arm's difference from the baseline gets a two-sided
p-value, and Holm's correction runs over every (arm, score) cell at once, so the chance of any false "beyond
noise" in the table is ≤ `alpha`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from facebias.metrics.uncertainty import SCORES, percentile_interval
from facebias.report.replicates import experiment_replicates, same_images
from facebias.report.significance import (
    FAMILY_ALPHA,
    LEVEL,
    MIN_SEEDS,
    RESAMPLES,
    holm,
    reference_p_values,
)


def compare_with_baseline(arms: Mapping[str, Sequence[pd.DataFrame]], baseline: str, *, seed: int = 0,
                          alpha: float = FAMILY_ALPHA) -> pd.DataFrame:
    """One row per (score, arm): n, mean, its two-level 95 % interval, the difference from `baseline`, its p-value,
    the Holm-adjusted p-value over every non-baseline cell, and whether it is beyond noise at `alpha`.

    `arms` maps an arm's name to its runs' predictions frames (apparent_age, predicted_age, gender, ethnicity,
    expression), all on the same images, at least MIN_SEEDS per arm."""
    if baseline not in arms:
        raise ValueError(f"the baseline {baseline!r} is not among the arms {sorted(arms)}")
    small = {name: len(frames) for name, frames in arms.items() if len(frames) < MIN_SEEDS}
    if small:
        raise ValueError(f"every arm needs at least {MIN_SEEDS} runs (seeds) for a verdict; {small} have fewer")
    frames = [frame for runs in arms.values() for frame in runs]
    if not same_images(frames):
        raise ValueError("the arms' runs were evaluated on different images: they cannot be compared pairwise")
    by_score = experiment_replicates(arms, RESAMPLES, seed=seed)
    rows, p_values = [], {}
    for score in SCORES:
        means, replicates = by_score[score]
        tested = reference_p_values(means, replicates, baseline)
        for name in arms:
            low, high = percentile_interval(replicates[name], LEVEL)
            rows.append({"score": score, "arm": name, "n": len(arms[name]), "mean": means[name], "low": low,
                         "high": high, "difference": means[name] - means[baseline], "p": tested.get(name, np.nan)})
            if name != baseline:
                p_values[(score, name)] = tested[name]
    table = pd.DataFrame(rows)
    adjusted = holm(p_values)
    table["p_holm"] = [adjusted.get((score, arm), np.nan) for score, arm in zip(table["score"], table["arm"],
                                                                                strict=True)]
    table["beyond_noise"] = table["p_holm"] < alpha
    table.attrs.update({"baseline": baseline, "alpha": alpha, "family": len(p_values)})
    return table


def markdown(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table: per score and arm, mean [interval], difference, p, Holm p, verdict."""
    lines = ["| score | arm | n | mean [95 % interval] | − baseline | p | Holm p | beyond noise? |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for row in table.itertuples(index=False):
        baseline = row.arm == table.attrs["baseline"]
        verdict = "(baseline)" if baseline else ("yes" if row.beyond_noise else "no")
        tail = "— | — | —" if baseline else f"{row.difference:+.3f} | {row.p:.3g} | {row.p_holm:.3g}"
        lines.append(f"| {row.score} | {row.arm} | {row.n} | {row.mean:.3f} [{row.low:.3f}, {row.high:.3f}] | "
                     f"{tail} | {verdict} |")
    return "\n".join(lines)
