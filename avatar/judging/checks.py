"""Measures of one photo as an avatar: what the face detector found and what the pixels say.

Pure functions on arrays (no detection, no files), so every measure can be tested on
pictures the tests make themselves. The verdict built from these lives in verdict.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial import ConvexHull

from avatar.alignment import close_up_square, face_square, filled_share
from avatar.face_mesh import DetectedFace
from avatar.faces import competing_faces

LEFT_EYE_RING = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
RIGHT_EYE_RING = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
UPPER_LIP, LOWER_LIP = 13, 14
FOREHEAD, CHIN = 10, 152
# Cheek, forehead and chin patches (mesh indices at their centres) compared for occlusion.
SKIN_PATCHES = {"forehead": 151, "left cheek": 50, "right cheek": 280, "chin": 199}
# Side of the square the sharpness is measured on: faces are brought to one scale first.
SHARPNESS_SIDE = 96
CLIPPED_BRIGHT = 250


@dataclass(frozen=True)
class FaceMeasures:
    """What the pixels and the landmarks say about the one face the engine would use.

    `crop_side` and `outside_photo` are the engines' own square (the one a whole-photo run animates):
    its side in photo pixels and the share of it past the photo's edges. `close_up_side` and
    `close_up_filled` are the same for the square a close-up shows, moved and shrunk into the photo.
    """

    width: float
    height: float
    crop_side: float
    yaw: float
    pitch: float
    roll: float
    eye_blink: float
    jaw_open: float
    lip_gap: float
    brightness: float
    contrast: float
    clipped: float
    sharpness: float
    glare: float
    odd_patches: tuple[str, ...]
    outside_photo: float
    close_up_side: float
    close_up_filled: float


@dataclass(frozen=True)
class PhotoMeasures:
    """Everything known about a photo before any video is made."""

    width: int
    height: int
    colourfulness: float
    brightness: float
    contrast: float
    faces: int
    competing_faces: int
    face: FaceMeasures | None


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in 0..255 as float32."""
    return (rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.float32)


def colourfulness(rgb: np.ndarray) -> float:
    """Hasler and Süsstrunk's colourfulness: 0 for a grey picture, above ~30 for an ordinary colour photo."""
    red, green, blue = (rgb[..., i].astype(np.float32) for i in range(3))
    rg = red - green
    yb = 0.5 * (red + green) - blue
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """A boolean mask of the convex hull of `points` (x, y) in an image of `shape` (h, w)."""
    hull = points[ConvexHull(points).vertices]
    canvas = Image.new("1", (shape[1], shape[0]), 0)
    ImageDraw.Draw(canvas).polygon([tuple(p) for p in hull.astype(float)], fill=1)
    return np.asarray(canvas, dtype=bool)


def sharpness(grey: np.ndarray) -> float:
    """Fine detail relative to the picture's own contrast, so dim or flat faces are not called blurred.

    The ratio of the Laplacian's spread to the grey levels' spread, on the face brought to
    `SHARPNESS_SIDE` pixels (shrunk, never enlarged, so a small sharp face stays sharp).
    """
    height, width = grey.shape
    if max(height, width) > SHARPNESS_SIDE:
        scale = SHARPNESS_SIDE / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = np.asarray(Image.fromarray(grey.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX))
    detail = ndimage.laplace(grey.astype(np.float32))
    return float(detail.std() / max(float(grey.std()), 1.0))


def glare(grey: np.ndarray, landmarks: np.ndarray) -> float:
    """Fraction of clipped-white pixels around the eyes: reflections on glasses."""
    shape = grey.shape
    total, bright = 0, 0
    for ring in (LEFT_EYE_RING, RIGHT_EYE_RING):
        points = landmarks[list(ring)]
        centre = points.mean(axis=0)
        grown = centre + (points - centre) * 1.8
        mask = polygon_mask(shape, grown)
        total += int(mask.sum())
        bright += int((grey[mask] >= CLIPPED_BRIGHT).sum())
    return bright / total if total else 0.0


