"""One photo file in, one report out: read, find the face (trying harder when none shows), measure, judge."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from avatar.config import Settings
from avatar.errors import UserFacingError
from avatar.faces import DetectedFace, find_faces
from avatar.images import load_photo
from avatar.trials.checks import PhotoMeasures, engine_crop, measure_photo
from avatar.trials.verdict import Finding, Level, Thresholds, Verdict, judge

# Photos whose shorter side is below this are also searched at twice the size.
UPSCALE_BELOW = 640


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


def _enlarged(faces: list[DetectedFace], factor: float) -> list[DetectedFace]:
    return [DetectedFace(f.landmarks / factor, f.blendshapes, f.pose) for f in faces]


def detect(photo: np.ndarray) -> tuple[list[DetectedFace], bool]:
    """Faces in the photo, and whether a face showed only once the photo was turned (it is sideways).

    When none is found directly, a small photo is searched again at twice the size (small
    faces), then turned by a quarter either way, so the verdict can say what to fix.
    """
    faces = find_faces(photo)
    if not faces and min(photo.shape[:2]) < UPSCALE_BELOW:
        height, width = photo.shape[:2]
        larger = np.asarray(Image.fromarray(photo).resize((width * 2, height * 2), Image.Resampling.BICUBIC))
        faces = _enlarged(find_faces(larger), 2.0)
    if faces:
        return faces, False
    sideways = any(find_faces(np.ascontiguousarray(np.rot90(photo, turns))) for turns in (1, 3))
    return [], sideways


def crop_corners(crop_to_photo: np.ndarray, size: int) -> np.ndarray:
    """The engine's square as four photo points, to draw on thumbnails."""
    corners = np.array([[0, 0, 1], [size, 0, 1], [size, size, 1], [0, size, 1]], dtype=np.float64)
    return corners @ crop_to_photo.T


def inspect_photo(path: Path, settings: Settings, name: str | None = None) -> PhotoReport:
    """Read and judge one photo file; an unreadable file gets a 'Not usable' report, not an exception."""
    name = name or path.name
    thresholds = Thresholds(min_face_pixels=settings.min_face_pixels)
    try:
        photo = load_photo(path, settings.max_image_pixels, settings.max_image_bytes)
    except UserFacingError as error:
        finding = Finding(Level.BLOCK, "cannot read the picture", str(error), 100)
        verdict = Verdict(Level.BLOCK, f"Not usable: {finding.short}", (finding,), 0.0)
        return PhotoReport(path, name, verdict, None, None, None, None)
    faces, sideways = detect(photo)
    measures = measure_photo(photo, faces)
    verdict = judge(measures, sideways, thresholds)
    crop = box = None
    if faces:
        crop, crop_to_photo, _ = engine_crop(photo, faces[0], settings.crop_size)
        box = crop_corners(crop_to_photo, settings.crop_size)
    return PhotoReport(path, name, verdict, measures, photo, crop, box)


def rank(reports: list[PhotoReport]) -> list[PhotoReport]:
    """Best first: usable before not usable, then by score, then by name for a stable order."""
    return sorted(reports, key=lambda r: (r.verdict.level == Level.BLOCK, -r.verdict.score, r.name))
