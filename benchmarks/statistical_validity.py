"""Benchmark: facebias measures its own error rates on data whose truth it knows (docs/metrics.md, "Measured error
rates").

1. Trains (or reuses) the default setting with weighting=none and weighting=group, seeds 0–9, as one sweep.
2. Draws a fresh pool of synthetic faces from the generator's population (a seed no split uses) and predicts it
   with every trained model (cached in <workdir>/pool_<size>.npz). Each model's *population value* of a score is
   its value on the whole pool (the de-biased scores: their unbiased estimate on the pool).
3. Coverage: test sets of the test split's size (1,978) drawn from the pool without replacement; per model and test
   set, every run-level interval (MAE, four kit bias scores, four de-biased scores) is checked against the model's
   population value.
4. A/A: per configuration, its 10 seeds drawn at random into 3 pseudo-experiments of 3 seeds, a fresh test set each
   time; the report's procedure (two-level bootstrap, Model Confidence Set per column at 0.05 / 5) — how often it
   leaves an experiment out of a column's best set, and out of any column (the stated family: the table).
   Power: 5 seeds of each configuration against each other; how often the set drops the configuration whose
   mean population value is worse.
5. The permutation test's rejection rate at 5 %: a trained model's errors shuffled across a fresh test set
   (group-blind), and equal MAEs with one group's errors 1.5× or 2× as spread out (gamma errors at the test
   split's group sizes, |N(0, 7²)| elsewhere).

    python benchmarks/statistical_validity.py --workdir DIR [--pool 120000] [--test-sets 200] [--replicates 200]
        [--coverage-models 5] [--simulations 200] [--skip-training] [--parts coverage,a_a,permutation]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from facebias.data.synthetic import generate_split
from facebias.metrics import BIAS_ATTRIBUTES, SCORES, bias_scores, permutation_null, score_uncertainty
from facebias.metrics.intervals import DEBIASED_SUFFIX, GapIntervals, debiased, group_moments
from facebias.metrics.uncertainty import group_codes, group_sizes
from facebias.report.replicates import experiment_replicates
from facebias.report.significance import column_alpha, model_confidence_set
from facebias.vocab import VOCABULARIES

SWEEP = ("-m", "weighting=none,group", "seed=range(0,10)", "trainer.verbose=0", "sweep_name=validity",
         "hydra/launcher=local_processes", "hydra.sweeper.max_batch_size=1")
TEST_SIZE = 1978
POOL_SEED = 20261206
CHUNK = 20000
ATTRIBUTES = ("gender", "ethnicity", "expression")
DEBIASED = tuple(name + DEBIASED_SUFFIX for name in BIAS_ATTRIBUTES)
SPREAD_GROUPS = {"gender_bias": ("gender", "female", 972), "ethnicity_bias": ("ethnicity", "afroamerican", 58),
                 "expression_bias": ("expression", "other", 81), "age_bias": ("age_group", ">=60", 72)}
"""Per bias: the group given more spread-out errors, and its size in the test split."""


def trained_runs(workdir: Path) -> pd.DataFrame:
    """The sweep's FINISHED runs: run_id, weighting, seed."""
    from facebias.identity import SWEEP_PARENT_ROLE, SWEEP_ROLE_TAG
    from facebias.tracking.queries import load_sweep_runs
    from facebias.tracking.store import TrackingStore

    _, children = load_sweep_runs(TrackingStore(store_uri(workdir), "facebias"),
                                  parent_tags={SWEEP_ROLE_TAG: SWEEP_PARENT_ROLE})
    finished = children[children["status"] == "FINISHED"]
    return pd.DataFrame({"run_id": finished["run_id"], "weighting": finished["tags.facebias.weighting"],
                         "seed": finished["tags.facebias.seed"].astype(int)}).sort_values(["weighting", "seed"])


