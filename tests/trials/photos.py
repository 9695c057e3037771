"""The trial photos the tests use: the real hard cases from tests/data and copies derived from the samples."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from avatar.face_mesh import DetectedFace, find_faces
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


@functools.cache
def _sample(path: Path) -> tuple[np.ndarray, DetectedFace]:
    original = photo(path)
    return original, find_faces(original)[0]


def framed_copy(path: Path, face_width: int, frame: int = 480) -> np.ndarray:
    """A sample photo scaled so its face is `face_width` px wide, in a `frame` px square centred on the face.

    As if the same person were photographed nearer or farther with the same camera: grey
    fills the frame where the scaled photo does not reach.
    """
    original, face = _sample(path)
    scale = face_width / face.width
    size = (round(original.shape[1] * scale), round(original.shape[0] * scale))
    scaled = np.asarray(Image.fromarray(original).resize(size, Image.Resampling.LANCZOS))
    centre_x, centre_y = (face.landmarks.mean(axis=0) * scale).round().astype(int)
    top, left = centre_y - frame // 2, centre_x - frame // 2
    framed = np.full((frame, frame, 3), 128, np.uint8)
    y0, x0 = max(0, top), max(0, left)
    y1, x1 = min(scaled.shape[0], top + frame), min(scaled.shape[1], left + frame)
    framed[y0 - top : y1 - top, x0 - left : x1 - left] = scaled[y0:y1, x0:x1]
    return framed


def save(array: np.ndarray, folder: Path, name: str) -> Path:
    path = folder / name
    Image.fromarray(array).save(path)
    return path
