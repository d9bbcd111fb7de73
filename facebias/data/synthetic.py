"""The embedded synthetic dataset: deterministic, APPA-REAL-like stylised face crops rendered with numpy.

Every person gets a gender, ethnicity, expression and age group sampled independently from the marginals of
the starting kit's training split (SPEC.md), a true age within the age group, and an apparent-age label
(true age plus rater noise). The image encodes the true age through face proportions (children: eyes lower
and larger, rounder face, larger forehead), wrinkles (forehead lines, crow's feet, under-eye and nasolabial
lines) deepening past an onset age, greying hair and, for men, a receding hairline. Skin tone follows
ethnicity, hair length and jaw shape follow gender, mouth curvature, open smile and brows follow expression;
pose, lighting, background, clothes and pixel noise are nuisances.

The bias mechanism: age cues are not equally visible in every group. Wrinkles darken the skin
multiplicatively, so the same relative depth is a smaller pixel contrast on darker skin (and sinks further
into the pixel noise); wrinkles and grey hair also start later on Asian and later still on Afro-American
faces. Smiling adds crow's feet and nasolabial folds that look like age lines, 'other' expressions raise or
knit the brows (forehead and frown lines) and distort the face, and a fringe (more often on women) hides the
forehead lines. Together with the imbalanced marginals (3 % Afro-American, 4 % 'other' expression, 4 % over
60), a model trained on this data is expected to be less accurate on the minority groups.
"""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from facebias.data.dataset import ATTRIBUTE_COLUMNS, SPLIT_NAMES, Dataset, Split
from facebias.errors import ConfigError

GENERATOR_VERSION = 1
"""Bumped whenever sampling or rendering changes, so stale caches are not reused."""

DESCRIPTION = (
    "Synthetic APPA-REAL-like face crops (stylised, rendered with numpy). Attributes and age groups follow the "
    "starting kit's training marginals; the label is the true age plus rater noise. Age shows as face "
    "proportions, wrinkles, grey hair and a receding hairline. Built-in bias: wrinkles darken skin "
    "multiplicatively (less contrast on darker skin) and start later on Asian and Afro-American faces, smiles "
    "and 'other' expressions add age-like lines, fringes hide forehead lines. For testing the pipeline and "
    "studying bias mechanics only: no substitute for APPA-REAL."
)

MARGINAL_COUNTS: dict[str, dict[str, int]] = {
    "age_group": {"<20": 796, "20-39": 2389, "40-59": 732, ">=60": 148},
    "gender": {"male": 2068, "female": 1997},
    "ethnicity": {"caucasian": 3522, "asian": 424, "afroamerican": 119},
    "expression": {"neutral": 1404, "slightlyhappy": 1784, "happy": 712, "other": 165},
}
"""Training-split counts of SPEC.md: the proportions every split is sampled from."""

TRUE_AGE_SHAPES: dict[str, tuple[float, float, float, float]] = {
    "<20": (3.0, 19.99, 1.5, 1.2),
    "20-39": (20.0, 39.99, 1.3, 1.7),
    "40-59": (40.0, 59.99, 1.1, 1.4),
    ">=60": (60.0, 90.0, 1.1, 2.2),
}
"""Per age group: (lowest, highest, beta a, beta b) of the true age within the group."""

WRINKLE_ONSET_AGE = {"caucasian": 28.0, "asian": 34.0, "afroamerican": 38.0}
"""Mean age at which wrinkles start to deepen (individual sd 4 years): later on darker, photo-protected skin."""
GREYING_ONSET_AGE = {"caucasian": 35.0, "asian": 39.0, "afroamerican": 45.0}
"""Mean age at which hair starts to grey (individual sd 5 years), after Tobin & Paus' population estimates."""
MELANIN = {"caucasian": (0.12, 0.07), "asian": (0.30, 0.07), "afroamerican": (0.72, 0.08)}
"""Per ethnicity: (mean, sd) of the skin-tone mix between a light and a dark skin colour."""

MIN_IMAGE_SIZE = 32
MAX_IMAGE_SIZE = 1024
PIXELS_PER_BATCH = 1 << 19
"""Images are rendered in batches of about this many pixels (fits the CPU caches, bounds memory)."""

LIGHT_SKIN = np.array([0.97, 0.82, 0.72])
DARK_SKIN = np.array([0.33, 0.21, 0.15])
SILVER_HAIR = np.array([0.82, 0.82, 0.83])
CAUCASIAN_HAIR = np.array(
    [[0.78, 0.64, 0.40], [0.52, 0.36, 0.22], [0.28, 0.18, 0.11], [0.10, 0.08, 0.07], [0.60, 0.30, 0.15]]
)
CAUCASIAN_HAIR_P = np.array([0.2, 0.3, 0.3, 0.12, 0.08])
DARK_HAIR = np.array([0.08, 0.07, 0.065])
SCLERA = np.array([0.93, 0.91, 0.88], dtype=np.float32).reshape(3, 1, 1)
MOUTH_INSIDE = np.array([0.25, 0.07, 0.07], dtype=np.float32).reshape(3, 1, 1)
TEETH = np.array([0.92, 0.90, 0.85], dtype=np.float32).reshape(3, 1, 1)
LIP_TINT = np.array([0.80, 0.52, 0.52], dtype=np.float32).reshape(3, 1, 1)

