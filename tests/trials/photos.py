"""The trial photos the tests use: the real hard cases from tests/data and copies derived from the samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from avatar.faces import find_faces
from tests.helpers import ASTRONAUT, DATA, GRACE_HOPPER, photo

CAMERA = DATA / "camera.png"
CHELSEA = DATA / "chelsea.png"
COFFEE = DATA / "coffee.png"


def two_faces() -> np.ndarray:
    single = photo(ASTRONAUT)
    return np.concatenate([single, single], axis=1)


def darkened(factor: float) -> np.ndarray:
    return (photo(ASTRONAUT).astype(np.float32) * factor).astype(np.uint8)


def blurred(radius: float = 3.0) -> np.ndarray:
    return np.asarray(Image.fromarray(photo(ASTRONAUT)).filter(ImageFilter.GaussianBlur(radius)))


def tiny() -> np.ndarray:
    return photo(ASTRONAUT)[::4, ::4].copy()


def on_its_side() -> np.ndarray:
    return np.ascontiguousarray(np.rot90(photo(GRACE_HOPPER)))


def tilted(degrees: float = 25.0) -> np.ndarray:
    return np.asarray(Image.fromarray(photo(ASTRONAUT)).rotate(degrees, resample=Image.Resampling.BICUBIC))


def cheek_covered() -> np.ndarray:
    """Grace Hopper with a skin-free block (like a hand in a sleeve) over her left cheek."""
    picture = photo(GRACE_HOPPER).copy()
    x, y = find_faces(picture)[0].landmarks[50].astype(int)
    picture[y - 40 : y + 40, x - 50 : x + 30] = (40, 60, 150)
    return picture


def glasses_glare() -> np.ndarray:
    """Grace Hopper with white reflections over both eyes, as glasses give under a flash."""
    picture = photo(GRACE_HOPPER).copy()
    landmarks = find_faces(picture)[0].landmarks
    for ring in ((33, 133, 159, 145), (362, 263, 386, 374)):
        x, y = landmarks[list(ring)].mean(axis=0).astype(int)
        picture[y - 8 : y + 8, x - 14 : x + 14] = 255
    return picture


def save(array: np.ndarray, folder: Path, name: str) -> Path:
    path = folder / name
    Image.fromarray(array).save(path)
    return path
