"""Painting what a closed-mouth photo does not have: the dark mouth cavity and a hint of teeth.

The opening is bounded, column by column, by the moved upper and lower inner-lip lines, so
coverage and depth are computed analytically (anti-aliased, no polygon fill). Inside: a
cavity coloured from the person's own lips and darkened towards the corners, upper teeth
tinted to the face's light (or taken from the photo's own teeth when it shows them), a
softer lower-teeth hint and a tongue shade when the jaw drops wide. Edges are as soft as
the crop itself, so a photo upscaled into the crop does not get a razor-sharp mouth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from avatar.engines.default import mesh

# Off-white of teeth in neutral light, and how much of the skin's tint they take on.
TEETH = np.array([236.0, 230.0, 216.0])
TEETH_SKIN_TINT = 0.3
# Opening (pixels between the lip midpoints) at which the interior starts and is fully painted.
OPEN_FROM, OPEN_FULL = 1.0, 4.0
# Upper teeth: height as a share of the opening, capped by a share of the mouth width.
UPPER_TEETH_SHARE, UPPER_TEETH_CAP = 0.4, 0.08
# Cavity and tongue as shares of the lip colour per channel: a warm dark red, not grey.
CAVITY_OF_LIPS = np.array([0.24, 0.13, 0.12])
TONGUE_OF_LIPS = np.array([0.8, 0.45, 0.45])
# A rest opening taller than this share of the mouth width shows the photo's own teeth.
PHOTO_TEETH_GAP = 0.04
# Where the lip midpoints (13 and 14) sit in the inner-lip chains.
MID = mesh.INNER_UPPER_LIP.index(mesh.INNER_LIP_MID[0])


@dataclass(frozen=True)
class MouthColours:
    """Colours taken from the photo so that the painted interior matches its light (one row per face)."""

    cavity: torch.Tensor
    tongue: torch.Tensor
    teeth: torch.Tensor
    softness: torch.Tensor

    @classmethod
    def sample(cls, crop: np.ndarray, landmarks: np.ndarray, crop_scale: float, device: torch.device) -> MouthColours:
        """`crop_scale` is photo pixels per crop pixel: below 1 the crop is upscaled and softer."""
        size = crop.shape[0]
        points = np.clip(landmarks[list(mesh.OUTER_LOWER_LIP + mesh.OUTER_UPPER_LIP)].round().astype(int), 0, size - 1)
        lips = crop[points[:, 1], points[:, 0]].astype(np.float64).mean(axis=0)
        cheeks = np.clip(landmarks[list(mesh.CHEEKS)].round().astype(int), 0, size - 1)
        skin = crop[cheeks[:, 1], cheeks[:, 0]].astype(np.float64).mean(axis=0)
        light = float(np.clip(skin.mean() / 185.0, 0.5, 0.95))
        tint = skin / max(skin.mean(), 1.0)
        teeth = TEETH * light * ((1 - TEETH_SKIN_TINT) + TEETH_SKIN_TINT * tint)
        own = _photo_teeth(crop, landmarks)
        if own is not None:
            teeth = own
        softness = float(np.clip(0.7 / max(crop_scale, 1e-3), 0.7, 3.0))
        rows = np.stack([lips * CAVITY_OF_LIPS, lips * TONGUE_OF_LIPS, teeth])
        tensors = torch.tensor(rows, dtype=torch.float32, device=device)
        return cls(
            cavity=tensors[0:1],
            tongue=tensors[1:2],
            teeth=tensors[2:3],
            softness=torch.tensor([softness], device=device),
        )

    @classmethod
    def stack(cls, colours: list[MouthColours]) -> MouthColours:
        return cls(
            *(torch.cat([getattr(c, name) for c in colours]) for name in ("cavity", "tongue", "teeth", "softness"))
        )


def _photo_teeth(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The colour of the teeth the photo already shows between parted lips, if it shows any."""
    upper, lower = landmarks[mesh.INNER_LIP_MID[0]], landmarks[mesh.INNER_LIP_MID[1]]
    left, right = landmarks[mesh.MOUTH_CORNERS[0]], landmarks[mesh.MOUTH_CORNERS[1]]
    width = float(np.hypot(*(right - left)))
    if lower[1] - upper[1] < PHOTO_TEETH_GAP * width:
        return None
    x0, x1 = int(upper[0] - 0.2 * width), int(upper[0] + 0.2 * width)
    y0, y1 = int(upper[1] + 1), int(lower[1] - 1)
    patch = crop[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    if len(patch) < 8:
        return None
    brightness = patch.mean(axis=1)
    bright = patch[brightness >= np.percentile(brightness, 70)]
    return bright.mean(axis=0) * 0.92


def _line_at(chain: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """y of a left-to-right polyline (b, p, 2) at columns xs (w,), per frame (b, w); flat past its ends."""
    px = torch.cummax(chain[..., 0], dim=1).values.contiguous()
    py = chain[..., 1]
    query = xs[None].expand(len(chain), -1).contiguous()
    index = torch.searchsorted(px, query).clamp(1, chain.shape[1] - 1)
    x0, x1 = px.gather(1, index - 1), px.gather(1, index)
    y0, y1 = py.gather(1, index - 1), py.gather(1, index)
    t = ((query - x0) / (x1 - x0).clamp_min(1e-3)).clamp(0.0, 1.0)
    return y0 + (y1 - y0) * t


def _band(depth: torch.Tensor, height: torch.Tensor, softness: torch.Tensor) -> torch.Tensor:
    """Soft 0..1 band from depth 0 to `height` pixels deep, its far edge blurred by `softness`."""
    return torch.clamp((height - depth) / softness + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class MouthAtRest:
    """Per frame: the rest crop, its inner-lip lines (b, p, 2) and mouth width, in the frames' pixels."""

    images: torch.Tensor
    upper: torch.Tensor
    lower: torch.Tensor
    width: torch.Tensor
    origin: torch.Tensor


def paint_mouth(frames: torch.Tensor, moved: torch.Tensor, colours: MouthColours, rest: MouthAtRest) -> torch.Tensor:
    """Paint the interior into frames (b, 3, h, w) in 0..255 wherever the lips are apart.

    `moved` (b, n, 2) are the mesh points in the frames' pixels; `colours` and `mouth` hold
    one row per frame. Where the photo's own lips are apart, its own upper teeth are used:
    they stay with the upper lip while the jaw opens below them.
    """
    height, width = frames.shape[-2:]
    upper_chain = moved[:, list(mesh.INNER_UPPER_LIP)]
    lower_chain = moved[:, list(mesh.INNER_LOWER_LIP)]
    gap = moved[:, mesh.INNER_LIP_MID[1], 1] - moved[:, mesh.INNER_LIP_MID[0], 1]
    strength = torch.clamp((gap - OPEN_FROM) / (OPEN_FULL - OPEN_FROM), 0.0, 1.0)
    # A photo whose lips are apart, closing: the squeezed teeth are hidden under the lips' own colour.
    rest_gap = rest.lower[:, MID, 1] - rest.upper[:, MID, 1]
    closing = torch.clamp(1.0 - gap / OPEN_FULL, 0.0, 1.0) * torch.clamp(rest_gap / OPEN_FULL - 0.5, 0.0, 1.0)
    if float(strength.max()) <= 0.0 and float(closing.max()) <= 0.0:
        return frames
    pad = 4
    both = torch.cat([upper_chain, lower_chain], 1)
    left = int(max(float(both[..., 0].min()) - pad, 0))
    top = int(max(float(both[..., 1].min()) - pad, 0))
    right = int(min(float(both[..., 0].max()) + pad + 1, width))
    bottom = int(min(float(both[..., 1].max()) + pad + 1, height))
    if right - left < 2 or bottom - top < 2:
        return frames
    xs = torch.arange(left, right, dtype=torch.float32, device=frames.device) + 0.5
    ys = torch.arange(top, bottom, dtype=torch.float32, device=frames.device)[None, :, None] + 0.5
    upper = _line_at(upper_chain, xs)[:, None, :]
    lower = _line_at(lower_chain, xs)[:, None, :]
    soft = colours.softness[:, None, None]
    from_top, from_bottom = ys - upper, lower - ys
    inside = torch.clamp(from_top / soft + 0.5, 0.0, 1.0) * torch.clamp(from_bottom / soft + 0.5, 0.0, 1.0)
    # Nothing is painted beyond the lip corners, whatever the window around them.
    span = torch.clamp(xs[None] - upper_chain[:, :1, 0], 0.0, 1.0) * torch.clamp(
        upper_chain[:, -1:, 0] - xs[None], 0.0, 1.0
    )
    inside = inside * span[:, None, :]
    opening = (lower - upper).clamp_min(0.0)
    mouth = rest.width[:, None, None]
    centre_x = moved[:, list(mesh.MOUTH_CORNERS), 0].mean(dim=1)[:, None, None]
    across = torch.clamp((xs[None, None] - centre_x).abs() / (mouth / 2), 0.0, 1.0)
    # Teeth show most in the middle and fade out before the corners; the cavity darkens there too.
    middle = torch.clamp((0.85 - across) / 0.35, 0.0, 1.0)
    corner_shade = 1.0 - 0.5 * across**2
    upper_height = torch.minimum(opening * UPPER_TEETH_SHARE, mouth * UPPER_TEETH_CAP) * middle
    upper_teeth = _band(from_top, upper_height, soft * 1.5)
    tongue = _band(from_bottom, opening * 0.45, soft * 4.0) * torch.clamp(opening / (mouth * 0.3), 0.0, 0.8)
    # Lip shadow: the first pixels under the upper lip are darker; the cavity is darkest mid-way.
    lip_shadow = 0.7 + 0.3 * torch.clamp(from_top / (soft * 2.5), 0.0, 1.0)
    middle_depth = torch.clamp(1.0 - (from_top / opening.clamp_min(1.0) - 0.5).abs() * 2, 0.0, 1.0)
    cavity = colours.cavity[:, :, None, None] * (1.2 - 0.55 * middle_depth[:, None])
    colour = cavity + (colours.tongue[:, :, None, None] - cavity) * tongue[:, None]
    teeth_light = 0.82 + 0.18 * torch.clamp(from_top / upper_height.clamp_min(1.0), 0.0, 1.0)
    teeth_colour = colours.teeth[:, :, None, None] * (teeth_light * (0.75 + 0.25 * corner_shade))[:, None]
    colour = colour + (teeth_colour - colour) * upper_teeth[:, None]
    colour = colour * (corner_shade * lip_shadow)[:, None]
    # The photo's own opening, hung from the moved upper lip: real teeth instead of painted ones.
    rest_upper = _line_at(rest.upper, xs)[:, None, :]
    rest_opening = (_line_at(rest.lower, xs)[:, None, :] - rest_upper).clamp_min(0.0)
    own = torch.clamp(rest_opening / OPEN_FULL - 0.5, 0.0, 1.0) * _band(from_top, rest_opening, soft * 1.5)
    if float(own.max()) > 0.0:
        size = rest.images.shape[-1]
        source_y = rest_upper + from_top.clamp(min=0.0) - 0.5
        source_x = (xs[None, None] - 0.5).expand_as(source_y)
        grid = torch.stack([source_x + rest.origin[0], source_y + rest.origin[1]], -1)
        photo = F.grid_sample(
            rest.images, (2 * grid + 1) / size - 1, mode="bilinear", padding_mode="border", align_corners=False
        )
        colour = colour + (photo - colour) * own[:, None]
    alpha = (inside * strength[:, None, None])[:, None]
    window = frames[:, :, top:bottom, left:right]
    window += (colour - window) * alpha
    if float(closing.max()) > 0.0:
        _cover_seam(window, upper - top, lower - top, ys - top, soft, closing[:, None, None] * span[:, None, :])
    return frames


def _cover_seam(
    window: torch.Tensor,
    upper: torch.Tensor,
    lower: torch.Tensor,
    ys: torch.Tensor,
    soft: torch.Tensor,
    closing: torch.Tensor,
) -> None:
    """Paint the line where the lips meet with the lips' colour from just above and below it.

    `closing` (b, 1, w) is how strongly, per frame and column.
    """
    reach = soft * 1.5 + 1.0
    rows = window.shape[2]
    above = (upper - reach - 1.0).round().long().clamp(0, rows - 1)[:, None].expand(-1, 3, -1, -1)
    below = (lower + reach + 1.0).round().long().clamp(0, rows - 1)[:, None].expand(-1, 3, -1, -1)
    upper_lip, lower_lip = window.gather(2, above), window.gather(2, below)
    middle = (upper + lower) / 2
    share = torch.clamp((ys - middle) / reach + 0.5, 0.0, 1.0)[:, None]
    seam = 1.0 - 0.2 * torch.exp(-(((ys - middle) / soft) ** 2))[:, None]
    lips = (upper_lip + (lower_lip - upper_lip) * share) * seam
    band = torch.clamp((ys - upper + reach) / soft, 0.0, 1.0) * torch.clamp((lower + reach - ys) / soft, 0.0, 1.0)
    alpha = (band * closing)[:, None]
    window += (lips - window) * alpha
