"""A photo becomes a Face: found, measured with a 478-point mesh, and cropped square for the engines.

Landmarks come from MediaPipe's Face Landmarker, whose model ships with the project
(assets/models), so no download is ever needed. The crop keeps its affine map back into
the original photo so that animated faces can be pasted back.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from avatar.config import FACE_LANDMARKER_MODEL
from avatar.errors import UserFacingError

# Mesh indices (MediaPipe face mesh topology) used to align the crop.
LEFT_EYE = (33, 133, 159, 145)
RIGHT_EYE = (362, 263, 386, 374)
MOUTH = (13, 14, 61, 291)
# A second face at least this fraction of the largest one's width makes the photo ambiguous.
COMPETING_FACE_RATIO = 0.5
# Crop size relative to the FFHQ-style square around eyes and mouth: room for hair and chin.
CROP_MARGIN = 1.3


@dataclass(frozen=True)
class DetectedFace:
    """One face as the landmark model saw it, in the photo's pixel coordinates."""

    landmarks: np.ndarray
    blendshapes: dict[str, float]
    pose: tuple[float, float, float]

    @property
    def width(self) -> float:
        return float(self.landmarks[:, 0].max() - self.landmarks[:, 0].min())

    @property
    def height(self) -> float:
        return float(self.landmarks[:, 1].max() - self.landmarks[:, 1].min())


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


class _Landmarker:
    """One MediaPipe landmarker per process, used under a lock (it is not re-entrant)."""

    _lock = threading.Lock()
    _instance = None

    @classmethod
    def detect(cls, photo: np.ndarray, model_path: Path) -> list[DetectedFace]:
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        with cls._lock:
            if cls._instance is None:
                options = vision.FaceLandmarkerOptions(
                    base_options=BaseOptions(model_asset_path=str(model_path)),
                    running_mode=vision.RunningMode.IMAGE,
                    num_faces=4,
                    min_face_detection_confidence=0.5,
                    output_face_blendshapes=True,
                    output_facial_transformation_matrixes=True,
                )
                cls._instance = vision.FaceLandmarker.create_from_options(options)
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(photo))
            result = cls._instance.detect(image)
        height, width = photo.shape[:2]
        faces = []
        for index, points in enumerate(result.face_landmarks):
            landmarks = np.array([(p.x * width, p.y * height) for p in points], dtype=np.float32)
            blendshapes = {b.category_name: float(b.score) for b in result.face_blendshapes[index]}
            pose = _pose_from_matrix(np.asarray(result.facial_transformation_matrixes[index]))
            faces.append(DetectedFace(landmarks=landmarks, blendshapes=blendshapes, pose=pose))
        return faces


def _pose_from_matrix(matrix: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch and roll in degrees from MediaPipe's face transformation matrix."""
    rotation = matrix[:3, :3]
    yaw = math.degrees(math.asin(float(np.clip(-rotation[2, 0], -1.0, 1.0))))
    pitch = math.degrees(math.atan2(float(rotation[2, 1]), float(rotation[2, 2])))
    roll = math.degrees(math.atan2(float(rotation[1, 0]), float(rotation[0, 0])))
    return yaw, pitch, roll


def _windows(height: int, width: int) -> list[tuple[int, int, int]]:
    """Square windows (top, left, side) that the detector also looks at.

    Its short-range model sees a letterboxed copy of the picture, so faces in a wide or
    tall picture, or small in a large one, come out too small for it: squares along the
    long side and, for large pictures, overlapping quarters bring them back into range.
    """
    side = min(height, width)
    windows = []
    if max(height, width) > 1.2 * side:
        steps = int(np.ceil((max(height, width) - side) / (side / 2))) + 1
        for offset in np.linspace(0, max(height, width) - side, steps).round().astype(int):
            windows.append((0, int(offset), side) if width > height else (int(offset), 0, side))
    if side >= 512:
        half = int(side * 0.6)
        for top in (0, height - half):
            for left in (0, width - half):
                windows.append((top, left, half))
    return windows


def _same_face(a: DetectedFace, b: DetectedFace) -> bool:
    distance = np.hypot(*(a.landmarks[1] - b.landmarks[1]))
    return distance < 0.3 * max(a.width, b.width)


def find_faces(photo: np.ndarray, model_path: Path = FACE_LANDMARKER_MODEL) -> list[DetectedFace]:
    """Every face the landmark model finds in an RGB photo, largest first."""
    faces = _Landmarker.detect(photo, model_path)
    for top, left, side in _windows(*photo.shape[:2]):
        for face in _Landmarker.detect(photo[top : top + side, left : left + side], model_path):
            moved = DetectedFace(face.landmarks + np.array([left, top], np.float32), face.blendshapes, face.pose)
            if not any(_same_face(moved, known) for known in faces):
                faces.append(moved)
    return sorted(faces, key=lambda face: face.width, reverse=True)


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