Params = dict[str, np.ndarray]
"""Per-person drawing parameters by name: arrays of shape (N,) or (N, 3) for colours."""


def load_synthetic(
    n_train: int = 4065,
    n_valid: int = 1482,
    n_test: int = 1978,
    image_size: int = 64,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> Dataset:
    """The synthetic dataset, generated on first use and then loaded from the on-disk cache.

    Each split has its own sub-seed of `seed`, so changing one split's size leaves the others unchanged.
    `cache_dir=None` means `$FACEBIAS_CACHE/synthetic` (default `~/.cache/facebias/synthetic`).
    """
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    for split_name, n in sizes.items():
        _check_int(f"n_{split_name}", n, 1, None)
    _check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    _check_int("seed", seed, 0, None)
    path = cache_path(cache_dir, n_train, n_valid, n_test, image_size, seed)
    if path.exists():
        cached = _read_cache(path, sizes, image_size)
        if cached is not None:
            if progress:
                print(f"loaded synthetic data from cache {path}", file=sys.stderr)
            return cached
    split_rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(SPLIT_NAMES))]
    splits = {
        name: generate_split(sizes[name], image_size, rng, progress_label=name if progress else None)
        for name, rng in zip(SPLIT_NAMES, split_rngs, strict=True)
    }
    try:
        _write_cache(path, splits)
    except OSError as error:
        warnings.warn(f"could not write the synthetic data cache {path} ({error}); continuing without it", stacklevel=2)
    else:
        if progress:
            print(f"saved synthetic data to cache {path}", file=sys.stderr)
    return _dataset(splits)


def generate_split(n: int, image_size: int, rng: np.random.Generator, progress_label: str | None = None) -> Split:
    """One split of `n` synthetic faces of `image_size` pixels; prints progress when `progress_label` is set."""
    _check_int("n", n, 1, None)
    _check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    attributes = sample_attributes(n, rng)
    ages = sample_apparent_ages(attributes["true_age"].to_numpy(), rng)
    images = render_faces(attributes, image_size, rng, progress_label)
    return Split.build(images, ages, attributes)


def cache_path(
    cache_dir: str | os.PathLike | None, n_train: int, n_valid: int, n_test: int, image_size: int, seed: int
) -> Path:
    """The cache file of one parameter set (all generator parameters and GENERATOR_VERSION are in its name)."""
    if cache_dir is None:
        cache_dir = Path(os.environ.get("FACEBIAS_CACHE", "~/.cache/facebias")) / "synthetic"
    name = f"synthetic_v{GENERATOR_VERSION}_seed{seed}_{image_size}px_{n_train}-{n_valid}-{n_test}.npz"
    return Path(cache_dir).expanduser() / name


# ---------------------------------------------------------------- sampling


