"""Paths and loaders shared by the tests: real photos from assets/ and tests/data/."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.config import SAMPLE_FACES_DIR
from avatar.images import load_photo

DATA = Path(__file__).parent / "data"
ASTRONAUT = SAMPLE_FACES_DIR / "astronaut.png"
GRACE_HOPPER = SAMPLE_FACES_DIR / "grace_hopper.jpg"
COFFEE = DATA / "coffee.png"
LIMITS = {"max_pixels": 40_000_000, "max_bytes": 25_000_000}


def photo(path: Path) -> np.ndarray:
    return load_photo(path, **LIMITS)
