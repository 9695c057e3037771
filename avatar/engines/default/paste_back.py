"""Putting the animated face back into the whole photo, so the video keeps the person's framing.

Only the box of the photo that the moving part of the crop covers is ever recomputed: each
photo pixel there reads the animated crop through the crop's affine map and is blended in
with a feathered mask (the head mask, faded towards the crop's edges), so no seam shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.engines.default.warp import FaceGeometry, head_mask

# Longest side of the full-photo video: larger photos are scaled down to keep encoding fast.
MAX_PHOTO_SIDE = 1280
# Width (crop pixels) over which the pasted face fades out towards the crop's own edges.
EDGE_FEATHER = 12.0


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


@dataclass
class PasteBack:
    """The photo (scaled for video), the box the face touches, and where each box pixel reads the crop."""

    photo: torch.Tensor
    top: int
    left: int
    grid: torch.Tensor
    alpha: torch.Tensor

    @classmethod
    def build(
        cls,
        photo: np.ndarray,
        crop_to_photo: np.ndarray,
        geometry: FaceGeometry,
        crop_box: tuple[slice, slice],
        device: torch.device,
    ) -> PasteBack:
        """`crop_box` (rows, columns) is the part of the crop that moves; the grid reads from it."""
        height, width = photo.shape[:2]
        scale = min(1.0, MAX_PHOTO_SIDE / max(height, width))
        out_h, out_w = _even(height * scale), _even(width * scale)
        source = torch.from_numpy(photo).permute(2, 0, 1)[None].float()
        if (out_h, out_w) != (height, width):
            source = F.interpolate(source, size=(out_h, out_w), mode="bilinear", antialias=True, align_corners=False)
        sx, sy = out_w / width, out_h / height
        # Crop pixel -> output pixel, then the box of the moving crop part in output pixels.
        affine = crop_to_photo * np.array([[sx], [sy]])
        rows, columns = crop_box
        corners = np.array(
            [
                [columns.start, rows.start, 1],
                [columns.stop, rows.start, 1],
                [columns.start, rows.stop, 1],
                [columns.stop, rows.stop, 1],
            ],
            float,
        )
        mapped = corners @ affine.T
        left = max(int(math.floor(mapped[:, 0].min())), 0)
        top = max(int(math.floor(mapped[:, 1].min())), 0)
        right = min(int(math.ceil(mapped[:, 0].max())) + 1, out_w)
        bottom = min(int(math.ceil(mapped[:, 1].max())) + 1, out_h)
        ys, xs = torch.meshgrid(
            torch.arange(top, bottom, dtype=torch.float64),
            torch.arange(left, right, dtype=torch.float64),
            indexing="ij",
        )
        inverse = np.linalg.inv(np.vstack([affine, [0, 0, 1]]))[:2]
        cx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
        cy = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
        # Normalised over the moving crop part, which is what the renderer hands over.
        box_h, box_w = rows.stop - rows.start, columns.stop - columns.start
        grid = torch.stack(
            [(2 * (cx - columns.start) + 1) / box_w - 1, (2 * (cy - rows.start) + 1) / box_h - 1], -1
        ).float()
        inside = torch.minimum(
            torch.minimum(cx - columns.start, columns.stop - 1 - cx), torch.minimum(cy - rows.start, rows.stop - 1 - cy)
        )
        edge = torch.clamp(inside.float() / EDGE_FEATHER, 0.0, 1.0)
        alpha = head_mask(geometry, cx.float(), cy.float()) * edge
        return cls(
            photo=source[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).to(device),
            top=top,
            left=left,
            grid=grid[None].to(device),
            alpha=alpha[None, None].to(device),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.photo.shape[0]), int(self.photo.shape[1])

    def paste(self, windows: torch.Tensor) -> torch.Tensor:
        """Whole-photo frames (b, H, W, 3) uint8 from animated crop windows (b, 3, h, w) float."""
        count = len(windows)
        height, width = self.grid.shape[1:3]
        face = F.grid_sample(
            windows, self.grid.expand(count, -1, -1, -1), mode="bilinear", padding_mode="border", align_corners=False
        )
        box = (slice(self.top, self.top + height), slice(self.left, self.left + width))
        background = self.photo[box].permute(2, 0, 1)[None].float()
        blended = background + (face - background) * self.alpha
        frames = self.photo[None].repeat(count, 1, 1, 1)
        frames[:, box[0], box[1]] = (blended + 0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return frames