def sample_attributes(n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Gender, ethnicity, expression (independent draws from MARGINAL_COUNTS) and a true age per person."""
    drawn = {column: _draw_categories(MARGINAL_COUNTS[column], n, rng) for column in MARGINAL_COUNTS}
    true_age = _sample_true_ages(drawn.pop("age_group"), rng)
    frame = pd.DataFrame({column: drawn[column] for column in ATTRIBUTE_COLUMNS})
    frame["true_age"] = true_age.astype(np.float32)
    return frame


def sample_apparent_ages(true_ages: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apparent-age labels: true age plus rater noise (sd 1.5 years + 3 % of the age), clipped to [1, 100]."""
    true_ages = np.asarray(true_ages, dtype=float)
    noise = rng.normal(0.0, 1.5 + 0.03 * true_ages)
    return np.clip(true_ages + noise, 1.0, 100.0).astype(np.float32)


def _draw_categories(counts: dict[str, int], n: int, rng: np.random.Generator) -> np.ndarray:
    values = np.array(list(counts), dtype=object)
    weights = np.array(list(counts.values()), dtype=float)
    return rng.choice(values, size=n, p=weights / weights.sum())


def _sample_true_ages(age_groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ages = np.empty(len(age_groups))
    for group, (low, high, shape_a, shape_b) in TRUE_AGE_SHAPES.items():
        members = age_groups == group
        ages[members] = low + (high - low) * rng.beta(shape_a, shape_b, size=int(members.sum()))
    return ages


# ---------------------------------------------------------------- per-person appearance


def _draw_face_params(attributes: pd.DataFrame, rng: np.random.Generator) -> Params:
    """Every per-person drawing parameter (geometry, colours, age cues, expression, scene), float32 arrays."""
    age = attributes["true_age"].to_numpy(dtype=float)
    male = (attributes["gender"] == "male").to_numpy(dtype=float)
    ethnicity = attributes["ethnicity"].to_numpy()
    expression = attributes["expression"].to_numpy()
    params = {
        **_draw_geometry(age, male, rng),
        **_draw_skin(ethnicity, rng),
        **_draw_hair(age, male, ethnicity, rng),
        **_draw_wrinkles(age, ethnicity, rng),
        **_draw_expression(expression, rng),
        **_draw_scene(len(attributes), rng),
    }
    return {key: value.astype(np.float32) for key, value in params.items()}


def _childhood(age: np.ndarray) -> np.ndarray:
    """1 for a 3-year-old, falling linearly to 0 at 16: how child-like the face proportions are."""
    return np.clip((16.0 - age) / 13.0, 0.0, 1.0)


def _draw_geometry(age: np.ndarray, male: np.ndarray, rng: np.random.Generator) -> Params:
    n = len(age)
    child = _childhood(age)
    senior = np.clip((age - 50.0) / 35.0, 0.0, 1.0)
    female_taper = 0.22 - 0.12 * male
    return {
        "child": child,
        "head_width": 0.39 + 0.035 * male + 0.03 * child + rng.normal(0, 0.015, n),
        "head_height": 0.53 - 0.06 * child + rng.normal(0, 0.015, n),
        "jaw_taper": female_taper * (1 - child) + 0.06 * child - 0.06 * senior + rng.normal(0, 0.03, n),
        "eye_level": -0.05 + 0.17 * child + rng.normal(0, 0.02, n),
        "eye_size": (0.15 + 0.06 * child) * (1 - 0.12 * senior) * np.exp(rng.normal(0, 0.06, n)),
        "male": male,
    }


def _draw_skin(ethnicity: np.ndarray, rng: np.random.Generator) -> Params:
    n = len(ethnicity)
    mean = np.array([MELANIN[e][0] for e in ethnicity])
    sd = np.array([MELANIN[e][1] for e in ethnicity])
    melanin = np.clip(rng.normal(mean, sd), 0.0, 1.0)[:, None]
    skin = LIGHT_SKIN + (DARK_SKIN - LIGHT_SKIN) * melanin
    skin += (ethnicity == "asian")[:, None] * np.array([0.0, 0.015, -0.05])
    skin[:, 0] += rng.normal(0, 0.02, n)
    iris_blue = (ethnicity == "caucasian") & (rng.random(n) < 0.35)
    iris = np.where(iris_blue[:, None], [0.30, 0.45, 0.60], [0.25, 0.15, 0.08])
    return {"skin_rgb": np.clip(skin, 0.0, 1.0), "iris_rgb": iris}


def _draw_hair(age: np.ndarray, male: np.ndarray, ethnicity: np.ndarray, rng: np.random.Generator) -> Params:
    n = len(age)
    caucasian = ethnicity == "caucasian"
    palette = CAUCASIAN_HAIR[rng.choice(len(CAUCASIAN_HAIR), size=n, p=CAUCASIAN_HAIR_P)]
    palette = palette + (CAUCASIAN_HAIR[0] - palette) * 0.3 * _childhood(age)[:, None]
    base = np.where(caucasian[:, None], palette, DARK_HAIR) * np.exp(rng.normal(0, 0.1, (n, 1)))
    onset = np.array([GREYING_ONSET_AGE[e] for e in ethnicity]) + rng.normal(0, 5.0, n)
    greyness = np.clip((age - onset) / 25.0, 0.0, 1.0)[:, None] ** 0.9
    female = 1.0 - male
    recession = male * np.clip((age - 30.0) / 40.0, 0.0, 1.0) * rng.beta(2.0, 2.0, n)
    return {
        "hair_rgb": np.clip(base + (SILVER_HAIR - base) * greyness, 0.0, 1.0),
        "brow_rgb": np.clip(base + (SILVER_HAIR - base) * 0.6 * greyness, 0.0, 1.0),
        "hair_length": np.where(male > 0, rng.beta(1.2, 6.0, n), rng.beta(4.0, 2.0, n)),
        "fringe": (rng.random(n) < 0.12 + 0.23 * female).astype(float),
        "recession": recession,
        "curl": (ethnicity == "afroamerican").astype(float),
        "hair_volume": np.where(ethnicity == "afroamerican", 0.07, 0.02) + rng.uniform(0.0, 0.03, n),
    }


def _draw_wrinkles(age: np.ndarray, ethnicity: np.ndarray, rng: np.random.Generator) -> Params:
    onset = np.array([WRINKLE_ONSET_AGE[e] for e in ethnicity]) + rng.normal(0, 4.0, len(age))
    depth = np.clip((age - onset) / 35.0, 0.0, None) * rng.lognormal(0.0, 0.25, len(age))
    return {"wrinkle_depth": depth}


def _draw_expression(expression: np.ndarray, rng: np.random.Generator) -> Params:
    n = len(expression)
    smile_mean = pd.Series(expression).map({"neutral": 0.0, "slightlyhappy": 0.5, "happy": 1.0, "other": -0.3})
    other = expression == "other"
    happy = expression == "happy"
    surprise = other * rng.random(n)
    grimace = other * (1.0 - surprise)
    smile = smile_mean.to_numpy(dtype=float) + rng.normal(0, 0.12, n) + other * rng.normal(0, 0.25, n)
    return {
        "smile": smile,
        "mouth_open": happy * rng.uniform(0.5, 1.0, n) + surprise * rng.uniform(0.3, 1.0, n),
        "teeth": happy.astype(float),
        "surprise": surprise,
        "grimace": grimace,
        "brow_raise": 0.9 * surprise - 0.5 * grimace + rng.normal(0, 0.05, n),
        "mouth_tilt": grimace * rng.normal(0, 0.25, n),
    }


def _draw_scene(n: int, rng: np.random.Generator) -> Params:
    colourful = rng.uniform(0.1, 0.9, (n, 3))
    background = colourful + (colourful.mean(axis=1, keepdims=True) - colourful) * rng.uniform(0.3, 0.9, (n, 1))
    return {
        "centre_x": rng.normal(0, 0.04, n),
        "centre_y": rng.normal(-0.06, 0.04, n),
        "scale": 1.1 * np.exp(rng.normal(0, 0.05, n)),
        "angle": rng.normal(0, 0.08, n),
        "light_gain": rng.uniform(0.75, 1.15, n),
        "light_dx": rng.normal(0, 0.2, n),
        "light_dy": rng.normal(0, 0.12, n),
        "tint_rgb": 1.0 + rng.normal(0, 0.04, (n, 3)),
        "background_rgb": background,
        "background2_rgb": np.clip(background + rng.normal(0, 0.15, (n, 3)), 0.0, 1.0),
        "background_angle": rng.uniform(0, np.pi, n),
        "texture_angle": rng.uniform(0, np.pi, n),
        "texture_frequency": rng.uniform(2.0, 9.0, n),
        "texture_phase": rng.uniform(0, 2 * np.pi, n),
        "texture_amplitude": rng.uniform(0.0, 0.08, n),
        "clothes_rgb": rng.uniform(0.05, 0.85, (n, 3)),
        "noise_sd": rng.uniform(0.01, 0.035, n),
    }


# ---------------------------------------------------------------- rendering


def render_faces(
    attributes: pd.DataFrame, image_size: int, rng: np.random.Generator, progress_label: str | None = None
) -> np.ndarray:
    """Render one uint8 RGB face crop (image_size x image_size) per row of `attributes` (needs true_age)."""
    params = _draw_face_params(attributes, rng)
    n = len(attributes)
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    batch = max(1, PIXELS_PER_BATCH // (image_size * image_size))
    next_report = 0.1
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        batch_params = {key: value[start:stop] for key, value in params.items()}
        images[start:stop] = _render_batch(batch_params, image_size, rng)
        if progress_label is not None and (stop / n >= next_report or stop == n):
            _report_progress(progress_label, stop, n)
            next_report = np.floor(stop / n * 10 + 1) / 10
    return images


def _report_progress(label: str, done: int, total: int) -> None:
    ending = "\n" if done == total or not sys.stderr.isatty() else "\r"
    message = f"generating synthetic {label} split: {done / total:4.0%} ({done}/{total})"
    print(message, end=ending, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Region:
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
class _Frame:
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
    def of(cls, p: Params, u: np.ndarray, v: np.ndarray) -> _Frame:
        du, dv = u - p["centre_x"], v - p["centre_y"]
        cos, sin, scale = np.cos(p["angle"]), np.sin(p["angle"]), p["scale"]
        x = (cos * du + sin * dv) / scale
        y = (cos * dv - sin * du) / scale
        pixel = 2.0 / (u.shape[-1] * scale)
        return cls(x, y, pixel, p["centre_x"], p["centre_y"], cos, sin, scale)

    def region(self, x_low, x_high, y_low, y_high) -> _Region:
        """The smallest pixel rectangle holding this face-coordinate box in every image, plus 3 pixels."""
        size = self.x.shape[-1]
        corners_x = np.stack(np.broadcast_arrays(x_low, x_high, x_low, x_high))
        corners_y = np.stack(np.broadcast_arrays(y_low, y_low, y_high, y_high))
        u = self.centre_x + self.scale * (self.cos * corners_x - self.sin * corners_y)
        v = self.centre_y + self.scale * (self.sin * corners_x + self.cos * corners_y)
        cols = _pixel_span(u.min(), u.max(), size)
        rows = _pixel_span(v.min(), v.max(), size)
        return _Region(rows, cols, self.x[:, rows, cols], self.y[:, rows, cols], self.pixel)


def _pixel_span(low: float, high: float, size: int) -> slice:
    first = int(np.clip(np.floor((low + 1) / 2 * size) - 3, 0, size))
    last = int(np.clip(np.ceil((high + 1) / 2 * size) + 3, first, size))
    return slice(first, last)


def _render_batch(params: Params, size: int, rng: np.random.Generator) -> np.ndarray:
    """Composite back to front: background, body, hair behind, head with shading and wrinkles, features."""
    p = {key: value.reshape(*value.shape, 1, 1) for key, value in params.items()}
    u, v = _pixel_grid(size)
    frame = _Frame.of(p, u, v)
    g = _face_layout(p)
    canvas = _background(p, u, v)
    _paint_body(canvas, p, g, frame)
    _paint_hair_behind(canvas, p, g, frame)
    _paint_head(canvas, p, g, frame)
    _paint_eyes(canvas, p, g, frame)
    _paint_brows(canvas, p, g, frame)
    _paint_nose(canvas, p, g, frame)
    _paint_mouth(canvas, p, g, frame)
    _paint_hair_front(canvas, p, g, frame)
    return _expose(canvas, p, u, v, rng)


def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1], x to the right and y downwards, shaped (1, size, size)."""
    centres = ((np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1).astype(np.float32)
    v, u = np.meshgrid(centres, centres, indexing="ij")
    return u[None], v[None]


def _face_layout(p: Params) -> Params:
    """Where the features sit (per image, in face coordinates): children have eyes lower and larger."""
    a = p["head_width"]
    b = p["head_height"] * (1 + 0.08 * p["surprise"] * p["mouth_open"])
    child = p["child"]
    eye_y = p["eye_level"] * b
    eye_rx = p["eye_size"] * a
    squint = 0.35 * np.clip(p["smile"], 0, None) - 0.35 * p["surprise"] + 0.35 * p["grimace"]
    eye_ry = 0.55 * eye_rx * np.clip(1 - squint, 0.3, None)
    nose_y = eye_y + (0.40 - 0.12 * child) * b
    mouth_y = nose_y + (0.22 - 0.04 * child) * b + 0.05 * b * p["surprise"] * p["mouth_open"]
    return {
        "a": a,
        "b": b,
        "eye_x": (0.42 + 0.03 * child) * a,
        "eye_y": eye_y,
        "eye_rx": eye_rx,
        "eye_ry": eye_ry,
        "brow_y": eye_y - eye_ry - (0.10 + 0.06 * p["brow_raise"]) * b,
        "nose_y": nose_y,
        "mouth_y": mouth_y,
        "mouth_w": (0.36 - 0.06 * child) * a * (1 + 0.2 * np.clip(p["smile"], 0, None)),
        "hairline_y": -(0.55 + 0.3 * p["recession"]) * b,
        "hair_x": a + 0.03 + p["hair_volume"],
        "hair_y": b + 0.04 + p["hair_volume"],
    }


def _coverage(signed_distance: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of a shape from its signed distance (negative inside), one pixel of ramp."""
    return np.clip(0.5 - signed_distance / pixel, 0.0, 1.0)


def _ellipse_distance(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse."""
    radius = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return (radius - 1) * np.minimum(rx, ry)


def _line(distance: np.ndarray, width: float, pixel: np.ndarray) -> np.ndarray:
    """Profile of a thin dark line: lines thinner than a pixel blur out (wider, fainter), as when downscaled."""
    blurred = np.sqrt(width**2 + pixel**2)
    return (width / blurred) * np.exp(-((distance / blurred) ** 2))


def _window(t: np.ndarray, low, high, ramp) -> np.ndarray:
    """1 inside [low, high], fading linearly to 0 over `ramp` outside."""
    return np.clip((t - low) / ramp + 1, 0, 1) * np.clip((high - t) / ramp + 1, 0, 1)


def _paint(canvas: np.ndarray, coverage: np.ndarray, colour: np.ndarray) -> None:
    """Blend `colour` over a (B, 3, H, W) canvas (view) with a (B, H, W) coverage, in place."""
    change = np.subtract(colour, canvas, dtype=np.float32)
    change *= coverage[:, None]
    canvas += change


def _background(p: Params, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A two-colour gradient with a faint wave texture, shaped (B, 3, S, S)."""
    along = u * np.cos(p["background_angle"]) + v * np.sin(p["background_angle"])
    across = u * np.cos(p["texture_angle"]) + v * np.sin(p["texture_angle"])
    texture = p["texture_amplitude"] * np.sin(p["texture_frequency"] * np.pi * across + p["texture_phase"])
    gradient = 0.5 + 0.5 * along
    first, second = p["background_rgb"], p["background2_rgb"]
    return (first + (second - first) * gradient[:, None] + texture[:, None]).astype(np.float32)


def _paint_body(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    neck_half_width = (0.2 + 0.03 * p["male"]) * g["a"] / 0.4
    neck = frame.region(-neck_half_width, neck_half_width, 0.2 * g["b"], 3.0)
    cover = _coverage(np.abs(neck.x) - neck_half_width, neck.pixel) * _coverage(0.2 * g["b"] - neck.y, neck.pixel)
    _paint(neck.of(canvas), cover, p["skin_rgb"] * 0.8)
    body = frame.region(-3.0, 3.0, g["b"] + 0.2, 3.0)
    collar = g["b"] + 0.22 + 0.15 * body.x**2 + 0.9 * np.clip(0.22 - np.abs(body.x), 0, None)
    _paint(body.of(canvas), _coverage(collar - body.y, body.pixel), p["clothes_rgb"])


def _hair_colour(p: Params, r: _Region, shade: float) -> np.ndarray:
    """Hair colour with strands (straight) or a fine curl pattern (Afro-textured hair)."""
    straight = np.sin(70 * r.x + 6 * np.sin(9 * r.y))
    curly = np.sin(55 * r.x) * np.sin(55 * r.y)
    texture = shade * (1 + 0.06 * (straight + p["curl"] * (curly - straight)))
    return p["hair_rgb"] * texture[:, None]


def _paint_hair_behind(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Hair behind the head: long hair falls past the ears down to `hair_end`."""
    hair_end = (-0.2 + 1.8 * p["hair_length"]) * g["b"]
    r = frame.region(-g["hair_x"], g["hair_x"], -0.03 - g["hair_y"], np.maximum(hair_end, 0.0))
    outline = _ellipse_distance(r.x, r.y, 0.0, -0.03, g["hair_x"], g["hair_y"])
    sides = np.maximum(np.abs(r.x) - g["hair_x"], -r.y)
    mask = _coverage(np.minimum(outline, sides), r.pixel) * _coverage(r.y - hair_end, r.pixel)
    _paint(r.of(canvas), mask, _hair_colour(p, r, 0.8))


def _paint_hair_front(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """The hair cap down to the hairline (which recedes on older men), or down to the brows with a fringe."""
    a, b = g["a"], g["b"]
    r = frame.region(-g["hair_x"], g["hair_x"], -0.03 - g["hair_y"], 0.6 * b)
    outline = _ellipse_distance(r.x, r.y, 0.0, -0.03, g["hair_x"], g["hair_y"])
    hairline = np.where(p["fringe"] > 0, g["brow_y"] - 0.07 * b, g["hairline_y"]) + 0.35 * b * (r.x / a) ** 2
    mask = _coverage(outline, r.pixel) * _coverage(r.y - hairline, r.pixel)
    _paint(r.of(canvas), mask, _hair_colour(p, r, 1.0))


def _paint_head(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Ears, then the face: skin colour times shading (rounded edges) times wrinkle lines."""
    a, b = g["a"], g["b"]
    r = frame.region(-a - 0.08, a + 0.08, -b, b)
    ear_y = 0.5 * (g["eye_y"] + g["nose_y"])
    ears = _coverage(_ellipse_distance(np.abs(r.x), r.y, 0.97 * a, ear_y, 0.07, 0.13 * b), r.pixel)
    _paint(r.of(canvas), ears, p["skin_rgb"] * 0.88)
    below_centre = np.clip(r.y / b, 0.0, 1.0)
    width = a * (1 - p["jaw_taper"] * below_centre**2)
    radius = np.sqrt((r.x / width) ** 2 + (r.y / b) ** 2)
    head = _coverage((radius - 1) * a, r.pixel)
    darkening = np.zeros_like(frame.x)
    _add_wrinkles(darkening, p, g, frame)
    shading = (1 - 0.25 * np.clip(radius, 0, 1) ** 4) * (1 - np.clip(r.of(darkening), 0.0, 0.8))
    _paint(r.of(canvas), head, p["skin_rgb"] * shading[:, None])


def _add_wrinkles(darkening: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Add the relative darkening of age lines and expression lines, each family in its own region."""
    age = p["wrinkle_depth"]
    smile = np.clip(p["smile"], 0, None)
    families = (
        (0.35 * age + 0.35 * np.clip(p["brow_raise"], 0, None), _forehead_lines),
        (0.35 * age + 0.3 * smile + 0.2 * p["grimace"], _crows_feet),
        (0.3 * age, _under_eye_lines),
        (0.25 * age + 0.35 * smile + 0.2 * p["grimace"], _nasolabial_folds),
        (0.15 * age + 0.4 * p["grimace"], _frown_lines),
    )
    for depth, lines in families:
        region, pattern = lines(g, frame)
        target = region.of(darkening)
        target += depth * pattern


def _forehead_lines(g: Params, frame: _Frame) -> tuple[_Region, np.ndarray]:
    a, b = g["a"], g["b"]
    top, bottom = -0.5 * b, g["brow_y"] - 0.07 * b
    r = frame.region(-0.55 * a - 0.06, 0.55 * a + 0.06, top - 0.05, bottom + 0.05)
    period = 0.085 * b
    wavy = r.y + 0.012 * np.sin(9 * r.x)
    phase = wavy / period
    distance = np.abs(phase - np.round(phase)) * period
    band = _window(wavy, top, bottom, 0.03) * _window(r.x, -0.55 * a, 0.55 * a, 0.06)
    return r, band * _line(distance, 0.012, r.pixel)


def _crows_feet(g: Params, frame: _Frame) -> tuple[_Region, np.ndarray]:
    corner_x = g["eye_x"] + 1.1 * g["eye_rx"]
    r = frame.region(-corner_x - 0.14, corner_x + 0.14, g["eye_y"] - 0.14, g["eye_y"] + 0.14)
    dx = np.abs(r.x) - corner_x
    dy = r.y - g["eye_y"]
    radius = np.sqrt(dx**2 + dy**2)
    angle = np.arctan2(dy, dx)
    step = 0.4
    distance = radius * np.abs(np.sin(angle - np.round(angle / step) * step))
    fan = _window(angle, -0.6, 0.6, 0.2) * _window(radius, 0.015, 0.11, 0.02)
    return r, fan * _line(distance, 0.008, r.pixel)


def _under_eye_lines(g: Params, frame: _Frame) -> tuple[_Region, np.ndarray]:
    eye_x, eye_y, eye_rx = g["eye_x"], g["eye_y"], g["eye_rx"]
    arc_ry = 2.2 * g["eye_ry"] + 0.02
    r = frame.region(-eye_x - 1.4 * eye_rx, eye_x + 1.4 * eye_rx, eye_y - 0.02, eye_y + arc_ry + 0.03)
    ax = np.abs(r.x)
    arc = _ellipse_distance(ax, r.y, eye_x, eye_y, 1.3 * eye_rx, arc_ry)
    lower = _window(r.y - eye_y, 0.01, 1.0, 0.02) * _window(ax - eye_x, -eye_rx, eye_rx, 0.02)
    return r, lower * _line(arc, 0.01, r.pixel)


def _nasolabial_folds(g: Params, frame: _Frame) -> tuple[_Region, np.ndarray]:
    top, bottom = g["nose_y"] - 0.05 * g["b"], g["mouth_y"] + 0.1 * g["b"]
    x_top, x_bottom = 0.2 * g["a"], g["mouth_w"] + 0.05 * g["a"]
    margin = 0.1 * (bottom - top)
    r = frame.region(-x_bottom - 0.08, x_bottom + 0.08, top - margin, bottom + margin)
    t = (r.y - top) / (bottom - top)
    fold_x = x_top + (x_bottom - x_top) * (t + 0.6 * t * (1 - t))
    return r, _window(t, 0.0, 1.0, 0.1) * _line(np.abs(r.x) - fold_x, 0.01, r.pixel)


def _frown_lines(g: Params, frame: _Frame) -> tuple[_Region, np.ndarray]:
    top, bottom = g["brow_y"] - 0.08 * g["b"], g["brow_y"] + 0.05 * g["b"]
    half_width = 0.05 * g["a"]
    r = frame.region(-half_width - 0.02, half_width + 0.02, top - 0.02, bottom + 0.02)
    between_brows = _window(r.y, top, bottom, 0.02)
    return r, between_brows * _line(np.abs(r.x) - half_width, 0.008, r.pixel)


def _paint_eyes(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Sclera, iris and a dark upper lid line; eyes narrow when smiling and widen in surprise."""
    eye_x, eye_y, eye_rx, eye_ry = g["eye_x"], g["eye_y"], g["eye_rx"], g["eye_ry"]
    r = frame.region(-eye_x - eye_rx - 0.02, eye_x + eye_rx + 0.02, eye_y - eye_ry - 0.02, eye_y + eye_ry + 0.02)
    ax = np.abs(r.x)
    eye = _ellipse_distance(ax, r.y, eye_x, eye_y, eye_rx, eye_ry)
    eye_mask = _coverage(eye, r.pixel)
    view = r.of(canvas)
    _paint(view, eye_mask, SCLERA)
    iris = _ellipse_distance(ax, r.y, eye_x, eye_y, 0.6 * eye_rx, 0.6 * eye_rx)
    _paint(view, np.minimum(_coverage(iris, r.pixel), eye_mask), p["iris_rgb"])
    upper_lid = _line(np.abs(eye), 0.01, r.pixel) * _window(r.y - eye_y, -1.0, 0.3 * eye_ry, 0.01)
    _paint(view, 0.8 * upper_lid, np.float32(0.1) * p["brow_rgb"])


def _paint_brows(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Brows arched over the eyes; raised in surprise, inner ends pulled down in a grimace."""
    b = g["b"]
    half_length = 1.3 * g["eye_rx"] + 0.02
    thickness = (0.022 + 0.01 * p["male"]) * b
    reach = g["eye_x"] + half_length
    r = frame.region(-reach, reach, g["brow_y"] - thickness, g["brow_y"] + 0.1 * b + thickness)
    along = (np.abs(r.x) - g["eye_x"]) / half_length
    inner_drop = 0.06 * b * p["grimace"] * np.clip(-along, 0, 1)
    centre = g["brow_y"] + 0.04 * b * along**2 + inner_drop
    ends = _coverage((np.abs(along) - 1) * half_length, r.pixel)
    mask = _coverage(np.abs(r.y - centre) - thickness, r.pixel) * ends
    _paint(r.of(canvas), 0.9 * mask, p["brow_rgb"])


def _paint_nose(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Two nostrils and a faint shadow along one side of the ridge."""
    a, b = g["a"], g["b"]
    r = frame.region(-0.15 * a, 0.15 * a, g["eye_y"] + 0.07 * b, g["nose_y"] + 0.03 * b)
    view = r.of(canvas)
    nostrils = _ellipse_distance(np.abs(r.x), r.y, 0.09 * a, g["nose_y"], 0.045 * a, 0.025 * b)
    _paint(view, 0.7 * _coverage(nostrils, r.pixel), p["skin_rgb"] * 0.45)
    ridge = _line(r.x - 0.08 * a, 0.015, r.pixel) * _window(r.y, g["eye_y"] + 0.1 * b, g["nose_y"], 0.03)
    _paint(view, 0.25 * ridge, p["skin_rgb"] * 0.5)


def _paint_mouth(canvas: np.ndarray, p: Params, g: Params, frame: _Frame) -> None:
    """Lips along a curve (corners up when smiling, tilted in a grimace); open mouths show inside and teeth."""
    b, width = g["b"], g["mouth_w"]
    reach = 0.12 * b * np.abs(p["smile"]) + np.abs(p["mouth_tilt"]) * width + 0.2 * b
    r = frame.region(-width, width, g["mouth_y"] - reach, g["mouth_y"] + reach)
    view = r.of(canvas)
    t = np.clip(r.x / width, -1, 1)
    taper = np.sqrt(1 - t**2)
    upper = g["mouth_y"] - 0.12 * b * p["smile"] * t**2 + p["mouth_tilt"] * r.x
    opening = 0.14 * b * p["mouth_open"] * taper
    lower = upper + opening
    inside_x = _coverage(np.abs(r.x) - width, r.pixel)
    lip = (0.022 + 0.008 * (1 - p["male"])) * b * taper + 0.3 * r.pixel
    lips = inside_x * np.maximum(
        _coverage(np.abs(r.y - upper + 0.5 * lip) - 0.5 * lip, r.pixel),
        _coverage(np.abs(r.y - lower - 0.6 * lip) - 0.6 * lip, r.pixel),
    )
    _paint(view, 0.85 * lips, p["skin_rgb"] * LIP_TINT)
    mouth = inside_x * _coverage(upper - r.y, r.pixel) * _coverage(r.y - lower, r.pixel)
    _paint(view, mouth, MOUTH_INSIDE)
    _paint(view, mouth * p["teeth"] * _coverage(r.y - upper - 0.45 * opening, r.pixel), TEETH)
    _paint(view, 0.6 * inside_x * _line(r.y - upper, 0.008, r.pixel), MOUTH_INSIDE)


def _expose(canvas: np.ndarray, p: Params, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Lighting (gain, gradient, colour tint), pixel noise, quantisation to uint8, channels last."""
    light = p["light_gain"] * (1 + p["light_dx"] * u + p["light_dy"] * v)
    canvas *= light[:, None] * p["tint_rgb"]
    canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * p["noise_sd"][:, None]
    quantised = (np.clip(canvas, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return quantised.transpose(0, 2, 3, 1)


# ---------------------------------------------------------------- cache


def _dataset(splits: dict[str, Split]) -> Dataset:
    return Dataset(name="synthetic", splits=splits, description=DESCRIPTION)


def _write_cache(path: Path, splits: dict[str, Split]) -> None:
    """Write all splits to one uncompressed .npz, atomically (temp file in the same folder, then rename)."""
    arrays: dict[str, np.ndarray] = {}
    for name, split in splits.items():
        arrays[f"{name}_images"] = split.images
        arrays[f"{name}_ages"] = split.ages
        arrays[f"{name}_true_age"] = split.attributes["true_age"].to_numpy(dtype=np.float32)
        for column in ATTRIBUTE_COLUMNS:
            arrays[f"{name}_{column}"] = split.attributes[column].to_numpy().astype(str)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **arrays)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cache(path: Path, sizes: dict[str, int], image_size: int) -> Dataset | None:
    """The cached dataset, or None (with a warning) when the file is unreadable or does not fit the key."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            splits = {name: _split_from_cache(stored, name) for name in SPLIT_NAMES}
        for name, split in splits.items():
            expected = (sizes[name], image_size, image_size, 3)
            if split.images.shape != expected:
                raise ValueError(f"{name} images have shape {split.images.shape}, expected {expected}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        warnings.warn(f"synthetic data cache {path} is unreadable ({error}); regenerating it", stacklevel=3)
        return None
    return _dataset(splits)


def _split_from_cache(stored: np.lib.npyio.NpzFile, name: str) -> Split:
    attributes = pd.DataFrame({column: stored[f"{name}_{column}"].astype(object) for column in ATTRIBUTE_COLUMNS})
    attributes["true_age"] = stored[f"{name}_true_age"]
    return Split.build(stored[f"{name}_images"], stored[f"{name}_ages"], attributes)


def _check_int(name: str, value: object, low: int, high: int | None) -> None:
    valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not valid or value < low or (high is not None and value > high):
        accepted = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{name} must be an integer {accepted}, got {value!r}.")
