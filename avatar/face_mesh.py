"""What the landmark model sees in a photo: every face, as a 478-point mesh with blendshapes and head pose.

Landmarks come from MediaPipe's Face Landmarker, whose model ships with the project
(assets/models), so no download is ever needed. Whether a photo is usable is decided
elsewhere (avatar/faces.py); this module only looks.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.config import FACE_LANDMARKER_MODEL


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

    def scaled(self, factor: float) -> DetectedFace:
        """The same face in a copy of the photo resized by `factor`."""
        return DetectedFace(self.landmarks * np.float32(factor), self.blendshapes, self.pose)


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