def odd_skin_patches(rgb: np.ndarray, landmarks: np.ndarray, face_width: float) -> tuple[str, ...]:
    """Named patches of the face whose colour or brightness is far from the rest: hair, a hand, a shadow.

    Each patch is compared with the median of the others, in luma and in chroma, relative
    to how much the patches vary in this photo; a covered patch stands apart.
    """
    radius = max(2, int(face_width * 0.06))
    height, width = rgb.shape[:2]
    colours = {}
    for name, index in SKIN_PATCHES.items():
        x, y = landmarks[index].round().astype(int)
        top, bottom = max(0, y - radius), min(height, y + radius + 1)
        left, right = max(0, x - radius), min(width, x + radius + 1)
        patch = rgb[top:bottom, left:right].reshape(-1, 3).astype(np.float32)
        if len(patch) == 0:
            continue
        colours[name] = np.median(patch, axis=0)
    odd = []
    for name, colour in colours.items():
        others = np.array([c for other, c in colours.items() if other != name])
        if len(others) < 2:
            continue
        reference = np.median(others, axis=0)
        luma_gap = abs(float(luminance(colour) - luminance(reference)))
        chroma_gap = float(np.abs((colour - colour.mean()) - (reference - reference.mean())).max())
        if luma_gap > 70 or chroma_gap > 45:
            odd.append(name)
    return tuple(odd)


def measure_face(photo: np.ndarray, face: DetectedFace) -> FaceMeasures:
    """Size, pose, eyes, mouth, light, sharpness and occlusion of one detected face."""
    grey = luminance(photo)
    landmarks = face.landmarks
    mask = polygon_mask(grey.shape, landmarks)
    skin = grey[mask] if mask.any() else grey.reshape(-1)
    x0, y0 = np.floor(landmarks.min(axis=0)).astype(int).clip(0)
    x1, y1 = np.ceil(landmarks.max(axis=0)).astype(int)
    box = grey[y0 : y1 + 1, x0 : x1 + 1]
    square, close_up = face_square(landmarks), close_up_square(landmarks, grey.shape)
    face_height = max(float(np.hypot(*(landmarks[CHIN] - landmarks[FOREHEAD]))), 1.0)
    yaw, pitch, roll = face.pose
    blend = face.blendshapes
    return FaceMeasures(
        width=face.width,
        height=face.height,
        crop_side=square.side,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        eye_blink=max(blend.get("eyeBlinkLeft", 0.0), blend.get("eyeBlinkRight", 0.0)),
        jaw_open=blend.get("jawOpen", 0.0),
        lip_gap=float(np.hypot(*(landmarks[LOWER_LIP] - landmarks[UPPER_LIP]))) / face_height,
        brightness=float(skin.mean()),
        contrast=float(np.percentile(skin, 95) - np.percentile(skin, 5)),
        clipped=float((skin >= CLIPPED_BRIGHT).mean() + (skin <= 5).mean()),
        sharpness=sharpness(box) if box.size else 0.0,
        glare=glare(grey, landmarks),
        odd_patches=odd_skin_patches(photo, landmarks, face.width),
        outside_photo=filled_share(grey.shape, square.crop_to_photo(16), 16),
        close_up_side=close_up.side,
        close_up_filled=filled_share(grey.shape, close_up.crop_to_photo(16), 16),
    )


def measure_photo(photo: np.ndarray, faces: tuple[DetectedFace, ...]) -> PhotoMeasures:
    """All measures of a photo given the faces found in it (largest first)."""
    grey = luminance(photo)
    main = faces[0] if faces else None
    return PhotoMeasures(
        width=int(photo.shape[1]),
        height=int(photo.shape[0]),
        colourfulness=colourfulness(photo),
        brightness=float(grey.mean()),
        contrast=float(np.percentile(grey, 95) - np.percentile(grey, 5)),
        faces=len(faces),
        competing_faces=competing_faces(faces),
        face=measure_face(photo, main) if main is not None else None,
    )
