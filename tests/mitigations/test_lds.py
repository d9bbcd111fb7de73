"""Label-distribution smoothing: weights on a tiny age list against a hand computation with the kernel, and rare
ages weighing more than common ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from facebias.mitigations.lds import LabelDistributionSmoothing, lds_weights, smoothed_density


def test_weights_on_a_tiny_age_list_by_hand() -> None:
    ages = np.array([20.2, 20.7, 21.5, 25.0])  # bins 20, 20, 21, 25; sigma 1: kernel exp(−d² / 2)
    density = {20: 2 + math.exp(-0.5) + math.exp(-12.5), 21: 2 * math.exp(-0.5) + 1 + math.exp(-8),
               25: 2 * math.exp(-12.5) + math.exp(-8) + 1}
    grid, smoothed = smoothed_density(ages, sigma=1.0)
    assert grid.tolist() == list(range(20, 26))
    assert [smoothed[b - 20] for b in (20, 21, 25)] == pytest.approx([density[20], density[21], density[25]])
    raw = np.array([1 / density[20], 1 / density[20], 1 / density[21], 1 / density[25]])
    np.testing.assert_allclose(lds_weights(ages, 1.0, "inverse"), raw / raw.mean(), rtol=1e-6)
    root = np.sqrt(raw)
    np.testing.assert_allclose(lds_weights(ages, 1.0, "sqrt_inverse"), root / root.mean(), rtol=1e-6)


def test_rare_ages_weigh_more_and_the_square_root_is_milder() -> None:
    rng = np.random.default_rng(0)
    ages = np.r_[rng.uniform(20, 40, 950), rng.uniform(60, 80, 50)]  # 5 % older than 60
    old = ages > 60
    for form in ("inverse", "sqrt_inverse"):
        weights = lds_weights(ages, 2.0, form)
        assert weights.mean() == pytest.approx(1.0, rel=1e-6)
        assert weights[old].min() > weights[~old].max(), f"{form}: every rare age weighs more than any common one"
        assert weights[old].mean() > 3 * weights[~old].mean(), f"{form}: the rare ages gain weight"
    inverse, root = lds_weights(ages, 2.0, "inverse"), lds_weights(ages, 2.0, "sqrt_inverse")
    assert root[old].sum() / root.sum() < inverse[old].sum() / inverse.sum(), "sqrt_inverse tempers the weights"
    assert inverse[old].sum() / inverse.sum() > 0.3, "the 5 % of rare images carry > 30 % of the inverse weight"


def test_the_mitigation_gives_the_weights_and_its_density() -> None:
    class Train:
        ages = np.array([20.2, 20.7, 21.5, 25.0])

    lds = LabelDistributionSmoothing(sigma=1.0, form="inverse")
    lds.prepare(Train(), first_pass=lambda epochs: pytest.fail("LDS trains no first pass"))
    np.testing.assert_allclose(lds.sample_weights(), lds_weights(Train.ages, 1.0, "inverse"))
    record = lds.artifacts()["lds_density.json"]
    assert [b["age"] for b in record["bins"]] == list(range(20, 26))
    assert lds.metrics()["lds/weight_max"] == pytest.approx(float(lds.sample_weights()[3]))
