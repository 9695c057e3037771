"""One set of face rules: which faces a photo shows, whether it can speak (and why not), and the Face it gives.

A run (`read_face`) and Photo trials (avatar/judging/inspection.py) both decide by these
rules, so a photo the trials call usable runs, and a photo a run refuses is refused in the
trials with the same sentence. The landmark model lives in face_mesh.py, the crop in alignment.py,
the choice between the whole photo and a close-up in framing.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from avatar.alignment import aligned_crop, close_up_square, face_square, to_crop_coordinates
from avatar.errors import UserFacingError
from avatar.face_mesh import DetectedFace, find_faces
from avatar.framing import Framing

# A face leaning further than this (roll, degrees) means the photo lies on its side.
SIDEWAYS_ROLL = 45.0
# A second face at least this fraction of the largest one's width makes the photo ambiguous.
COMPETING_FACE_RATIO = 0.5
# When no face shows, photos whose shorter side is below this are searched again, enlarged this many times.
UPSCALE_BELOW = 640
UPSCALE = 2
# A crop enlarged more than this many times (crop pixels per photo pixel) makes a visibly softer video.
SOFTER_ENLARGEMENT = 2.5
SOFTER_NOTE = "The face is small in this photo, so the video will look softer."
# A close-up with at least this share of its square past the photo's edges shows filled-in edges, and says so.
SHOWN_FILL = 0.01


@dataclass(frozen=True)
class Sighting:
    """The faces found in a photo, largest first, and whether a face showed only once the photo was turned."""

    faces: tuple[DetectedFace, ...]
    sideways: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why a photo cannot speak: `short` for a verdict line, `sentence` for the person who chose the photo."""

    short: str
    sentence: str


NO_FACE = Refusal(
    "no face found",
    "No face was found in this picture: the face may be too small, turned away or too dark, or the picture "
    "shows no person. Please use a photo of one person facing the camera, with the whole face visible.",
)
SIDEWAYS = Refusal("photo is on its side", "The photo is on its side: rotate the photo upright and try again.")


@dataclass(frozen=True)
class Face:
    """A face ready for the engines: the square crop, its mesh, the way back into the photo, and the framing.

    `filled` is the share of the square past the photo's edges (a neutral extension the engine sees);
    a whole-photo video never shows it, a close-up does.
    """

    photo: np.ndarray
    crop: np.ndarray
    landmarks: np.ndarray
    crop_to_photo: np.ndarray
    detected: DetectedFace
    notes: tuple[str, ...] = field(default=())
    framing: Framing = Framing.WHOLE
    filled: float = 0.0

    @property
    def size(self) -> int:
        return int(self.crop.shape[0])


def look(photo: np.ndarray) -> Sighting:
    """The faces in an RGB photo, trying harder when none shows.

    A small photo is searched again enlarged (the detector's windows then reach a face that
    is small in it); then the photo is turned a quarter either way, so that a photo lying on
    its side can be named rather than called faceless.
    """
    faces = find_faces(photo)
    if not faces and min(photo.shape[:2]) < UPSCALE_BELOW:
        faces = [face.scaled(1 / UPSCALE) for face in find_faces(_enlarged(photo, UPSCALE))]
    if faces:
        return Sighting(tuple(faces))
    turned = (np.ascontiguousarray(np.rot90(photo, turns)) for turns in (1, 3))
    return Sighting((), sideways=any(find_faces(picture) for picture in turned))


def _enlarged(photo: np.ndarray, factor: int) -> np.ndarray:
    height, width = photo.shape[:2]
    return np.asarray(Image.fromarray(photo).resize((width * factor, height * factor), Image.Resampling.BICUBIC))


def competing_faces(faces: tuple[DetectedFace, ...]) -> int:
    """How many faces besides the largest (the first) are large enough to make the photo ambiguous (0 for none)."""
    return sum(face.width >= COMPETING_FACE_RATIO * faces[0].width for face in faces[1:])


def refusal(sighting: Sighting, min_face_pixels: int) -> Refusal | None:
    """Why the photo cannot speak, or None: no face, a photo on its side, several faces, or a face too small.

    A photo is on its side whether the face showed only once the photo was turned or the
    detector found it lying over: which of the two happens depends on the detector, not the photo.
    """
    if not sighting.faces:
        return SIDEWAYS if sighting.sideways else NO_FACE
    count = 1 + competing_faces(sighting.faces)
    if count > 1:
        return Refusal(
            f"{_number(count)} faces",
            f"This picture shows {count} faces of similar size. Please crop it to the one person who should "
            "speak, or choose a photo of one person.",
        )
    main = sighting.faces[0]
    if abs(main.pose[2]) > SIDEWAYS_ROLL:
        return SIDEWAYS
    if max(main.width, main.height) < min_face_pixels:
        return Refusal(
            "face is too small",
            f"The face is only about {main.width:.0f} pixels wide; at least {min_face_pixels} are needed. "
            "Please use a closer or larger photo.",
        )
    return None


def _number(count: int) -> str:
    return {2: "two", 3: "three", 4: "four"}.get(count, str(count))


def softer_video(crop_side: float, crop_size: int) -> bool:
    """Whether a face whose square spans `crop_side` photo pixels is enlarged so much that the video looks softer."""
    return crop_size / crop_side > SOFTER_ENLARGEMENT


def fill_shows(filled: float, framing: Framing) -> bool:
    """Whether a viewer sees filled-in edges: in a close-up reaching past the photo; never in the whole photo."""
    return framing is Framing.CLOSE_UP and filled >= SHOWN_FILL


def fill_note(filled: float) -> str:
    """The face note for a close-up that reaches past the photo, saying how much of it is filled in."""
    return (
        f"The photo ends close to the face, so {filled:.0%} of the close-up is filled in "
        "by stretching the photo's edges; Whole photo shows none of it."
    )


def framing_notes(side: float, filled: float, crop_size: int, framing: Framing) -> tuple[str, ...]:
    """What the viewer should expect of this framing: a softer close-up, filled-in edges (none for the whole photo).

    In the whole photo the face is shown at the photo's own scale, so a small face looks no softer than its photo.
    """
    if framing is not Framing.CLOSE_UP:
        return ()
    notes = (SOFTER_NOTE,) if softer_video(side, crop_size) else ()
    return notes + ((fill_note(filled),) if fill_shows(filled, framing) else ())


def read_face(
    photo: np.ndarray, crop_size: int = 512, min_face_pixels: int = 64, framing: Framing = Framing.WHOLE
) -> Face:
    """The one face in `photo`, cropped for the engines; a UserFacingError with the rules' sentence if none can be.

    A close-up's square stays inside the photo as far as the engine allows (alignment.close_up_square);
    the whole photo keeps the square the engines prefer, since what it reaches past the photo is never shown.
    """
    sighting = look(photo)
    refused = refusal(sighting, min_face_pixels)
    if refused is not None:
        raise UserFacingError(refused.sentence)
    main = sighting.faces[0]
    close_up = framing is Framing.CLOSE_UP
    square = close_up_square(main.landmarks, photo.shape) if close_up else face_square(main.landmarks)
    crop = aligned_crop(photo, square, crop_size)
    return Face(
        photo=photo,
        crop=crop.image,
        landmarks=to_crop_coordinates(main.landmarks, crop.crop_to_photo),
        crop_to_photo=crop.crop_to_photo,
        detected=main,
        notes=framing_notes(crop.side, crop.filled, crop_size, framing),
        framing=framing,
        filled=crop.filled,
    )
