"""weighting=lds: label-distribution smoothing (Yang et al., "Delving into Deep Imbalanced Regression", ICML 2021).

The training ages' histogram in 1-year bins (bin = ⌊age⌋), convolved with a Gaussian kernel of `weighting.lds.sigma`
years, is the smoothed label density p̃(b) = Σ_b' count(b') · exp(−(b − b')² / (2σ²)). A sample of bin b weighs
1 / p̃(b) (`form: inverse`) or 1 / √p̃(b) (`sqrt_inverse`), the weights scaled to mean 1 over the training split:
rare ages weigh more, common ones less. No group labels are used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from facebias.config import TrainConfig
from facebias.data.dataset import Split
from facebias.mitigations.base import FirstPass, Mitigation

LDS_ARTIFACT = "lds_density.json"


def smoothed_density(ages: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(bins, p̃ at each bin) for the bins from the lowest to the highest ⌊age⌋ (unnormalised: counts · kernel)."""
    bins = np.floor(np.asarray(ages, dtype=float)).astype(int)
    grid = np.arange(bins.min(), bins.max() + 1)
    counts = np.bincount(bins - grid[0], minlength=len(grid)).astype(float)
    kernel = np.exp(-((grid[:, None] - grid[None, :]) ** 2) / (2.0 * sigma ** 2))
    return grid, kernel @ counts


def lds_weights(ages: np.ndarray, sigma: float, form: str) -> np.ndarray:
    """Each sample's weight 1 / p̃(⌊age⌋) (`inverse`) or 1 / √p̃ (`sqrt_inverse`), scaled to mean 1 (float32)."""
    grid, density = smoothed_density(ages, sigma)
    at_sample = density[np.floor(np.asarray(ages, dtype=float)).astype(int) - grid[0]]
    weights = 1.0 / (at_sample if form == "inverse" else np.sqrt(at_sample))
    return (weights / weights.mean()).astype(np.float32)


class LabelDistributionSmoothing(Mitigation):
    """Inverse (square-root) smoothed-age-density weights of the training split."""

    def __init__(self, sigma: float, form: str) -> None:
        self.sigma, self.form = sigma, form
        self.weights: np.ndarray | None = None
        self.density: tuple[np.ndarray, np.ndarray] | None = None

    def prepare(self, train: Split, first_pass: FirstPass, state: Any = None) -> None:
        self.weights = lds_weights(train.ages, self.sigma, self.form)
        self.density = smoothed_density(train.ages, self.sigma)

    def sample_weights(self) -> np.ndarray | None:
        return self.weights

    def artifacts(self) -> dict[str, object]:
        if self.density is None:
            return {}
        grid, density = self.density
        return {LDS_ARTIFACT: {"sigma": self.sigma, "form": self.form,
                               "bins": [{"age": int(b), "density": float(d)} for b, d in zip(grid, density,
                                                                                          strict=True)]}}

    def metrics(self) -> dict[str, float]:
        if self.weights is None:
            return {}
        return {"lds/weight_min": float(self.weights.min()), "lds/weight_max": float(self.weights.max())}


def from_config(config: TrainConfig) -> LabelDistributionSmoothing:
    return LabelDistributionSmoothing(config.weighting.lds.sigma, config.weighting.lds.form)