def store_uri(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"


def pool_images(workdir: Path, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The fresh pool (labels and uint8 images), drawn from the generator with POOL_SEED; cached in the workdir."""
    cache = workdir / f"pool_images_{size}.npy"
    labels_file = workdir / f"pool_labels_{size}.csv"
    if cache.exists() and labels_file.exists():
        return pd.read_csv(labels_file), np.load(cache, mmap_mode="r")
    rng = np.random.default_rng(POOL_SEED)
    labels, images = [], np.lib.format.open_memmap(cache.with_suffix(".partial.npy"), mode="w+", dtype=np.uint8,
                                                   shape=(size, 64, 64, 3))
    for start in range(0, size, CHUNK):
        split = generate_split(min(CHUNK, size - start), 64, rng)
        images[start:start + len(split.ages)] = split.images
        labels.append(split.attributes[list(ATTRIBUTES)].assign(apparent_age=split.ages))
        print(f"  pool: {start + len(split.ages)} of {size} images drawn", flush=True)
    images.flush()
    cache.with_suffix(".partial.npy").rename(cache)
    frame = pd.concat(labels, ignore_index=True)
    frame.to_csv(labels_file, index=False)
    return frame, np.load(cache, mmap_mode="r")


def pool_predictions(workdir: Path, runs: pd.DataFrame, size: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The pool's labels (gender, ethnicity, expression, apparent_age) and every run's predictions (runs × pool),
    each run's cached in <workdir>/pool_predictions_<size>/<run id>.npy."""
    labels, images = pool_images(workdir, size)
    folder = workdir / f"pool_predictions_{size}"
    folder.mkdir(exist_ok=True)
    from facebias.runtime import predict_years
    from facebias.tracking.models import load_keras_model

    for number, run_id in enumerate(runs["run_id"], start=1):
        path = folder / f"{run_id}.npy"
        if path.exists():
            continue
        with tempfile.TemporaryDirectory() as scratch:
            model = load_keras_model(f"runs:/{run_id}/model", store_uri(workdir), Path(scratch))[0]
        predicted = np.concatenate([predict_years(model, np.asarray(images[start:start + CHUNK]))
                                    for start in range(0, size, CHUNK)])
        np.save(folder / f"{run_id}.partial.npy", predicted)
        (folder / f"{run_id}.partial.npy").rename(path)
        print(f"  pool predicted by {number} of {len(runs)} models", flush=True)
    return labels, np.vstack([np.load(folder / f"{run_id}.npy") for run_id in runs["run_id"]])


def population_values(labels: pd.DataFrame, predicted: np.ndarray) -> dict[str, float]:
    """A model's MAE and kit scores on the whole pool, and its de-biased scores' unbiased estimates there."""
    ages = labels["apparent_age"].to_numpy()
    values = bias_scores(ages, predicted, labels[list(ATTRIBUTES)])
    codes, sizes = group_codes(ages, labels[list(ATTRIBUTES)]), group_sizes()
    errors = np.abs(predicted - ages)
    for score in BIAS_ATTRIBUTES:
        counts, means, variances = group_moments(errors, codes[score], sizes[score])
        present = np.flatnonzero(counts > 0)
        first, second = (present[i] for i in np.triu_indices(len(present), k=1))
        gaps = GapIntervals(means[first] - means[second], variances[first] + variances[second], np.zeros(len(first)))
        values[score + DEBIASED_SUFFIX] = debiased(gaps).estimate
    return values


def coverage(labels: pd.DataFrame, predictions: np.ndarray, truths: list[dict[str, float]], test_sets: int,
             rng: np.random.Generator) -> pd.Series:
    """Per score, the share of (model, test set) pairs whose run-level interval holds the population value."""
    hits = {score: 0 for score in (*SCORES, *DEBIASED)}
    for model, truth in enumerate(truths):
        for test_set in range(test_sets):
            chosen = rng.choice(len(labels), TEST_SIZE, replace=False)
            sample = labels.iloc[chosen]
            intervals, unbiased = score_uncertainty(sample["apparent_age"], predictions[model, chosen],
                                                    sample[list(ATTRIBUTES)], seed=test_set)
            for score, (low, high) in intervals.items():
                hits[score] += low <= truth[score] <= high
            for score, result in unbiased.items():
                hits[score] += result.low <= truth[score] <= result.high
    return pd.Series(hits) / (len(truths) * test_sets)


def best_sets(labels: pd.DataFrame, predictions: np.ndarray, experiments: dict[str, np.ndarray],
              rng: np.random.Generator, seed: int) -> dict[str, set[str]]:
    """Per score, the report's best set of `experiments` (name → rows of `predictions`) on a fresh test set."""
    chosen = rng.choice(len(labels), TEST_SIZE, replace=False)
    sample = labels.iloc[chosen].reset_index(drop=True)
    experiments_frames = {name: [sample.assign(predicted_age=predictions[row, chosen]) for row in rows]
                          for name, rows in experiments.items()}
    alpha = column_alpha(SCORES)
    return {score: model_confidence_set(estimates, replicates, alpha)
            for score, (estimates, replicates) in experiment_replicates(experiments_frames, 1000, seed=seed).items()}


def a_a_and_power(labels: pd.DataFrame, predictions: np.ndarray, runs: pd.DataFrame, truths: pd.DataFrame,
                  replicates: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.Series]:
    """A/A: per configuration and score, the share of replicates leaving a pseudo-experiment out (and of any
    score: the family). Power: per score, the share dropping the configuration with the worse population mean."""
    rows = {}
    for config, frame in runs.groupby("weighting"):
        positions = frame.index.to_numpy()
        left_out = {score: 0 for score in (*SCORES, "any column")}
        for replicate in range(replicates):
            order = rng.permutation(positions)
            sets = best_sets(labels, predictions, {"A": order[:3], "B": order[3:6], "C": order[6:9]}, rng, replicate)
            for score, kept in sets.items():
                left_out[score] += len(kept) < 3
            left_out["any column"] += any(len(kept) < 3 for kept in sets.values())
        rows[f"weighting={config}"] = pd.Series(left_out) / replicates
    means = truths.groupby(runs["weighting"].to_numpy()).mean()
    worse = {score: means[score].idxmax() for score in SCORES}
    dropped = {score: 0 for score in SCORES}
    for replicate in range(replicates):
        arms = {config: rng.permutation(frame.index.to_numpy())[:5] for config, frame in runs.groupby("weighting")}
        for score, kept in best_sets(labels, predictions, arms, rng, 10_000 + replicate).items():
            dropped[score] += worse[score] not in kept
    power = pd.Series(dropped) / replicates
    power.index = [f"{score} (worse: {worse[score]}, gap {means[score].max() - means[score].min():.3f})"
                   for score in SCORES]
    return pd.DataFrame(rows), power


def test_rejections(labels: pd.DataFrame, predictions: np.ndarray, simulations: int,
                    rng: np.random.Generator) -> tuple[pd.DataFrame, pd.Series]:
    """The permutation test's rejection rate at 5 %: group-blind (a trained model's errors shuffled) and equal MAE
    with one group's errors more spread out, per bias; and the mean kit score of the group-blind errors (what noise
    alone scores at the test split's sizes)."""
    results = {}
    blind = {score: 0 for score in BIAS_ATTRIBUTES}
    noise = {score: 0.0 for score in BIAS_ATTRIBUTES}
    for simulation in range(simulations):
        chosen = rng.choice(len(labels), TEST_SIZE, replace=False)
        sample = labels.iloc[chosen]
        errors = rng.permutation(predictions[simulation % len(predictions), chosen] - sample["apparent_age"])
        for score, result in permutation_null(sample["apparent_age"], sample["apparent_age"] + errors,
                                              sample[list(ATTRIBUTES)], seed=simulation).items():
            blind[score] += result.p < 0.05
            noise[score] += result.observed / simulations
    results["group-blind errors (a trained model's, shuffled)"] = pd.Series(blind) / simulations
    mean, sd = 7 * np.sqrt(2 / np.pi), 7 * np.sqrt(1 - 2 / np.pi)
    for spread in (1.5, 2.0):
        rejected = {}
        for score, (attribute, group, _) in SPREAD_GROUPS.items():
            count = 0
            for simulation in range(simulations):
                chosen = rng.choice(len(labels), TEST_SIZE, replace=False)
                sample = labels.iloc[chosen].reset_index(drop=True)
                ages = sample["apparent_age"].to_numpy()
                members = (group_codes(ages, sample[list(ATTRIBUTES)])[score]
                           == VOCABULARIES[attribute].index(group))
                errors = np.abs(rng.normal(0, 7, TEST_SIZE))
                wide = sd * spread
                errors[members] = rng.gamma((mean / wide) ** 2, wide**2 / mean, members.sum())
                count += permutation_null(ages, ages + errors, sample[list(ATTRIBUTES)],
                                          seed=simulation)[score].p < 0.05
            rejected[score] = count / simulations
        results[f"equal MAE, one group's errors {spread}x as spread out"] = pd.Series(rejected)
    return pd.DataFrame(results), pd.Series(noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True, help="where the sweep's mlruns/ and multirun/ are")
    parser.add_argument("--pool", type=int, default=120_000, help="fresh images drawn from the population")
    parser.add_argument("--test-sets", type=int, default=200, help="test sets per model for coverage")
    parser.add_argument("--replicates", type=int, default=200, help="A/A and power replicates per configuration")
    parser.add_argument("--coverage-models", type=int, default=5, help="models per configuration checked for coverage")
    parser.add_argument("--simulations", type=int, default=200, help="simulated splits per permutation-test case")
    parser.add_argument("--skip-training", action="store_true", help="use the sweep's FINISHED runs as they are")
    parser.add_argument("--parts", default="coverage,a_a,permutation",
                        help="which measurements, comma-separated (coverage, a_a, permutation)")
    args = parser.parse_args()
    started = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if not args.skip_training:
        subprocess.run([sys.executable, "-m", "facebias.train", *SWEEP], cwd=args.workdir, check=True)
    runs = trained_runs(args.workdir).reset_index(drop=True)
    print(f"{len(runs)} trained runs: {runs.groupby('weighting').size().to_dict()}", flush=True)
    labels, predictions = pool_predictions(args.workdir, runs, args.pool)
    truths = pd.DataFrame([population_values(labels, row) for row in predictions])
    rng = np.random.default_rng(0)
    parts = set(args.parts.split(","))
    if "coverage" in parts:
        checked = runs.groupby("weighting").head(args.coverage_models).index.to_numpy()
        print(f"\nCoverage of the 95 % intervals ({len(checked)} models × {args.test_sets} test sets of {TEST_SIZE} "
              f"images from a pool of {args.pool:,}):")
        print(coverage(labels, predictions[checked], truths.iloc[checked].to_dict("records"), args.test_sets, rng)
              .to_frame("coverage").to_markdown(floatfmt=".3f"))
    if "a_a" in parts:
        a_a, power = a_a_and_power(labels, predictions, runs, truths, args.replicates, rng)
        print(f"\nA/A: share of {args.replicates} replicates leaving a pseudo-experiment out of the best set "
              "(3 × 3 seeds; α = 0.01 per column, family = the 5 columns):")
        print(a_a.to_markdown(floatfmt=".3f"))
        print("\nPower: share of replicates dropping the worse configuration (5 seeds each):")
        print(power.to_frame("dropped").to_markdown(floatfmt=".3f"))
    if "permutation" in parts:
        print(f"\nPermutation test, rejection rate at 5 % ({args.simulations} simulated test splits per cell):")
        rates, noise = test_rejections(labels, predictions, args.simulations, rng)
        print(rates.to_markdown(floatfmt=".3f"))
        print("\nMean kit score of group-blind errors (noise alone, years, at the test split's size):")
        print(noise.to_frame("kit score").to_markdown(floatfmt=".3f"))
    print(f"\nwall time {time.perf_counter() - started:.0f} s; Python {platform.python_version()}, "
          f"numpy {np.__version__}, pandas {pd.__version__}, {platform.machine()}")


if __name__ == "__main__":
    main()
