"""One photo file in, one report out: read, look for the face by the shared face rules, measure, judge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.alignment import aligned_crop, close_up_square, face_square
from avatar.config import Settings
from avatar.errors import UserFacingError
from avatar.faces import look, refusal
from avatar.framing import Framing
from avatar.images import load_photo
from avatar.judging.checks import PhotoMeasures, measure_photo
from avatar.judging.verdict import Finding, Level, Thresholds, Verdict, judge


@dataclass(frozen=True)
class PhotoReport:
    """Everything the trials show about one photo before it speaks."""

    path: Path
    name: str
    verdict: Verdict
    measures: PhotoMeasures | None
    photo: np.ndarray | None
    crop: np.ndarray | None
    crop_box: np.ndarray | None

    @property
    def usable(self) -> bool:
        return self.verdict.usable


def crop_corners(crop_to_photo: np.ndarray, size: int) -> np.ndarray:
    """The engine's square as four photo points, to draw on thumbnails."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [size, size, 1], [0, size, 1]], dtype=np.float64)
    return corners @ crop_to_photo.T


def inspect_photo(
    path: Path, settings: Settings, name: str | None = None, framing: Framing = Framing.WHOLE
) -> PhotoReport:
    """Read and judge one photo file for `framing`; an unreadable file gets a 'Not usable' report, not an exception.

    The faces are found and refused by the same rules as a run's (avatar/faces.py), so a photo
    called usable here runs, and one a run refuses is refused here with the same sentence. The
    crop is the square a run of that framing animates.
    """
    name = name or path.name
    thresholds = Thresholds(min_face_pixels=settings.min_face_pixels, crop_size=settings.crop_size)
    try:
        photo = load_photo(path, settings.max_image_pixels, settings.max_image_bytes)
    except UserFacingError as error:
        finding = Finding(Level.BLOCK, "cannot read the picture", str(error), 100)
        verdict = Verdict(Level.BLOCK, f"Not usable: {finding.short}", (finding,), 0.0)
        return PhotoReport(path, name, verdict, None, None, None, None)
    sighting = look(photo)
    measures = measure_photo(photo, sighting.faces)
    verdict = judge(measures, refusal(sighting, settings.min_face_pixels), thresholds, framing)
    crop = box = None
    if sighting.faces:
        landmarks = sighting.faces[0].landmarks
        close_up = framing is Framing.CLOSE_UP
        square = close_up_square(landmarks, photo.shape) if close_up else face_square(landmarks)
        aligned = aligned_crop(photo, square, settings.crop_size)
        crop, box = aligned.image, crop_corners(aligned.crop_to_photo, settings.crop_size)
    return PhotoReport(path, name, verdict, measures, photo, crop, box)


def rank(reports: list[PhotoReport]) -> list[PhotoReport]:
    """Best first: usable before not usable, then by score, then by name for a stable order."""
    return sorted(reports, key=lambda r: (r.verdict.level == Level.BLOCK, -r.verdict.score, r.name))
