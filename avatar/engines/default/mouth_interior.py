"""Painting what a closed-mouth photo does not have: the dark mouth cavity and a hint of teeth.

The opening is the polygon of the moved inner-lip points; inside it a cavity coloured from
the person's own lips (darkened, darker towards the corners), upper teeth tinted to the
face's light, and a redder tongue shade at the bottom, feathered into the lips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.engines.default import mesh

TEETH = np.array([228.0, 222.0, 208.0])


@dataclass(frozen=True)
class MouthColours:
    """Colours taken from the photo so that the painted interior matches its light."""

    cavity: torch.Tensor
    tongue: torch.Tensor
    teeth: torch.Tensor

    @classmethod
    def sample(cls, crop: np.ndarray, landmarks: np.ndarray, device: torch.device) -> MouthColours:
        points = landmarks[list(mesh.OUTER_LOWER_LIP + mesh.OUTER_UPPER_LIP)].round().astype(int)
        points = np.clip(points, 0, crop.shape[0] - 1)
        lips = crop[points[:, 1], points[:, 0]].astype(np.float64).mean(axis=0)
        oval = landmarks[list(mesh.FACE_OVAL)]
        x0, y0 = np.clip(oval.min(axis=0).astype(int), 0, crop.shape[0] - 1)
        x1, y1 = np.clip(oval.max(axis=0).astype(int), 0, crop.shape[0] - 1)
        brightness = crop[y0:y1, x0:x1].astype(np.float64).mean() / 150.0
        light = float(np.clip(brightness, 0.55, 1.05))
        tensor = lambda rgb: torch.tensor(rgb, dtype=torch.float32, device=device)[:, None, None]  # noqa: E731
        return cls(cavity=tensor(lips * 0.22), tongue=tensor(lips * 0.55), teeth=tensor(TEETH * light))


def polygon_mask(polygons: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Even-odd fill (b, height, width) of polygons (b, p, 2) over a window of the frame."""
    ys = torch.arange(top, top + height, dtype=torch.float32, device=polygons.device) + 0.5
    xs = torch.arange(left, left + width, dtype=torch.float32, device=polygons.device) + 0.5
    py, px = ys[None, :, None, None], xs[None, None, :, None]
    start = polygons[:, None, None, :, :]
    end = torch.roll(polygons, -1, dims=1)[:, None, None, :, :]
    xi, yi, xj, yj = start[..., 0], start[..., 1], end[..., 0], end[..., 1]
    crosses = (yi > py) != (yj > py)
    x_cross = (xj - xi) * (py - yi) / torch.where((yj - yi).abs() < 1e-6, torch.full_like(yj, 1e-6), yj - yi) + xi
    inside = (crosses & (px < x_cross)).sum(dim=-1) % 2
    return inside.float()


def paint_mouth(
    frames: torch.Tensor, moved: torch.Tensor, colours: MouthColours, mouth_width: float
) -> torch.Tensor:
    """Paint the interior into frames (b, 3, s, s) in 0..255 wherever the lips are apart."""
    size = frames.shape[-1]
    polygons = moved[:, list(mesh.MOUTH_OPENING)]
    gap = moved[:, mesh.INNER_LIP_MID[1], 1] - moved[:, mesh.INNER_LIP_MID[0], 1]
    strength = torch.clamp((gap - 1.5) / 4.0, 0.0, 1.0)
    if float(strength.max()) <= 0.0:
        return frames
    pad = 4
    left = int(max(float(polygons[..., 0].min()) - pad, 0))
    top = int(max(float(polygons[..., 1].min()) - pad, 0))
    right = int(min(float(polygons[..., 0].max()) + pad + 1, size))
    bottom = int(min(float(polygons[..., 1].max()) + pad + 1, size))
    if right - left < 2 or bottom - top < 2:
        return frames
    height, width = bottom - top, right - left
    inside = polygon_mask(polygons, top, left, height, width)
    # Depth from the upper and lower lip edge, column by column, in pixels.
    from_top = torch.cumsum(inside, dim=1)
    from_bottom = torch.flip(torch.cumsum(torch.flip(inside, [1]), dim=1), [1])
    teeth_height = torch.clamp(gap * 0.35, max=mouth_width * 0.09)[:, None, None]
    teeth = ((from_top <= teeth_height) & (inside > 0)).float()
    tongue = ((from_bottom <= gap[:, None, None] * 0.3) & (inside > 0)).float()
    centre_x = polygons[..., 0].mean(dim=1)[:, None, None]
    xs = torch.arange(left, right, dtype=torch.float32, device=frames.device)[None, None, :] + 0.5
    corner_shade = 1.0 - 0.55 * torch.clamp((xs - centre_x).abs() / (mouth_width / 2), 0.0, 1.0)
    colour = colours.cavity[None] * (1 - tongue[:, None]) + colours.tongue[None] * tongue[:, None] * 0.8
    colour = colour * (1 - teeth[:, None]) + colours.teeth[None] * teeth[:, None] * (0.75 + 0.25 * corner_shade[:, None])
    colour = colour * corner_shade[:, None]
    alpha = F.avg_pool2d(inside[:, None], 3, stride=1, padding=1) * strength[:, None, None, None]
    window = frames[:, :, top:bottom, left:right]
    frames[:, :, top:bottom, left:right] = window * (1 - alpha) + colour * alpha
    return frames
