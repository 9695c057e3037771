"""Frames in the chosen framing: the whole photo with the animated face put back into it, or the face close-up.

The engines animate a square around the face (avatar/alignment.py). For "Whole photo" every
frame of that square is put back where it came from, LivePortrait's way (`prepare_paste_back`,
`paste_back`): what is costly is done once per run (a soft mask around the head warped into the
video, the warp's map, the photo at the video's size); per frame, the square is warped into the
face's box only and blended through the mask. Outside the mask the video's pixels are the
photo's own, so a shirt or a background never moves. "Face close-up" is the engine's square itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from avatar.faces import Face
from avatar.framing import Framing, video_size

# The head region the mask covers, around the face mesh's box (centre, half width rx, half height ry):
# an ellipse of radii HEAD_WIDTH * rx and HEAD_HEIGHT * ry, raised by HEAD_RISE * ry over the hair.
# The default engine moves nothing beyond 1.15 of the same ellipse (its head mask), so the mask is
# whole out to MASK_WHOLE and fades out by MASK_GONE, where every engine frame is still the photo.
HEAD_WIDTH, HEAD_HEIGHT, HEAD_RISE = 1.45, 1.55, 0.25
MASK_WHOLE, MASK_GONE = 1.15, 1.5
# The mask also fades out over this share of the square at its edges: beyond them there is no frame.
EDGE_FADE = 0.06
# Blend weights are 8-bit (0..255): a whole frame is blended in three SIMD passes of integers.
WEIGHT_STEPS = 255
# Seam pixels sampled for each frame's colour match.
SEAM_SAMPLES = 2048
# Frames shrunk to less than this many video pixels per frame pixel are first halved (a Gaussian
# pyramid step, each cheap) until they are not, so that a small face does not shimmer.
HALVE_BELOW = 0.5


def photo_at_size(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The photo as the video shows it: an odd last row or column left off, or shrunk by area to `size`."""
    width, height = size
    if _only_trimmed(photo.shape, size):
        return np.ascontiguousarray(photo[:height, :width])
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


def _only_trimmed(shape: tuple[int, ...], size: tuple[int, int]) -> bool:
    return 0 <= shape[1] - size[0] < 2 and 0 <= shape[0] - size[1] < 2


def photo_to_video(shape: tuple[int, ...], size: tuple[int, int]) -> np.ndarray:
    """The 3x3 map from photo pixels to the pixels of `photo_at_size` (the identity where it only trims)."""
    if _only_trimmed(shape, size):
        return np.eye(3)
    height, width = shape[:2]
    sx, sy = size[0] / width, size[1] / height
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])


def preview(face: Face, max_side: int) -> np.ndarray:
    """The picture of the chosen framing before it speaks: the face as the engine sees it, or the photo."""
    if face.framing is Framing.CLOSE_UP:
        return face.crop
    return photo_at_size(face.photo, video_size(face.photo.shape, max_side))


