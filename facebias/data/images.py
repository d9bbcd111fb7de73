"""Decoding image files: JPEGs (any resolution) → uint8 RGB arrays of one square size, truncated files rejected."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

from facebias.data.validation import one_line
from facebias.progress import bar

MAX_DECODE_THREADS = 8


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 (H, W, 3) image resized to (size, size, 3) with Pillow's bilinear filter (area-like when shrinking)."""
    if image.shape[:2] == (size, size):
        return image
    resized = Image.fromarray(np.ascontiguousarray(image)).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def decode_images(paths: Sequence[Path], size: int, label: str) -> tuple[np.ndarray, dict[int, str]]:
    """Decode JPEGs into a (N, size, size, 3) uint8 RGB array (in a thread pool); also the failures, index → reason.

    A failed image leaves zeros in its slot. Progress: a bar on a terminal (`facebias.progress`).
    """
    images = np.zeros((len(paths), size, size, 3), dtype=np.uint8)

    def decode_into(index: int) -> str | None:
        try:
            images[index] = decode_image(paths[index], size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            return one_line(error)
        return None

    failures: dict[int, str] = {}
    workers = max(1, min(MAX_DECODE_THREADS, os.cpu_count() or 1))
    with (_truncated_images_rejected(), ThreadPoolExecutor(max_workers=workers) as pool,
          bar(len(paths), f"decoding {label} images") as shown):
        for index, reason in enumerate(pool.map(decode_into, range(len(paths)))):
            if reason is not None:
                failures[index] = reason
            shown.update(1)
    return images, failures


def decode_image(path: Path, size: int) -> np.ndarray:
    """One image file fully decoded (truncation raises OSError), as RGB uint8 resized to (size, size, 3)."""
    with Image.open(path) as image:
        image.load()
        rgb = image.convert("RGB")
    return resize_square(np.asarray(rgb, dtype=np.uint8), size)


@contextmanager
def _truncated_images_rejected() -> Iterator[None]:
    """Make Pillow raise on truncated files while decoding, whatever another library set globally."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved
