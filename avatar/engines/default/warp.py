"""Displacement fields over the face crop, built once per face from its 478-point mesh.

Each facial action (jaw open, lips spread or rounded, lower lip tucked, each eye closed,
brows raised) is a rule that moves some mesh points; a thin-plate spline through all
points (the rest anchored, the crop border fixed) turns that into a smooth field over the
whole crop. A frame's warp is a weighted sum of these fields plus a masked head motion,
always measured from the rest pose, so nothing accumulates and the identity cannot drift.

Speed: the fields are smooth, so they live on a grid 4x coarser than the crop, and only the
window around the head (where the head mask is non-zero) is ever warped; every pixel
outside it is the rest photo itself, so the background cannot swim.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.engines.default import mesh

FIELD_STEP = 4
ACTIONS = ("jaw", "lips_close", "spread", "round", "tuck", "blink_left", "blink_right", "brow")


@dataclass(frozen=True)
class FaceGeometry:
    """Measures of a face that set how far its parts may move (pixels of the crop)."""

    mouth_width: float
    rest_gap: float
    mouth_centre: np.ndarray
    chin: np.ndarray
    face_centre: np.ndarray
    face_radius: np.ndarray

    @classmethod
    def measure(cls, landmarks: np.ndarray) -> FaceGeometry:
        left, right = landmarks[mesh.MOUTH_CORNERS[0]], landmarks[mesh.MOUTH_CORNERS[1]]
        upper, lower = landmarks[mesh.INNER_LIP_MID[0]], landmarks[mesh.INNER_LIP_MID[1]]
        oval = landmarks[list(mesh.FACE_OVAL)]
        return cls(
            mouth_width=float(np.hypot(*(right - left))),
            rest_gap=float(max(lower[1] - upper[1], 0.0)),
            mouth_centre=(left + right + upper + lower) / 4,
            chin=landmarks[mesh.CHIN],
            face_centre=oval.mean(axis=0),
            face_radius=(oval.max(axis=0) - oval.min(axis=0)) / 2,
        )


def _action_displacements(landmarks: np.ndarray, geometry: FaceGeometry) -> dict[str, np.ndarray]:
    """Per action, how each mesh point moves for one unit of that action (pixels)."""
    n = len(landmarks)
    y = landmarks[:, 1]
    x = landmarks[:, 0]
    mouth_y = geometry.mouth_centre[1]
    below = np.clip((y - mouth_y) / max(geometry.chin[1] - mouth_y, 1.0), 0.0, 1.0)
    within_face = np.abs(x - geometry.face_centre[0]) < geometry.face_radius[0] * 1.05
    lower_lip = np.zeros(n, bool)
    lower_lip[list(mesh.LOWER_LIP)] = True
    upper_lip = np.zeros(n, bool)
    upper_lip[list(mesh.UPPER_LIP)] = True
    corners = list(mesh.MOUTH_CORNERS_ALL)
    side = np.sign(x - geometry.mouth_centre[0])
    half_width = geometry.mouth_width / 2

    moves = {name: np.zeros((n, 2), np.float64) for name in ACTIONS}
    # Jaw: the lower lip and everything below the mouth drop, fading towards the jaw's corners.
    jaw = moves["jaw"]
    jaw[:, 1] = np.where(within_face, 0.85 * below, 0.0)
    # The lower lip drops most in the middle, so that the opening is a lens, not a box.
    lens = np.sqrt(np.clip(1.0 - (np.abs(x - geometry.mouth_centre[0]) / max(half_width, 1.0)) ** 2, 0.0, 1.0))
    jaw[lower_lip, 1] = 0.4 + 0.6 * lens[lower_lip]
    jaw[upper_lip, 1] = -0.08 * lens[upper_lip]
    jaw[corners, 1] = 0.4
    # Lips closed: the lower lip rises to meet the upper one (closes a photo's open mouth).
    close = moves["lips_close"]
    close[lower_lip, 1] = -1.0
    close[corners, 1] = -0.3
    # Spread (e, i) and round (o, u): corners move out or in, lips thin or pout.
    distance = np.clip(np.abs(x - geometry.mouth_centre[0]) / max(half_width, 1.0), 0.0, 1.0)
    lips = lower_lip | upper_lip
    spread = moves["spread"]
    spread[lips, 0] = side[lips] * distance[lips]
    spread[corners, 1] = -0.25
    roundness = moves["round"]
    roundness[lips, 0] = -side[lips] * distance[lips] * 0.9
    roundness[upper_lip, 1] = -0.25 * (1 - distance[upper_lip])
    roundness[lower_lip, 1] = 0.25 * (1 - distance[lower_lip])
    # Lower lip tucked under the upper teeth (f, v).
    tuck = moves["tuck"]
    tuck[lower_lip, 1] = -1.0
    # Eyelids: each upper-lid point drops to its lower-lid partner; brows follow a little.
    for name, pairs, brow in (
        ("blink_left", mesh.LEFT_EYELID_PAIRS, mesh.LEFT_BROW),
        ("blink_right", mesh.RIGHT_EYELID_PAIRS, mesh.RIGHT_BROW),
    ):
        blink = moves[name]
        for upper, lower in pairs:
            gap = landmarks[lower, 1] - landmarks[upper, 1]
            blink[upper, 1] = 0.85 * gap
            blink[lower, 1] = -0.15 * gap
        blink[list(brow), 1] = 0.12 * np.mean([landmarks[lo, 1] - landmarks[up, 1] for up, lo in pairs])
    brow_move = moves["brow"]
    brow_move[list(mesh.LEFT_BROW) + list(mesh.RIGHT_BROW), 1] = -1.0
    for upper, _ in mesh.LEFT_EYELID_PAIRS + mesh.RIGHT_EYELID_PAIRS:
        brow_move[upper, 1] = -0.25
    return moves


def _border_points(size: int, per_side: int = 12) -> np.ndarray:
    ticks = np.linspace(0, size - 1, per_side)
    top = np.stack([ticks, np.zeros_like(ticks)], 1)
    bottom = np.stack([ticks, np.full_like(ticks, size - 1)], 1)
    left = np.stack([np.zeros_like(ticks), ticks], 1)[1:-1]
    right = np.stack([np.full_like(ticks, size - 1), ticks], 1)[1:-1]
    return np.concatenate([top, bottom, left, right])


def _tps_kernel(squared_distance: torch.Tensor) -> torch.Tensor:
    return 0.5 * squared_distance * torch.log(squared_distance.clamp_min(1e-12))


def cell_centres(size: int, step: int) -> np.ndarray:
    """Crop-pixel coordinates of the centres of a grid `step` times coarser than the crop."""
    return (np.arange(-(-size // step)) + 0.5) * step - 0.5


def thin_plate_fields(points: np.ndarray, values: np.ndarray, size: int, step: int) -> torch.Tensor:
    """Fields (k, cells, cells, 2) interpolating `values` (k, n, 2) at `points` (n, 2), smoothly.

    Solved once in float64 on normalised coordinates and evaluated at the centres of a grid
    `step` times coarser than the crop; the warp upsamples them, since they are smooth.
    """
    control = torch.from_numpy(points / size).double()
    count = len(control)
    kernel = _tps_kernel(torch.cdist(control, control) ** 2) + 1e-6 * torch.eye(count, dtype=torch.float64)
    affine = torch.cat([torch.ones(count, 1, dtype=torch.float64), control], 1)
    system = torch.zeros(count + 3, count + 3, dtype=torch.float64)
    system[:count, :count] = kernel
    system[:count, count:] = affine
    system[count:, :count] = affine.T
    k = values.shape[0]
    rhs = torch.zeros(count + 3, k * 2, dtype=torch.float64)
    rhs[:count] = torch.from_numpy(values).double().permute(1, 0, 2).reshape(count, k * 2)
    weights = torch.linalg.solve(system, rhs)
    axis = torch.from_numpy(cell_centres(size, step) / size)
    cells = len(axis)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    basis = torch.cat(
        [_tps_kernel(torch.cdist(grid, control) ** 2), torch.ones(len(grid), 1, dtype=torch.float64), grid], 1
    )
    return (basis @ weights).float().reshape(cells, cells, k, 2).permute(2, 0, 1, 3).contiguous()


@dataclass(frozen=True)
class Window:
    """The part of the crop that may move, in cells of the coarse grid (rows, then columns)."""

    top: int
    left: int
    bottom: int
    right: int

    def pixels(self, step: int, size: int) -> tuple[slice, slice]:
        """The crop pixels this window covers."""
        return slice(self.top * step, min(self.bottom * step, size)), slice(
            self.left * step, min(self.right * step, size)
        )

    def union(self, other: Window) -> Window:
        return Window(
            min(self.top, other.top),
            min(self.left, other.left),
            max(self.bottom, other.bottom),
            max(self.right, other.right),
        )


@dataclass
class FaceRig:
    """Everything needed to move one face: coarse action fields, head mask, window and measures."""

    size: int
    fields: torch.Tensor
    moves: torch.Tensor
    head_mask: torch.Tensor
    window: Window
    geometry: FaceGeometry
    landmarks: torch.Tensor
    landmark_mask: torch.Tensor

    @classmethod
    def build(cls, landmarks: np.ndarray, size: int, device: torch.device) -> FaceRig:
        geometry = FaceGeometry.measure(landmarks)
        moves = _action_displacements(landmarks, geometry)
        border = _border_points(size)
        points = np.concatenate([landmarks, border])
        values = np.stack([np.concatenate([moves[name], np.zeros_like(border)]) for name in ACTIONS])
        fields = thin_plate_fields(points, values, size, FIELD_STEP)
        centres = torch.from_numpy(cell_centres(size, FIELD_STEP)).float()
        mask = head_mask(geometry, centres)
        # Outside the head nothing moves: the fields fade out with the mask.
        fields = fields * mask[None, :, :, None]
        rows = torch.nonzero(mask.amax(dim=1) > 0)[:, 0]
        columns = torch.nonzero(mask.amax(dim=0) > 0)[:, 0]
        cells = len(centres)
        window = Window(
            top=max(int(rows.min()) - 1, 0),
            left=max(int(columns.min()) - 1, 0),
            bottom=min(int(rows.max()) + 2, cells),
            right=min(int(columns.max()) + 2, cells),
        )
        at_points = head_mask(
            geometry, torch.from_numpy(landmarks[:, 0]).float(), torch.from_numpy(landmarks[:, 1]).float()
        )
        return cls(
            size=size,
            fields=fields.to(device),
            moves=torch.from_numpy(np.stack([moves[name] for name in ACTIONS])).float().to(device),
            head_mask=mask.to(device),
            window=window,
            geometry=geometry,
            landmarks=torch.from_numpy(landmarks).float().to(device),
            landmark_mask=at_points.to(device),
        )


def head_mask(geometry: FaceGeometry, xs: torch.Tensor, ys: torch.Tensor | None = None) -> torch.Tensor:
    """Soft 0..1 mask of head and hair, so head motion leaves the background where it is.

    Given one axis of coordinates, the mask over that grid; given xs and ys, at those points.
    """
    if ys is None:
        ys, xs = torch.meshgrid(xs, xs, indexing="ij")
    cx, cy = (float(v) for v in geometry.face_centre)
    rx, ry = (float(v) for v in geometry.face_radius)
    # An ellipse a bit larger than the face, reaching up over the hair.
    dx = (xs - cx) / (rx * 1.45)
    dy = (ys - (cy - 0.25 * ry)) / (ry * 1.55)
    distance = torch.sqrt(dx**2 + dy**2)
    return torch.clamp((1.15 - distance) / 0.3, 0.0, 1.0)


@dataclass
class RigBatch:
    """One or more faces warped together in one forward: their fields cut to a shared window.

    The coarse tensors cover the window plus one cell all round, so that upsampling them is
    exact over the whole window.
    """

    size: int
    window: Window
    cells: Window
    fields: torch.Tensor
    head_mask: torch.Tensor
    centres: torch.Tensor
    face_centre: torch.Tensor

    @classmethod
    def stack(cls, rigs: list[FaceRig]) -> RigBatch:
        size = rigs[0].size
        device = rigs[0].fields.device
        window = rigs[0].window
        for rig in rigs[1:]:
            window = window.union(rig.window)
        count = rigs[0].head_mask.shape[0]
        cells = Window(
            max(window.top - 1, 0), max(window.left - 1, 0), min(window.bottom + 1, count), min(window.right + 1, count)
        )
        rows, columns = slice(cells.top, cells.bottom), slice(cells.left, cells.right)
        centres = torch.from_numpy(cell_centres(size, FIELD_STEP)).float().to(device)
        return cls(
            size=size,
            window=window,
            cells=cells,
            fields=torch.stack([rig.fields[:, rows, columns] for rig in rigs]).flatten(2),
            head_mask=torch.stack([rig.head_mask[rows, columns] for rig in rigs]),
            centres=torch.stack(torch.meshgrid(centres[rows], centres[columns], indexing="ij")[::-1], -1),
            face_centre=torch.stack(
                [torch.as_tensor(rig.geometry.face_centre, dtype=torch.float32) for rig in rigs]
            ).to(device),
        )

    @property
    def pixel_shape(self) -> tuple[int, int]:
        rows, columns = self.window.pixels(FIELD_STEP, self.size)
        return rows.stop - rows.start, columns.stop - columns.start

    @property
    def pixel_offset(self) -> tuple[int, int]:
        """Where the window starts inside the upsampled coarse tensors."""
        return (self.window.top - self.cells.top) * FIELD_STEP, (self.window.left - self.cells.left) * FIELD_STEP


def _head_motion(
    points: torch.Tensor, centre: torch.Tensor, roll_degrees: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Displacement of `points` (b, ..., 2) by a roll about `centre` (b, 2) plus a shift (b, 2)."""
    extra = (1,) * (points.dim() - 2)
    angle = torch.deg2rad(roll_degrees).view(-1, *extra)
    cos, sin = torch.cos(angle), torch.sin(angle)
    centre = centre.view(-1, *extra, 2)
    rx, ry = points[..., 0] - centre[..., 0], points[..., 1] - centre[..., 1]
    dx = cos * rx - sin * ry - rx + shift[:, 0].view(-1, *extra)
    dy = sin * rx + cos * ry - ry + shift[:, 1].view(-1, *extra)
    return torch.stack([dx, dy], -1)


def warp_window(
    images: torch.Tensor,
    rigs: RigBatch,
    faces: torch.Tensor,
    weights: torch.Tensor,
    roll_degrees: torch.Tensor,
    shift: torch.Tensor,
) -> torch.Tensor:
    """Warp the window of each frame's rest image; returns (b, 3, h, w) float in 0..255.

    `images` (faces, 3, s, s) channels-last; `faces` (b,) says which face each frame shows;
    `weights` (b, actions) scale the action fields; roll and shift move the head region.
    Sampling is backward: each output pixel reads where its content came from.
    """
    count = len(weights)
    cells = rigs.head_mask.shape[1:]
    if len(rigs.fields) == 1:
        displacement = weights @ rigs.fields[0]
    else:
        displacement = torch.einsum("ba,bak->bk", weights, rigs.fields[faces])
    displacement = displacement.view(count, *cells, 2)
    head = _head_motion(rigs.centres.expand(count, -1, -1, -1), rigs.face_centre[faces], roll_degrees, shift)
    displacement = displacement + head * rigs.head_mask[faces, :, :, None]
    # One fixed-point step inverts the forward displacement well for smooth fields (on the coarse grid).
    source = (rigs.centres[None] - displacement + 0.5) / FIELD_STEP - torch.tensor(
        [rigs.cells.left, rigs.cells.top], device=weights.device
    )
    normalised = 2 * source / torch.tensor([cells[1], cells[0]], device=weights.device) - 1
    inverse = F.grid_sample(
        displacement.permute(0, 3, 1, 2), normalised, mode="bilinear", padding_mode="border", align_corners=False
    )
    # The sampling grid, normalised over the crop, is affine in the cell centres, so it upsamples exactly.
    coarse = (2 * (rigs.centres.permute(2, 0, 1)[None] - inverse) + 1) / rigs.size - 1
    height, width = rigs.pixel_shape
    grid = F.interpolate(coarse, scale_factor=FIELD_STEP, mode="bilinear", align_corners=False)
    top, left = rigs.pixel_offset
    grid = grid[:, :, top : top + height, left : left + width].permute(0, 2, 3, 1).contiguous()
    batch = images[faces] if len(images) > 1 else images.expand(count, -1, -1, -1)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def moved_landmarks(
    rig: FaceRig, weights: torch.Tensor, roll_degrees: torch.Tensor, shift: torch.Tensor
) -> torch.Tensor:
    """Where each mesh point of `rig` goes in each frame (b, n, 2), in crop pixels."""
    moved = rig.landmarks[None] + torch.einsum("ba,anc->bnc", weights, rig.moves)
    centre = torch.as_tensor(rig.geometry.face_centre, dtype=torch.float32, device=weights.device)[None].expand(
        len(weights), 2
    )
    return moved + _head_motion(moved, centre, roll_degrees, shift) * rig.landmark_mask[None, :, None]
