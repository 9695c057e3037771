"""Displacement fields over the face crop, built once per face from its 478-point mesh.

Each facial action (jaw open, lips spread or rounded, lower lip tucked, each eye closed,
brows raised) is a rule that moves some mesh points; a thin-plate spline through all
points (the rest anchored, the crop border fixed) turns that into a smooth field over the
whole crop. A frame's warp is a weighted sum of these fields plus a masked head motion,
always measured from the rest pose, so nothing accumulates and the identity cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.engines.default import mesh

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
    jaw[lower_lip, 1] = 1.0
    jaw[upper_lip, 1] = -0.08
    jaw[corners, 1] = 0.45
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


def thin_plate_fields(points: np.ndarray, values: np.ndarray, size: int, resolution: int) -> torch.Tensor:
    """Fields (k, size, size, 2) interpolating `values` (k, n, 2) at `points` (n, 2), smoothly.

    Solved once in float64 on normalised coordinates, evaluated on a `resolution` grid and
    upsampled, since the fields are smooth.
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
    axis = (torch.arange(resolution, dtype=torch.float64) + 0.5) / resolution
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
    basis = torch.cat([_tps_kernel(torch.cdist(grid, control) ** 2), torch.ones(len(grid), 1, dtype=torch.float64), grid], 1)
    field = (basis @ weights).float().reshape(resolution, resolution, k, 2).permute(2, 3, 0, 1)
    field = F.interpolate(field, size=(size, size), mode="bilinear", align_corners=False)
    return field.permute(0, 2, 3, 1).contiguous()


@dataclass
class FaceRig:
    """Everything needed to move one face: action fields, head mask and measures."""

    fields: torch.Tensor
    moves: torch.Tensor
    head_mask: torch.Tensor
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
        fields = thin_plate_fields(points, values, size, resolution=max(size // 4, 32))
        mask = head_mask(geometry, size)
        rows = np.clip(landmarks[:, 1].round().astype(int), 0, size - 1)
        columns = np.clip(landmarks[:, 0].round().astype(int), 0, size - 1)
        return cls(
            fields=fields.to(device),
            moves=torch.from_numpy(np.stack([moves[name] for name in ACTIONS])).float().to(device),
            head_mask=mask.to(device),
            geometry=geometry,
            landmarks=torch.from_numpy(landmarks).float().to(device),
            landmark_mask=mask[rows, columns].to(device),
        )


def head_mask(geometry: FaceGeometry, size: int) -> torch.Tensor:
    """Soft 0..1 mask of head and hair, so head motion leaves the background where it is."""
    axis = torch.arange(size, dtype=torch.float32)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    cx, cy = (float(v) for v in geometry.face_centre)
    rx, ry = (float(v) for v in geometry.face_radius)
    # An ellipse a bit larger than the face, reaching up over the hair.
    dx = (gx - cx) / (rx * 1.45)
    dy = (gy - (cy - 0.25 * ry)) / (ry * 1.55)
    distance = torch.sqrt(dx**2 + dy**2)
    return torch.clamp((1.15 - distance) / 0.3, 0.0, 1.0)


def warp_frames(
    image: torch.Tensor,
    rig: FaceRig,
    weights: torch.Tensor,
    roll_degrees: torch.Tensor,
    shift: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the rest image (3, s, s) float for each frame; returns frames (b, 3, s, s) and moved mesh.

    `weights` (b, actions) scale the action fields; roll and shift move the head region.
    Sampling is backward: each output pixel reads where its content came from.
    """
    size = image.shape[-1]
    displacement = torch.einsum("ba,ahwc->bhwc", weights, rig.fields)
    axis = torch.arange(size, dtype=torch.float32, device=image.device)
    gy, gx = torch.meshgrid(axis, axis, indexing="ij")
    centre = torch.as_tensor(rig.geometry.face_centre, dtype=torch.float32, device=image.device)
    angle = torch.deg2rad(roll_degrees)[:, None, None]
    rx, ry = gx - centre[0], gy - centre[1]
    head_dx = torch.cos(angle) * rx - torch.sin(angle) * ry - rx + shift[:, 0, None, None]
    head_dy = torch.sin(angle) * rx + torch.cos(angle) * ry - ry + shift[:, 1, None, None]
    displacement = displacement + torch.stack([head_dx, head_dy], -1) * rig.head_mask[None, :, :, None]
    # One fixed-point step inverts the forward displacement well for smooth fields.
    first = torch.stack([gx, gy], -1)[None] - displacement
    normalised = (2 * first + 1) / size - 1
    resampled = F.grid_sample(displacement.permute(0, 3, 1, 2), normalised, mode="bilinear", padding_mode="border", align_corners=False)
    source = torch.stack([gx, gy], -1)[None] - resampled.permute(0, 2, 3, 1)
    grid = (2 * source + 1) / size - 1
    batch = image.expand(len(weights), -1, -1, -1)
    frames = F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)
    moved = rig.landmarks[None] + torch.einsum("ba,anc->bnc", weights, rig.moves)
    mx, my = moved[..., 0] - centre[0], moved[..., 1] - centre[1]
    angle = angle[:, :, 0]
    head_at_points = torch.stack(
        [
            torch.cos(angle) * mx - torch.sin(angle) * my - mx + shift[:, 0, None],
            torch.sin(angle) * mx + torch.cos(angle) * my - my + shift[:, 1, None],
        ],
        -1,
    )
    return frames, moved + head_at_points * rig.landmark_mask[None, :, None]
