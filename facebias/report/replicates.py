"""Every run's scores on shared resamples of the same test images — the image level of the report's two-level
bootstrap (numpy/pandas only).

The MAE resamples the images with replacement; each bias score resamples within the groups of its attribute
(stratified, as the runs' own intervals do), so a small group never drops out. The draws are made once and
applied to every run, so that experiments are compared on the same resampled images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from facebias.metrics.scores import BIAS_ATTRIBUTES, bias_scores
from facebias.metrics.uncertainty import SCORES, group_codes, group_sizes, pair_mean_gap, stratified_indices
from facebias.report.significance import two_level_replicates

PREDICTION_COLUMNS: tuple[str, ...] = ("apparent_age", "predicted_age", "gender", "ethnicity", "expression")
"""The columns of a run's predictions_<split>.csv that the report reads."""


def same_images(predictions: Sequence[pd.DataFrame]) -> bool:
    """Whether every predictions frame lists the same images (true ages and attributes, in the same order)."""
    columns = ["apparent_age", "gender", "ethnicity", "expression"]
    first = predictions[0][columns].reset_index(drop=True)
    return all(len(frame) == len(first) and frame[columns].reset_index(drop=True).equals(first)
               for frame in predictions[1:])


def resampled_run_scores(predictions: Sequence[pd.DataFrame], n_resamples: int,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Per score (mae and the four biases), a (runs × n_resamples) array: each run's score on each shared resample
    of the images. Every frame must list the same images (`same_images`)."""
    first = predictions[0]
    ages = first["apparent_age"].to_numpy(dtype=float)
    codes = group_codes(ages, first[["gender", "ethnicity", "expression"]])
    sizes = group_sizes()
    rng = np.random.default_rng(seed)
    positions = rng.integers(0, len(first), size=(n_resamples, len(first)))
    strata = {score: stratified_indices(codes[score], n_resamples, rng) for score in BIAS_ATTRIBUTES}
    scores = {score: np.empty((len(predictions), n_resamples)) for score in SCORES}
    for run, frame in enumerate(predictions):
        errors = np.abs(frame["predicted_age"].to_numpy(dtype=float) - ages)
        scores["mae"][run] = errors[positions].mean(axis=1)
        for score, draws in strata.items():
            means = np.full((n_resamples, sizes[score]), np.nan)
            for group, drawn in enumerate(draws):
                if drawn.shape[1]:
                    means[:, group] = errors[drawn].mean(axis=1)
            scores[score][run] = pair_mean_gap(means)
    return scores


def experiment_replicates(experiments: Mapping[str, Sequence[pd.DataFrame]], n_resamples: int,
                          seed: int = 0) -> dict[str, tuple[dict[str, float], dict[str, np.ndarray]]]:
    """Per score: each experiment's mean over its runs of the score on all the images, and its two-level bootstrap
    replicates (shared image resamples, then the seed level; facebias.report.significance). `experiments` maps a name
    to its runs' predictions frames, every frame on the same images."""
    names = list(experiments)
    frames = [frame for name in names for frame in experiments[name]]
    scores = resampled_run_scores(frames, n_resamples, seed=seed)
    observed = [bias_scores(frame["apparent_age"], frame["predicted_age"],
                            frame[["gender", "ethnicity", "expression"]]) for frame in frames]
    bounds = np.cumsum([0, *(len(experiments[name]) for name in names)])
    result = {}
    for score in SCORES:
        means = {name: float(np.mean([o[score] for o in observed[bounds[i]:bounds[i + 1]]]))
                 for i, name in enumerate(names)}
        per_run = {name: scores[score][bounds[i]:bounds[i + 1]] for i, name in enumerate(names)}
        result[score] = means, two_level_replicates(per_run, seed=seed)
    return result
