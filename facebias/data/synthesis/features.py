"""The parts of a face, painted onto a batch's canvas: body, hair, head with its wrinkles, eyes, brows, nose, mouth.

Wrinkles darken the skin multiplicatively, so the same depth is less contrast on darker skin; smiles and 'other'
expressions add age-like lines, and a fringe hides the forehead lines.
"""

from __future__ import annotations

import numpy as np

from facebias.data.synthesis.appearance import Params
from facebias.data.synthesis.canvas import Frame, Region, coverage, ellipse_distance, line, paint, window

SCLERA = np.array([0.93, 0.91, 0.88], dtype=np.float32).reshape(3, 1, 1)
MOUTH_INSIDE = np.array([0.25, 0.07, 0.07], dtype=np.float32).reshape(3, 1, 1)
TEETH = np.array([0.92, 0.90, 0.85], dtype=np.float32).reshape(3, 1, 1)
LIP_TINT = np.array([0.80, 0.52, 0.52], dtype=np.float32).reshape(3, 1, 1)


def face_layout(p: Params) -> Params:
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


def paint_body(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """The neck, then the clothes below a collar line."""
    neck_half_width = (0.2 + 0.03 * p["male"]) * g["a"] / 0.4
    neck = frame.region(-neck_half_width, neck_half_width, 0.2 * g["b"], 3.0)
    cover = coverage(np.abs(neck.x) - neck_half_width, neck.pixel) * coverage(0.2 * g["b"] - neck.y, neck.pixel)
    paint(neck.of(canvas), cover, p["skin_rgb"] * 0.8)
    body = frame.region(-3.0, 3.0, g["b"] + 0.2, 3.0)
    collar = g["b"] + 0.22 + 0.15 * body.x**2 + 0.9 * np.clip(0.22 - np.abs(body.x), 0, None)
    paint(body.of(canvas), coverage(collar - body.y, body.pixel), p["clothes_rgb"])


def _hair_colour(p: Params, r: Region, shade: float) -> np.ndarray:
    """Hair colour with strands (straight) or a fine curl pattern (Afro-textured hair)."""
    straight = np.sin(70 * r.x + 6 * np.sin(9 * r.y))
    curly = np.sin(55 * r.x) * np.sin(55 * r.y)
    texture = shade * (1 + 0.06 * (straight + p["curl"] * (curly - straight)))
    return p["hair_rgb"] * texture[:, None]


def paint_hair_behind(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """Hair behind the head: long hair falls past the ears down to `hair_end`."""
    hair_end = (-0.2 + 1.8 * p["hair_length"]) * g["b"]
    r = frame.region(-g["hair_x"], g["hair_x"], -0.03 - g["hair_y"], np.maximum(hair_end, 0.0))
    outline = ellipse_distance(r.x, r.y, 0.0, -0.03, g["hair_x"], g["hair_y"])
    sides = np.maximum(np.abs(r.x) - g["hair_x"], -r.y)
    mask = coverage(np.minimum(outline, sides), r.pixel) * coverage(r.y - hair_end, r.pixel)
    paint(r.of(canvas), mask, _hair_colour(p, r, 0.8))


def paint_hair_front(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """The hair cap down to the hairline (which recedes on older men), or down to the brows with a fringe."""
    a, b = g["a"], g["b"]
    r = frame.region(-g["hair_x"], g["hair_x"], -0.03 - g["hair_y"], 0.6 * b)
    outline = ellipse_distance(r.x, r.y, 0.0, -0.03, g["hair_x"], g["hair_y"])
    hairline = np.where(p["fringe"] > 0, g["brow_y"] - 0.07 * b, g["hairline_y"]) + 0.35 * b * (r.x / a) ** 2
    mask = coverage(outline, r.pixel) * coverage(r.y - hairline, r.pixel)
    paint(r.of(canvas), mask, _hair_colour(p, r, 1.0))


def paint_head(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """Ears, then the face: skin colour times shading (rounded edges) times wrinkle lines."""
    a, b = g["a"], g["b"]
    r = frame.region(-a - 0.08, a + 0.08, -b, b)
    ear_y = 0.5 * (g["eye_y"] + g["nose_y"])
    ears = coverage(ellipse_distance(np.abs(r.x), r.y, 0.97 * a, ear_y, 0.07, 0.13 * b), r.pixel)
    paint(r.of(canvas), ears, p["skin_rgb"] * 0.88)
    below_centre = np.clip(r.y / b, 0.0, 1.0)
    width = a * (1 - p["jaw_taper"] * below_centre**2)
    radius = np.sqrt((r.x / width) ** 2 + (r.y / b) ** 2)
    head = coverage((radius - 1) * a, r.pixel)
    darkening = np.zeros_like(frame.x)
    _add_wrinkles(darkening, p, g, frame)
    shading = (1 - 0.25 * np.clip(radius, 0, 1) ** 4) * (1 - np.clip(r.of(darkening), 0.0, 0.8))
    paint(r.of(canvas), head, p["skin_rgb"] * shading[:, None])


def _add_wrinkles(darkening: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
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


def _forehead_lines(g: Params, frame: Frame) -> tuple[Region, np.ndarray]:
    a, b = g["a"], g["b"]
    top, bottom = -0.5 * b, g["brow_y"] - 0.07 * b
    r = frame.region(-0.55 * a - 0.06, 0.55 * a + 0.06, top - 0.05, bottom + 0.05)
    period = 0.085 * b
    wavy = r.y + 0.012 * np.sin(9 * r.x)
    phase = wavy / period
    distance = np.abs(phase - np.round(phase)) * period
    band = window(wavy, top, bottom, 0.03) * window(r.x, -0.55 * a, 0.55 * a, 0.06)
    return r, band * line(distance, 0.012, r.pixel)


def _crows_feet(g: Params, frame: Frame) -> tuple[Region, np.ndarray]:
    corner_x = g["eye_x"] + 1.1 * g["eye_rx"]
    r = frame.region(-corner_x - 0.14, corner_x + 0.14, g["eye_y"] - 0.14, g["eye_y"] + 0.14)
    dx = np.abs(r.x) - corner_x
    dy = r.y - g["eye_y"]
    radius = np.sqrt(dx**2 + dy**2)
    angle = np.arctan2(dy, dx)
    step = 0.4
    distance = radius * np.abs(np.sin(angle - np.round(angle / step) * step))
    fan = window(angle, -0.6, 0.6, 0.2) * window(radius, 0.015, 0.11, 0.02)
    return r, fan * line(distance, 0.008, r.pixel)


def _under_eye_lines(g: Params, frame: Frame) -> tuple[Region, np.ndarray]:
    eye_x, eye_y, eye_rx = g["eye_x"], g["eye_y"], g["eye_rx"]
    arc_ry = 2.2 * g["eye_ry"] + 0.02
    r = frame.region(-eye_x - 1.4 * eye_rx, eye_x + 1.4 * eye_rx, eye_y - 0.02, eye_y + arc_ry + 0.03)
    ax = np.abs(r.x)
    arc = ellipse_distance(ax, r.y, eye_x, eye_y, 1.3 * eye_rx, arc_ry)
    lower = window(r.y - eye_y, 0.01, 1.0, 0.02) * window(ax - eye_x, -eye_rx, eye_rx, 0.02)
    return r, lower * line(arc, 0.01, r.pixel)


def _nasolabial_folds(g: Params, frame: Frame) -> tuple[Region, np.ndarray]:
    top, bottom = g["nose_y"] - 0.05 * g["b"], g["mouth_y"] + 0.1 * g["b"]
    x_top, x_bottom = 0.2 * g["a"], g["mouth_w"] + 0.05 * g["a"]
    margin = 0.1 * (bottom - top)
    r = frame.region(-x_bottom - 0.08, x_bottom + 0.08, top - margin, bottom + margin)
    t = (r.y - top) / (bottom - top)
    fold_x = x_top + (x_bottom - x_top) * (t + 0.6 * t * (1 - t))
    return r, window(t, 0.0, 1.0, 0.1) * line(np.abs(r.x) - fold_x, 0.01, r.pixel)


def _frown_lines(g: Params, frame: Frame) -> tuple[Region, np.ndarray]:
    top, bottom = g["brow_y"] - 0.08 * g["b"], g["brow_y"] + 0.05 * g["b"]
    half_width = 0.05 * g["a"]
    r = frame.region(-half_width - 0.02, half_width + 0.02, top - 0.02, bottom + 0.02)
    between_brows = window(r.y, top, bottom, 0.02)
    return r, between_brows * line(np.abs(r.x) - half_width, 0.008, r.pixel)


def paint_eyes(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """Sclera, iris and a dark upper lid line; eyes narrow when smiling and widen in surprise."""
    eye_x, eye_y, eye_rx, eye_ry = g["eye_x"], g["eye_y"], g["eye_rx"], g["eye_ry"]
    r = frame.region(-eye_x - eye_rx - 0.02, eye_x + eye_rx + 0.02, eye_y - eye_ry - 0.02, eye_y + eye_ry + 0.02)
    ax = np.abs(r.x)
    eye = ellipse_distance(ax, r.y, eye_x, eye_y, eye_rx, eye_ry)
    eye_mask = coverage(eye, r.pixel)
    view = r.of(canvas)
    paint(view, eye_mask, SCLERA)
    iris = ellipse_distance(ax, r.y, eye_x, eye_y, 0.6 * eye_rx, 0.6 * eye_rx)
    paint(view, np.minimum(coverage(iris, r.pixel), eye_mask), p["iris_rgb"])
    upper_lid = line(np.abs(eye), 0.01, r.pixel) * window(r.y - eye_y, -1.0, 0.3 * eye_ry, 0.01)
    paint(view, 0.8 * upper_lid, np.float32(0.1) * p["brow_rgb"])


def paint_brows(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """Brows arched over the eyes; raised in surprise, inner ends pulled down in a grimace."""
    b = g["b"]
    half_length = 1.3 * g["eye_rx"] + 0.02
    thickness = (0.022 + 0.01 * p["male"]) * b
    reach = g["eye_x"] + half_length
    r = frame.region(-reach, reach, g["brow_y"] - thickness, g["brow_y"] + 0.1 * b + thickness)
    along = (np.abs(r.x) - g["eye_x"]) / half_length
    inner_drop = 0.06 * b * p["grimace"] * np.clip(-along, 0, 1)
    centre = g["brow_y"] + 0.04 * b * along**2 + inner_drop
    ends = coverage((np.abs(along) - 1) * half_length, r.pixel)
    mask = coverage(np.abs(r.y - centre) - thickness, r.pixel) * ends
    paint(r.of(canvas), 0.9 * mask, p["brow_rgb"])


def paint_nose(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
    """Two nostrils and a faint shadow along one side of the ridge."""
    a, b = g["a"], g["b"]
    r = frame.region(-0.15 * a, 0.15 * a, g["eye_y"] + 0.07 * b, g["nose_y"] + 0.03 * b)
    view = r.of(canvas)
    nostrils = ellipse_distance(np.abs(r.x), r.y, 0.09 * a, g["nose_y"], 0.045 * a, 0.025 * b)
    paint(view, 0.7 * coverage(nostrils, r.pixel), p["skin_rgb"] * 0.45)
    ridge = line(r.x - 0.08 * a, 0.015, r.pixel) * window(r.y, g["eye_y"] + 0.1 * b, g["nose_y"], 0.03)
    paint(view, 0.25 * ridge, p["skin_rgb"] * 0.5)


def paint_mouth(canvas: np.ndarray, p: Params, g: Params, frame: Frame) -> None:
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
    inside_x = coverage(np.abs(r.x) - width, r.pixel)
    lip = (0.022 + 0.008 * (1 - p["male"])) * b * taper + 0.3 * r.pixel
    lips = inside_x * np.maximum(
        coverage(np.abs(r.y - upper + 0.5 * lip) - 0.5 * lip, r.pixel),
        coverage(np.abs(r.y - lower - 0.6 * lip) - 0.6 * lip, r.pixel),
    )
    paint(view, 0.85 * lips, p["skin_rgb"] * LIP_TINT)
    mouth = inside_x * coverage(upper - r.y, r.pixel) * coverage(r.y - lower, r.pixel)
    paint(view, mouth, MOUTH_INSIDE)
    paint(view, mouth * p["teeth"] * coverage(r.y - upper - 0.45 * opening, r.pixel), TEETH)
    paint(view, 0.6 * inside_x * line(r.y - upper, 0.008, r.pixel), MOUTH_INSIDE)
