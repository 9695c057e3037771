"""A photo becomes a Face: found, measured with a 478-point mesh, and cropped square for the engines.

The landmark model lives in face_mesh.py and the crop's geometry in alignment.py; this module
decides whether the photo gives a Face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatar.alignment import alignment_square, crop_affine, to_crop_coordinates, warp_photo
from avatar.errors import UserFacingError
from avatar.face_mesh import DetectedFace, find_faces

# A second face at least this fraction of the largest one's width makes the photo ambiguous.
COMPETING_FACE_RATIO = 0.5


@dataclass(frozen=True)
class Face:
    """A face ready for the engines: the square crop, its mesh, and the way back into the photo."""

    photo: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray
    crop_to_photo: np.ndarray
    detected: DetectedFace
    notes: tuple[str, ...] = field(default=())

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])


def read_face(photo: np.ndarray, crop_size: int = 512, min_face_pixels: int = 64) -> Face:
    """Find the one face in `photo` and crop it for the engines, or say clearly why not."""
    faces = find_faces(photo)
    if not faces:
        raise UserFacingError(
            "No face was found in this picture. Please use a photo of one person, facing the camera, "
            "with the whole face visible."
        )
    main = faces[0]
    competing = [face for face in faces[1:] if face.width >= COMPETING_FACE_RATIO * main.width]
    if competing:
        raise UserFacingError(
            f"This picture shows {len(competing) + 1} faces. Please crop it to the one person who "
            "should speak, or choose a photo of one person."
        )
    if max(main.width, main.height) < min_face_pixels:
        raise UserFacingError(
            f"The face is only about {main.width:.0f} pixels wide; at least {min_face_pixels} are needed. "
            "Please use a closer or larger photo."
        )
    centre, side, angle = alignment_square(main.landmarks)
    crop_to_photo = crop_affine(centre, side, angle, crop_size)
    crop = warp_photo(photo, crop_to_photo, crop_size)
    notes = []
    if side / crop_size < 0.5:
        notes.append("The face is small in this photo, so the video will look softer.")
    return Face(
        photo=photo,
        crop=crop,
        landmarks=to_crop_coordinates(main.landmarks, crop_to_photo),
        crop_to_photo=crop_to_photo,
        detected=main,
        notes=tuple(notes),
    )
