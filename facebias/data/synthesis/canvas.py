"""Pixel geometry and drawing primitives: face coordinates of a batch's pixels, anti-aliased shapes, blending."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facebias.data.synthesis.appearance import Params

Coordinate = np.ndarray | float
"""A face coordinate or length: one number, or one per image of the batch (shaped to broadcast)."""

@dataclass(frozen=True)
class Region:
    """A rectangle of pixels shared by a batch, with the face coordinates of its pixels."""

    rows: slice
    cols: slice
    x: np.ndarray
    y: np.ndarray
    pixel: np.ndarray

    def of(self, array: np.ndarray) -> np.ndarray:
        """The view of a (..., S, S) array on this region (writes go through to the array)."""
        return array[..., self.rows, self.cols]


@dataclass(frozen=True)
class Frame:
    """Face coordinates of every pixel of a batch: pose (shift, rotation, scale) removed, y downwards."""

    x: np.ndarray
    y: np.ndarray
    pixel: np.ndarray
    centre_x: np.ndarray
    centre_y: np.ndarray
    cos: np.ndarray
    sin: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, p: Params, u: np.ndarray, v: np.ndarray) -> Frame:
        """The frame of a batch posed by `p` (centre, angle, scale), from its pixel grid `u`, `v`."""
        du, dv = u - p["centre_x"], v - p["centre_y"]
        cos, sin, scale = np.cos(p["angle"]), np.sin(p["angle"]), p["scale"]
        x = (cos * du + sin * dv) / scale
        y = (cos * dv - sin * du) / scale
        pixel = 2.0 / (u.shape[-1] * scale)
        return cls(x, y, pixel, p["centre_x"], p["centre_y"], cos, sin, scale)

    def region(self, x_low: Coordinate, x_high: Coordinate, y_low: Coordinate, y_high: Coordinate) -> Region:
        """The smallest pixel rectangle holding this face-coordinate box in every image, plus 3 pixels."""
        size = self.x.shape[-1]
        corners_x = np.stack(np.broadcast_arrays(x_low, x_high, x_low, x_high))
        corners_y = np.stack(np.broadcast_arrays(y_low, y_low, y_high, y_high))
        u = self.centre_x + self.scale * (self.cos * corners_x - self.sin * corners_y)
        v = self.centre_y + self.scale * (self.sin * corners_x + self.cos * corners_y)
        cols = _pixel_span(u.min(), u.max(), size)
        rows = _pixel_span(v.min(), v.max(), size)
        return Region(rows, cols, self.x[:, rows, cols], self.y[:, rows, cols], self.pixel)


def _pixel_span(low: float, high: float, size: int) -> slice:
    first = int(np.clip(np.floor((low + 1) / 2 * size) - 3, 0, size))
    last = int(np.clip(np.ceil((high + 1) / 2 * size) + 3, first, size))
    return slice(first, last)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], x to the right and y downwards, shaped (1, size, size)."""
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    v, u = np.meshgrid(centres, centres, indexing="ij")
    return u[None], v[None]


def coverage(signed_distance: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a shape from its signed distance (negative inside), one pixel of ramp."""
    return np.clip(0.5 - signed_distance / pixel, 0.0, 1.0)


def ellipse_distance(
    x: np.ndarray, y: np.ndarray, cx: Coordinate, cy: Coordinate, rx: Coordinate, ry: Coordinate
) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse."""
    radius = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return (radius - 1) * np.minimum(rx, ry)


def line(distance: np.ndarray, width: float, pixel: np.ndarray) -> np.ndarray:
    """Profile of a thin dark line: lines thinner than a pixel blur out (wider, fainter), as when downscaled."""
    blurred = np.sqrt(width**2 + pixel**2)
    return (width / blurred) * np.exp(-((distance / blurred) ** 2))


def window(t: np.ndarray, low: Coordinate, high: Coordinate, ramp: float) -> np.ndarray:
    """1 inside [low, high], fading linearly to 0 over `ramp` outside."""
    return np.clip((t - low) / ramp + 1, 0, 1) * np.clip((high - t) / ramp + 1, 0, 1)


def paint(canvas: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` over a (B, 3, H, W) canvas (view) with a (B, H, W) coverage `alpha`, in place."""
    change = np.subtract(colour, canvas, dtype=np.float32)
    change *= alpha[:, None]
    canvas += change

