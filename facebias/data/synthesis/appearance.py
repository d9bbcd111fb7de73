"""Every per-person drawing parameter — geometry, skin, hair, age cues, expression, scene — drawn from a person.

Age cues are where the bias lives: wrinkles and grey hair start later on Asian and Afro-American faces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WRINKLE_ONSET_AGE = {"caucasian": 28.0, "asian": 34.0, "afroamerican": 38.0}
"""Mean age at which wrinkles start to deepen (individual sd 4 years): later on darker, photo-protected skin."""
GREYING_ONSET_AGE = {"caucasian": 35.0, "asian": 39.0, "afroamerican": 45.0}
"""Mean age at which hair starts to grey (individual sd 5 years), after Tobin & Paus' population estimates."""
MELANIN = {"caucasian": (0.12, 0.07), "asian": (0.30, 0.07), "afroamerican": (0.72, 0.08)}
"""Per ethnicity: (mean, sd) of the skin-tone mix between a light and a dark skin colour."""

LIGHT_SKIN = np.array([0.97, 0.82, 0.72])
DARK_SKIN = np.array([0.33, 0.21, 0.15])
SILVER_HAIR = np.array([0.82, 0.82, 0.83])
CAUCASIAN_HAIR = np.array(
    [[0.78, 0.64, 0.40], [0.52, 0.36, 0.22], [0.28, 0.18, 0.11], [0.10, 0.08, 0.07], [0.60, 0.30, 0.15]]
)
CAUCASIAN_HAIR_P = np.array([0.2, 0.3, 0.3, 0.12, 0.08])
DARK_HAIR = np.array([0.08, 0.07, 0.065])

Params = dict[str, np.ndarray]
"""Per-person drawing parameters by name: arrays of shape (N,) or (N, 3) for colours."""


def draw_face_params(attributes: pd.DataFrame, rng: np.random.Generator) -> Params:
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

