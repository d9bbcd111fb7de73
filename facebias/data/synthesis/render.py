"""Rendering: per-person parameters → uint8 RGB face crops, composited back to front in batches."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pandas as pd

from facebias.data.synthesis.appearance import Params, draw_face_params
from facebias.data.synthesis.canvas import Frame, pixel_grid
from facebias.data.synthesis.features import (
    face_layout,
    paint_body,
    paint_brows,
    paint_eyes,
    paint_hair_behind,
    paint_hair_front,
    paint_head,
    paint_mouth,
    paint_nose,
)
from facebias.progress import bar

PIXELS_PER_BATCH = 1 << 19
"""Images are rendered in batches of about this many pixels (fits the CPU caches, bounds memory)."""


def render_faces(
    attributes: pd.DataFrame, image_size: int, rng: np.random.Generator, progress_label: str | None = None
) -> np.ndarray:
    """Render one uint8 RGB face crop (image_size x image_size) per row of `attributes` (needs true_age)."""
    params = draw_face_params(attributes, rng)
    n = len(attributes)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    batch = max(1, PIXELS_PER_BATCH // (image_size * image_size))
    with bar(n, f"generating synthetic {progress_label} split", "face") if progress_label else nullcontext() as shown:
        for start in range(0, n, batch):
            stop = min(n, start + batch)
            batch_params = {key: value[start:stop] for key, value in params.items()}
            images[start:stop] = _render_batch(batch_params, image_size, rng)
            if shown is not None:
                shown.update(stop - start)
    return images


def _render_batch(params: Params, size: int, rng: np.random.Generator) -> np.ndarray:
    """Composite back to front: background, body, hair behind, head with shading and wrinkles, features."""
    p = {key: value.reshape(*value.shape, 1, 1) for key, value in params.items()}
    u, v = pixel_grid(size)
    frame = Frame.of(p, u, v)
    g = face_layout(p)
    canvas = _background(p, u, v)
    paint_body(canvas, p, g, frame)
    paint_hair_behind(canvas, p, g, frame)
    paint_head(canvas, p, g, frame)
    paint_eyes(canvas, p, g, frame)
    paint_brows(canvas, p, g, frame)
    paint_nose(canvas, p, g, frame)
    paint_mouth(canvas, p, g, frame)
    paint_hair_front(canvas, p, g, frame)
    return _expose(canvas, p, u, v, rng)


def _background(p: Params, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A two-colour gradient with a faint wave texture, shaped (B, 3, S, S)."""
    along = u * np.cos(p["background_angle"]) + v * np.sin(p["background_angle"])
    across = u * np.cos(p["texture_angle"]) + v * np.sin(p["texture_angle"])
    texture = p["texture_amplitude"] * np.sin(p["texture_frequency"] * np.pi * across + p["texture_phase"])
    gradient = 0.5 + 0.5 * along
    first, second = p["background_rgb"], p["background2_rgb"]
    return (first + (second - first) * gradient[:, None] + texture[:, None]).astype(np.float32)


def _expose(canvas: np.ndarray, p: Params, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gain, gradient, colour tint), pixel noise, quantisation to uint8, channels last."""
    light = p["light_gain"] * (1 + p["light_dx"] * u + p["light_dy"] * v)
    canvas *= light[:, None] * p["tint_rgb"]
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * p["noise_sd"][:, None]
    quantised = (np.clip(canvas, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return quantised.transpose(0, 2, 3, 1)
