"""The engines' square: where it sits on a face, the map back into the photo, and the crop itself.

Built in one place (`aligned_crop`), so the crop a run animates is the crop the trials
show and measure. It keeps its affine map back into the original photo so that animated
faces can be pasted back. Where the square reaches past the photo, the engine sees a neutral
extension of the photo's edges, never a mirror image: mirrored edges grow extra faces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linprog

# Mesh indices (MediaPipe face mesh topology) used to align the crop.
LEFT_EYE = (33, 133, 159, 145)
RIGHT_EYE = (362, 263, 386, 374)
MOUTH = (13, 14, 61, 291)
# Crop size relative to the FFHQ-style square around eyes and mouth: room for hair and chin.
CROP_MARGIN = 1.3
# The least room a close-up keeps between the face's mesh and each edge of its square, as a share of
# the face's height (the engines' own square leaves 0.43 to 0.48 under the chin): with less, the default
# engine's open jaw squeezes the neck under it more than a quarter harder (bench/RESULTS.md, "Framing").
CLOSE_UP_MARGIN = 0.2
# The neutral extension: a pixel this many photo pixels past the photo's edge shows the edge's colours
# blurred along the edge with a Gaussian of sigma EXTENSION_SPREAD times that distance.
EXTENSION_SPREAD = 0.5


@dataclass(frozen=True)
class Square:
    """Where the engines' square lies in the photo: centre (photo pixels), side (photo pixels), roll (radians)."""

    centre: np.ndarray
    side: float
    angle: float

    def crop_to_photo(self, size: int) -> np.ndarray:
        """The 2x3 map from the pixels of a `size` x `size` crop of this square to photo pixels."""
        return crop_affine(self.centre, self.side, self.angle, size)


@dataclass(frozen=True)
class AlignedCrop:
    """The square crop of one face, its 2x3 map from crop pixels to photo pixels, its side in photo pixels,
    and the share of it that lies outside the photo (filled by the neutral extension)."""

    image: np.ndarray
    crop_to_photo: np.ndarray
    side: float
    filled: float


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


def face_square(landmarks: np.ndarray) -> Square:
    """The square the engines prefer: the face centred, with the full margin (`alignment_square`)."""
    centre, side, angle = alignment_square(landmarks)
    return Square(centre, side, angle)


