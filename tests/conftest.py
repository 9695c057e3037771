"""Shared fixtures: a real face and a place to write pictures, all made offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.faces import Face, read_face
from tests.helpers import ASTRONAUT, photo


@pytest.fixture(scope="session")
def astronaut_face() -> Face:
    return read_face(photo(ASTRONAUT))


@pytest.fixture
def save_png(tmp_path: Path):
    """Write an array as a PNG in the test's folder and return its path."""

    def save(array: np.ndarray, name: str = "picture.png") -> Path:
        path = tmp_path / name
        Image.fromarray(array).save(path)
        return path

    return save