def head_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """The paste-back weights (size, size) float32 over the engine's square: 1 on the head, 0 at the square's edges."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    (cx, cy), (rx, ry) = (low + high) / 2, np.maximum((high - low) / 2, 1.0)
    axis = np.arange(size, dtype=np.float32)
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    distance = np.hypot((xs - cx) / (rx * HEAD_WIDTH), (ys - (cy - HEAD_RISE * ry)) / (ry * HEAD_HEIGHT))
    head = _smoothstep((MASK_GONE - distance) / (MASK_GONE - MASK_WHOLE))
    to_edge = np.minimum(np.minimum(xs, size - 1 - xs), np.minimum(ys, size - 1 - ys))
    return (head * _smoothstep(to_edge / (EDGE_FADE * size))).astype(np.float32)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


class Compositor(Protocol):
    """Engine frames in, video frames out, at a size known before the first frame."""

    size: tuple[int, int]

    def compose(self, frames: np.ndarray) -> np.ndarray:
        """Frames (n, S, S, 3) uint8 from the engine -> frames (n, height, width, 3) uint8 of the video."""
        ...


class CloseUp:
    """The engine's square is the video: frames pass through (resized only if the engine drew another size)."""

    def __init__(self, frame_size: int) -> None:
        side = max(2, frame_size // 2 * 2)
        self.size = (side, side)

    def compose(self, frames: np.ndarray) -> np.ndarray:
        side = self.size[0]
        if frames.shape[1:3] == (side, side):
            return frames
        method = cv2.INTER_AREA if frames.shape[1] > side else cv2.INTER_LINEAR
        return np.stack([cv2.resize(frame, (side, side), interpolation=method) for frame in frames])


@dataclass(frozen=True)
class _FrameMap:
    """How frames of one engine size reach the face's box: halved `halvings` times first, then one affine warp."""

    halvings: int
    box_to_frame: np.ndarray
    seam_ys: np.ndarray
    seam_xs: np.ndarray
    seam_colours: np.ndarray


class PasteBack:
    """The animated square put back into the whole photo through one soft mask, built once per face.

    `size` is the video's (width, height); `box` the rows and columns of the video the face can
    change; `mask` the blend weights inside it (0..1, in steps of 1/255: where 0, the video is the
    photo exactly). Frames of any square size are taken (FlashHead draws 512 whatever the crop
    size); each size's map is made once, on its first frame, so one run's compositor is used by
    one thread at a time.
    """

    def __init__(self, face: Face, frame_size: int, max_side: int) -> None:
        self.size = video_size(face.photo.shape, max_side)
        width, height = self.size
        self.photo = photo_at_size(face.photo, self.size)
        crop_to_photo = np.vstack([face.crop_to_photo, [0, 0, 1]])
        self._crop_to_video = photo_to_video(face.photo.shape, self.size) @ crop_to_photo
        self._crop = face.crop
        crop_mask = head_mask(face.landmarks, face.size)
        mask = cv2.warpAffine(
            crop_mask, self._crop_to_video[:2], (width, height), flags=cv2.INTER_LINEAR, borderValue=0
        )
        weights = np.rint(mask * WEIGHT_STEPS).astype(np.uint8)
        self.box = _bounding_box(weights)
        weights = np.ascontiguousarray(weights[self.box])
        self.mask = weights.astype(np.float32) / WEIGHT_STEPS
        # Per frame: video = (frame * w + photo * (255 - w)) / 255, the photo's part made once here.
        self._weights = np.repeat(weights[..., None], 3, axis=2)
        photo_part = self.photo[self.box].astype(np.uint16) * (WEIGHT_STEPS - self._weights)
        self._photo_part = photo_part.astype(np.uint16)
        self._seam = self._seam_pixels(crop_mask, face.crop_to_photo, face.photo.shape)
        self._maps: dict[int, _FrameMap] = {}
        self._frame_map(frame_size)

    def _seam_pixels(self, crop_mask: np.ndarray, crop_to_photo: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Crop pixels (y, x) of the mask's soft edge that lie inside the photo: where colours must agree."""
        ys, xs = np.nonzero((crop_mask > 0.02) & (crop_mask < 0.98))
        px = crop_to_photo[0, 0] * xs + crop_to_photo[0, 1] * ys + crop_to_photo[0, 2]
        py = crop_to_photo[1, 0] * xs + crop_to_photo[1, 1] * ys + crop_to_photo[1, 2]
        inside = (px >= 0) & (px <= shape[1] - 1) & (py >= 0) & (py <= shape[0] - 1)
        ys, xs = ys[inside], xs[inside]
        step = max(1, len(ys) // SEAM_SAMPLES)
        return np.stack([ys[::step], xs[::step]], axis=1)

    def _frame_map(self, frame_size: int) -> _FrameMap:
        """The warp from a frame of `frame_size` into the box, and the seam's place in such frames (made once)."""
        if frame_size in self._maps:
            return self._maps[frame_size]
        crop_size = self._crop.shape[0]
        crop_scale = float(np.sqrt(abs(np.linalg.det(self._crop_to_video[:2, :2]))))
        pixels_per_frame_pixel = crop_scale * crop_size / frame_size
        halvings = max(0, math.ceil(math.log2(HALVE_BELOW / pixels_per_frame_pixel)))
        # A pyramid step puts each new pixel on the old pixel 2i, 2i: a plain scale of the pixel grid.
        halved_to_frame = np.diag([2.0**halvings, 2.0**halvings, 1.0])
        frame_to_crop = _pixel_scale(crop_size / frame_size) @ halved_to_frame
        box_origin = np.array([[1, 0, -self.box[1].start], [0, 1, -self.box[0].start], [0, 0, 1]])
        frame_to_box = box_origin @ self._crop_to_video @ frame_to_crop
        seam = np.clip(np.rint((self._seam + 0.5) * frame_size / crop_size - 0.5).astype(int), 0, frame_size - 1)
        reference = self._crop
        if frame_size != crop_size:
            reference = cv2.resize(self._crop, (frame_size, frame_size), interpolation=cv2.INTER_AREA)
        mapped = _FrameMap(
            halvings=halvings,
            box_to_frame=np.linalg.inv(frame_to_box)[:2],
            seam_ys=seam[:, 0],
            seam_xs=seam[:, 1],
            seam_colours=reference[seam[:, 0], seam[:, 1]].astype(np.float32),
        )
        self._maps[frame_size] = mapped
        return mapped

    def colour_offsets(self, frames: np.ndarray) -> np.ndarray:
        """Per frame, the shift (n, 3) that brings the frame's colours along the seam to the photo's.

        The median over the seam, so a strand of hair moving across it does not tint the face.
        Zero for an engine that keeps the photo's colours (the default engine leaves the seam as it is).
        """
        mapped = self._frame_map(frames.shape[1])
        drawn = frames[:, mapped.seam_ys, mapped.seam_xs].astype(np.float32)
        return np.rint(np.median(mapped.seam_colours[None] - drawn, axis=1)).astype(np.int16)

    def compose(self, frames: np.ndarray) -> np.ndarray:
        """The video's frames: the photo, with each engine frame warped into the face's box and blended in."""
        width, height = self.size
        videos = np.empty((len(frames), height, width, 3), np.uint8)
        videos[:] = self.photo
        if self.mask.size == 0 or len(frames) == 0:
            return videos
        mapped = self._frame_map(frames.shape[1])
        offsets = self.colour_offsets(frames)
        box_height, box_width = self.mask.shape
        blend = np.empty(self._weights.shape, np.uint16)
        for video, frame, offset in zip(videos, frames, offsets, strict=True):
            for _ in range(mapped.halvings):
                frame = cv2.pyrDown(frame)
            warped = cv2.warpAffine(
                frame,
                mapped.box_to_frame,
                (box_width, box_height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            if offset.any():
                warped = cv2.add(warped, (*offset.astype(float), 0.0))
            cv2.multiply(warped, self._weights, dst=blend, dtype=cv2.CV_16U)
            cv2.add(blend, self._photo_part, dst=blend)
            video[self.box] = cv2.convertScaleAbs(blend, alpha=1 / WEIGHT_STEPS)
        return videos


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice]:
    """The rows and columns holding every non-zero weight (empty slices for none)."""
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(columns[0]), int(columns[-1]) + 1)


def _pixel_scale(scale: float) -> np.ndarray:
    """The 3x3 map between pixel grids `scale` times apart (pixel centres kept aligned, as cv2.resize does)."""
    return np.array([[scale, 0, 0.5 * scale - 0.5], [0, scale, 0.5 * scale - 0.5], [0, 0, 1]])


def compositor(face: Face, frame_size: int, max_side: int) -> Compositor:
    """The run's compositor for its face's framing: `PasteBack` for the whole photo, `CloseUp` otherwise."""
    if face.framing is Framing.CLOSE_UP:
        return CloseUp(frame_size)
    return PasteBack(face, frame_size, max_side)