def close_up_square(landmarks: np.ndarray, shape: tuple[int, ...]) -> Square:
    """The square a close-up shows: the engines' square moved, then shrunk, to stay inside the photo.

    It moves (the face off centre) and shrinks (the face larger) only as far as keeps
    `CLOSE_UP_MARGIN` between the face's mesh and every edge, the least room the engine
    animates well with. A photo that ends closer to the face than that still leaves part of the
    square outside it, as little as can be (`filled_share` says how much). Three small linear
    programs over the square's shift (along its own axes) and side: the least overshoot of the
    photo's edges first, then the largest side, then the least shift.
    """
    preferred = face_square(landmarks)
    cos, sin = math.cos(preferred.angle), math.sin(preferred.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    along = (landmarks - preferred.centre) @ rotation
    (u0, v0), (u1, v1) = along.min(axis=0), along.max(axis=0)
    # A face wider or taller than the preferred square allows keeps what room there is.
    room_u = min(CLOSE_UP_MARGIN * (v1 - v0), (preferred.side - (u1 - u0)) / 2)
    room_v = min(CLOSE_UP_MARGIN * (v1 - v0), (preferred.side - (v1 - v0)) / 2)
    reach = (abs(cos) + abs(sin)) / 2  # half the width of the turned square's bounding box, per unit of side
    (cx, cy), (height, width) = preferred.centre, shape[:2]
    limits = [
        # Every edge of the square keeps its room outside the face's mesh.
        (_row(du=1, side=-0.5), u0 - room_u),
        (_row(du=-1, side=-0.5), -u1 - room_u),
        (_row(dv=1, side=-0.5), v0 - room_v),
        (_row(dv=-1, side=-0.5), -v1 - room_v),
        # The square stays inside the photo's edges, but for its overshoot of each.
        (_row(du=-cos, dv=sin, side=reach, over_left=-1), cx + 0.5),
        (_row(du=cos, dv=-sin, side=reach, over_right=-1), width - 0.5 - cx),
        (_row(du=-sin, dv=-cos, side=reach, over_top=-1), cy + 0.5),
        (_row(du=sin, dv=cos, side=reach, over_bottom=-1), height - 0.5 - cy),
        # The shift's size along each axis.
        (_row(du=1, shift_u=-1), 0.0),
        (_row(du=-1, shift_u=-1), 0.0),
        (_row(dv=1, shift_v=-1), 0.0),
        (_row(dv=-1, shift_v=-1), 0.0),
    ]
    bounds = [(None, None), (None, None), (0, preferred.side)] + [(0, None)] * 6
    slack = 1e-6 * preferred.side

    def least(objective: np.ndarray) -> np.ndarray:
        result = linprog(
            objective,
            A_ub=np.array([row for row, _ in limits]),
            b_ub=np.array([limit for _, limit in limits]),
            bounds=bounds,
            method="highs",
        )
        if not result.success:
            raise RuntimeError(f"close-up placement failed: {result.message}")
        return result.x

    overshoot = _row(over_left=1, over_right=1, over_top=1, over_bottom=1)
    limits.append((overshoot, float(overshoot @ least(overshoot)) + slack))
    side = float(least(_row(side=-1))[2])
    limits.append((_row(side=-1), slack - side))
    du, dv = least(_row(shift_u=1, shift_v=1))[:2]
    return Square(preferred.centre + rotation @ np.array([du, dv]), side, preferred.angle)


# The variables of `close_up_square`'s linear programs.
_VARIABLES = ("du", "dv", "side", "over_left", "over_right", "over_top", "over_bottom", "shift_u", "shift_v")


def _row(**coefficients: float) -> np.ndarray:
    """One row of a linear program over `_VARIABLES`, naming only its non-zero coefficients."""
    row = np.zeros(len(_VARIABLES))
    for name, value in coefficients.items():
        row[_VARIABLES.index(name)] = value
    return row


def crop_affine(centre: np.ndarray, side: float, angle: float, size: int) -> np.ndarray:
    """The 2x3 map from crop pixel (x, y, 1) to photo pixel, for a square turned by `angle`."""
    scale = side / size
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    half = (size - 1) / 2
    tx = centre[0] - (cos * half - sin * half)
    ty = centre[1] - (sin * half + cos * half)
    return np.array([[cos, -sin, tx], [sin, cos, ty]], dtype=np.float64)


def warp_photo(photo: np.ndarray, crop_to_photo: np.ndarray, size: int) -> np.ndarray:
    """Sample the crop out of the photo (bicubic), with a neutral extension where the square leaves the photo.

    Only the part of the photo under the square is read (`extended_photo` adds what lies past
    its edges). A mirror image would be sharper there, but it repeats whatever touches the
    edge: a face cut by the edge of a tight head shot grows a second face.
    """
    corners = square_corners(crop_to_photo, size)
    left, top = (np.floor(corners.min(axis=0)) - 2).astype(int)
    right, bottom = (np.ceil(corners.max(axis=0)) + 3).astype(int)
    region = extended_photo(photo, int(top), int(bottom), int(left), int(right))
    height, width = region.shape[:2]
    axis = torch.arange(size, dtype=torch.float64)
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    affine = torch.from_numpy(crop_to_photo)
    px = affine[0, 0] * xs + affine[0, 1] * ys + affine[0, 2] - left
    py = affine[1, 0] * xs + affine[1, 1] * ys + affine[1, 2] - top
    grid = torch.stack([(2 * px + 1) / width - 1, (2 * py + 1) / height - 1], dim=-1).float()[None]
    source = torch.from_numpy(region).permute(2, 0, 1)[None]
    crop = F.grid_sample(source, grid, mode="bicubic", padding_mode="border", align_corners=False)
    return crop[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()


def square_corners(crop_to_photo: np.ndarray, size: int) -> np.ndarray:
    """The outer corners (4, 2) of a `size` crop's square in photo pixels, clockwise from the top left."""
    edge = np.array([[-0.5, -0.5, 1], [size - 0.5, -0.5, 1], [size - 0.5, size - 0.5, 1], [-0.5, size - 0.5, 1]])
    return edge @ crop_to_photo.T


def extended_photo(photo: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Rows top..bottom and columns left..right of the photo (float32), extended neutrally where they leave it.

    Past an edge, each pixel is that edge's row (or column) blurred along the edge, the more the
    further out (`EXTENSION_SPREAD`): the edge's colours carry on and calm down, and nothing
    from inside the photo is repeated. Corners carry on the extended rows.
    """
    height, width = photo.shape[:2]
    inner = photo[max(top, 0) : min(bottom, height), max(left, 0) : min(right, width)].astype(np.float32)
    inner = _extend_rows(inner, max(0, -top), max(0, bottom - height))
    return np.ascontiguousarray(
        _extend_rows(inner.transpose(1, 0, 2), max(0, -left), max(0, right - width)).transpose(1, 0, 2)
    )


def _extend_rows(image: np.ndarray, above: int, below: int) -> np.ndarray:
    parts = [image]
    if above:
        parts.insert(0, _spread(image[0], above)[::-1])
    if below:
        parts.append(_spread(image[-1], below))
    return np.concatenate(parts) if len(parts) > 1 else image


def _spread(row: np.ndarray, count: int) -> np.ndarray:
    """`count` rows (count, width, 3) past an edge `row`, the r-th blurred along the row with sigma SPREAD * r.

    Blurs at sigmas 1, 2, 4, ... are made once and each row blends the two around its own sigma.
    """
    sigmas = EXTENSION_SPREAD * np.arange(1, count + 1)
    levels = 2.0 ** np.arange(math.ceil(math.log2(max(float(sigmas[-1]), 1.0))) + 1)
    blurred = np.stack(
        [row]
        + [cv2.GaussianBlur(row[None], (0, 0), sigmaX=float(s), borderType=cv2.BORDER_REPLICATE)[0] for s in levels]
    )
    place = np.interp(sigmas, np.concatenate([[0.0], levels]), np.arange(len(levels) + 1))
    low = np.floor(place).astype(int)
    high = np.minimum(low + 1, len(levels))
    share = (place - low)[:, None, None].astype(np.float32)
    return blurred[low] * (1 - share) + blurred[high] * share


def filled_share(shape: tuple[int, ...], crop_to_photo: np.ndarray, size: int) -> float:
    """The share of the square that lies outside the photo (filled by the neutral extension), exactly.

    The square's corners are clipped to the photo's rectangle and the areas compared.
    """
    corners = square_corners(crop_to_photo, size)
    height, width = shape[:2]
    inside = corners
    sides = ((0, -0.5, False), (0, width - 0.5, True), (1, -0.5, False), (1, height - 0.5, True))
    for axis, limit, keep_below in sides:
        inside = _clip_polygon(inside, axis, limit, keep_below)
    whole = _area(corners)
    share = 1.0 - _area(inside) / whole if whole > 0 else 1.0
    return share if share > 1e-6 else 0.0


def _clip_polygon(points: np.ndarray, axis: int, limit: float, keep_below: bool) -> np.ndarray:
    """Sutherland-Hodgman: the part of a convex polygon on one side of the line `points[:, axis] == limit`."""
    kept = []
    for start, end in zip(points, np.roll(points, -1, axis=0), strict=True):
        start_in = (start[axis] <= limit) if keep_below else (start[axis] >= limit)
        end_in = (end[axis] <= limit) if keep_below else (end[axis] >= limit)
        if start_in:
            kept.append(start)
        if start_in != end_in:
            t = (limit - start[axis]) / (end[axis] - start[axis])
            kept.append(start + t * (end - start))
    return np.array(kept).reshape(-1, 2)


def _area(points: np.ndarray) -> float:
    if len(points) < 3:
        return 0.0
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def to_crop_coordinates(points: np.ndarray, crop_to_photo: np.ndarray) -> np.ndarray:
    """Photo pixel coordinates -> crop pixel coordinates."""
    linear, offset = crop_to_photo[:, :2], crop_to_photo[:, 2]
    return ((points - offset) @ np.linalg.inv(linear).T).astype(np.float32)


def aligned_crop(photo: np.ndarray, square: Square, size: int) -> AlignedCrop:
    """The square crop the engines animate, cut out of the photo."""
    crop_to_photo = square.crop_to_photo(size)
    image = warp_photo(photo, crop_to_photo, size)
    return AlignedCrop(image, crop_to_photo, square.side, filled_share(photo.shape, crop_to_photo, size))
