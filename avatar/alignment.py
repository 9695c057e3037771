"""The engines' square: where it sits on a face, the map back into the photo, and the crop itself.

Built in one place (`aligned_crop`), so the crop a run animates is the crop the trials
show and measure. It keeps its affine map back into the original photo so that animated
faces can be pasted back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.face_mesh import DetectedFace

# Mesh indices (MediaPipe face mesh topology) used to align the crop.
LEFT_EYE = (33, 133, 159, 145)
RIGHT_EYE = (362, 263, 386, 374)
MOUTH = (13, 14, 61, 291)
# Crop size relative to the FFHQ-style square around eyes and mouth: room for hair and chin.
CROP_MARGIN = 1.3


@dataclass(frozen=True)
class AlignedCrop:
    """The square crop of one face, its 2x3 map from crop pixels to photo pixels, and its side in photo pixels."""

    image: np.ndarray
    crop_to_photo: np.ndarray
    side: float


def alignment_square(landmarks: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side length and roll angle (radians) of the square the engines see.

    FFHQ-style: built from the eye centres and the mouth centre, so the eyes come out level
    and at the same height in every crop, with a margin for hair and chin.
    """
    eye_left = landmarks[list(LEFT_EYE)].mean(axis=0)
    eye_right = landmarks[list(RIGHT_EYE)].mean(axis=0)
    mouth = landmarks[list(MOUTH)].mean(axis=0)
    eye_mid = (eye_left + eye_right) / 2
    eye_to_eye = eye_right - eye_left
    eye_to_mouth = mouth - eye_mid
    x_axis = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    x_axis /= np.hypot(*x_axis)
    half = max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8) * CROP_MARGIN
    centre = eye_mid + eye_to_mouth * 0.25
    angle = math.atan2(float(x_axis[1]), float(x_axis[0]))
    return centre.astype(np.float64), float(2 * half), angle


def crop_affine(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The 2x3 map from crop pixel (x, y, 1) to photo pixel, for a square turned by `angle`."""
    scale = side / size
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    half = (size - 1) / 2
    tx = centre[0] - (cos * half - sin * half)
    ty = centre[1] - (sin * half + cos * half)
    return np.array([[cos, -sin, tx], [sin, cos, ty]], dtype=np.float64)


def warp_photo(photo: np.ndarray, crop_to_photo: np.ndarray, size: int) -> np.ndarray:
    """Sample the crop out of the photo (bicubic; edges mirrored where the square leaves the photo)."""
    height, width = photo.shape[:2]
    axis = torch.arange(size, dtype=torch.float64)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    affine = torch.from_numpy(crop_to_photo)
    px = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2]
    py = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2]
    grid = torch.stack([(2 * px + 1) / width - 1, (2 * py + 1) / height - 1], dim=-1).float()[None]
    source = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
    crop = F.grid_sample(source, grid, mode="bicubic", padding_mode="reflection", align_corners=False)
    return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def to_crop_coordinates(points: np.ndarray, crop_to_photo: np.ndarray) -> np.ndarray:
    """Photo pixel coordinates -> crop pixel coordinates."""
    linear, offset = crop_to_photo[:, :2], crop_to_photo[:, 2]
    return ((points - offset) @ np.linalg.inv(linear).T).astype(np.float32)


def crop_placement(face: DetectedFace, size: int) -> tuple[np.ndarray, float]:
    """Where a `size` x `size` crop of this face lies in the photo: its map back, and its side in photo pixels."""
    centre, side, angle = alignment_square(face.landmarks)
    return crop_affine(centre, side, angle, size), side


def aligned_crop(photo: np.ndarray, face: DetectedFace, size: int) -> AlignedCrop:
    """The square crop the engines animate, cut out of the photo."""
    crop_to_photo, side = crop_placement(face, size)
    return AlignedCrop(warp_photo(photo, crop_to_photo, size), crop_to_photo, side)
