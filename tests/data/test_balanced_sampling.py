"""Balanced sampling: every group drawn about equally often, an epoch as long as a shuffled one, seeded by epoch."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from facebias.data.pipeline import balanced_order, batches_per_epoch, training_dataset  # noqa: E402

SIZES = (2400, 450, 150)
"""An imbalanced training split: 80 %, 15 % and 5 % of 3000 samples."""
GROUPS = np.repeat(np.arange(len(SIZES)), SIZES)
TOLERANCE = 0.04
"""|frequency − 1/3| allowed over one epoch of 3000 draws: the binomial standard deviation is
sqrt((1/3)(2/3)/3000) ≈ 0.0086, so 0.04 is 4.6 standard deviations (a failure by chance has p < 1e-5)."""


def _epoch(seed: int, epoch: int, batch: int = 64) -> np.ndarray:
    """The sample indices one epoch of `training_dataset` draws (its x are the indices themselves)."""
    ids = np.arange(len(GROUPS), dtype=np.float32)[:, None]
    dataset = training_dataset(ids, ids[:, 0], None, batch, seed, first_epoch=epoch, groups=GROUPS)
    steps = batches_per_epoch(len(GROUPS), batch)
    return np.concatenate([np.asarray(x)[:, 0] for x, _ in dataset.take(steps)]).astype(int)


def test_each_group_is_drawn_with_equal_probability_in_an_epoch_as_long_as_a_shuffled_one() -> None:
    drawn = _epoch(seed=3, epoch=0)
    assert len(drawn) == len(GROUPS), "an epoch has as many draws as the split has samples"
    frequencies = np.bincount(GROUPS[drawn], minlength=len(SIZES)) / len(drawn)
    assert np.abs(frequencies - 1 / 3).max() < TOLERANCE, frequencies
    rare = drawn[GROUPS[drawn] == 2]
    assert len(np.unique(rare)) > 0.5 * SIZES[2], "within a group, draws spread over its samples"


def test_the_same_seed_and_epoch_give_the_same_draws_and_another_epoch_others() -> None:
    first = _epoch(seed=1, epoch=4)
    np.testing.assert_array_equal(first, _epoch(seed=1, epoch=4))
    assert not np.array_equal(first, _epoch(seed=1, epoch=5))
    assert not np.array_equal(first, _epoch(seed=2, epoch=4))


def test_a_group_code_without_samples_is_never_drawn() -> None:
    codes = np.array([0, 0, 0, 2, 2, 5])
    order = balanced_order(codes, tf.constant([0, 0], tf.int64)).numpy()
    assert set(codes[order]) <= {0, 2, 5} and len(order) == len(codes)
