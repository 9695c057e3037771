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
# Painted teeth sit inside the mouth, a little in the lips' shade.
TEETH_IN_SHADE = 0.9
# Opening (pixels between the lip midpoints) at which the interior starts and is fully painted.
OPEN_FROM, OPEN_FULL = 0.5, 2.5
# Upper teeth: height as a share of the opening, capped by a share of the mouth width.
UPPER_TEETH_SHARE, UPPER_TEETH_CAP = 0.4, 0.08
# Cavity and tongue as shares of the lip colour per channel: a warm dark red, not grey.
CAVITY_OF_LIPS = np.array([0.24, 0.13, 0.12])
TONGUE_OF_LIPS = np.array([0.8, 0.45, 0.45])
# A rest opening taller than this share of the mouth width shows the photo's own teeth.
PHOTO_TEETH_GAP = 0.04
# Lower-teeth hint: height share and cap, how visible, and how much darker than the upper teeth.
LOWER_TEETH_SHARE, LOWER_TEETH_CAP, LOWER_TEETH_ALPHA, LOWER_TEETH_LIGHT = 0.14, 0.025, 0.45, 0.9
# Edges between painted teeth (shares of the mouth width from its centre: incisors, laterals,
# canines, premolar), how dark the gaps are and how much each tooth's biting edge is rounded.
TOOTH_EDGES = (0.0, 0.16, 0.27, 0.35, 0.42, 0.5)
TOOTH_GAP_SHADE, TOOTH_ROUNDING = 0.28, 0.3
# A photo with parted lips is fully redrawn closed once its gap has shrunk by this share of its rest gap.
CLOSE_OVER = 0.25
# Share of each lip's thickness skipped at the corners when redrawing closed lips.
CORNER_INSET = 0.5
# How far past the outer corners (share of the mouth width) closed lips are redrawn.
CORNER_REACH = 0.06
# How far under the lower lip (share of the mouth width) closed lips are redrawn.
CHIN_REDRAW = 0.06
# Redrawn lips are nowhere darker than this share of the lips' mean brightness.
REDRAWN_FLOOR = 0.8
# How dark the line where redrawn lips meet is.
SEAM_SHADE = 0.3
# Darker than this share of the lips' brightness is the gap between parted lips, not lip; an
# inner-lip point is moved at most this share of the mouth width to leave it.
DARK_GAP, MAX_EDGE_SHIFT = 0.6, 0.08
# Room around the lips' points for soft edges: pixels, and multiples of the crop's softness.
EDGE_ROOM, EDGE_ROOM_SOFTNESS = 4, 3
# The interior fades in from each lip corner over this many softnesses plus pixels.
CORNER_FADE_SOFTNESS, CORNER_FADE_PIXELS = 2.0, 1.0
# How much darker the interior is at the corners than in the middle, and right under the upper lip than deeper
# down (that shadow reaches this many softnesses down).
CORNER_SHADE = 0.5
LIP_SHADOW, LIP_SHADOW_DEPTH = 0.3, 2.5
# The cavity's brightness at the lips, and how much of it is lost mid-way down the opening.
CAVITY_EDGE_LIGHT, CAVITY_MIDDLE_SHADE = 1.2, 0.55
# Tongue: its height as a share of the opening, its edge's softness, and how much of it shows: fully (up to
# TONGUE_MOST) once the opening is this share of the mouth width.
TONGUE_HEIGHT, TONGUE_SOFTNESS, TONGUE_OPENING, TONGUE_MOST = 0.45, 4.0, 0.3, 0.8
# Across the mouth (shares of its half-width from the centre): where the upper teeth have faded out, and over
# how much; the same for the lower teeth.
UPPER_TEETH_REACH, UPPER_TEETH_FADE = 0.85, 0.35
LOWER_TEETH_REACH, LOWER_TEETH_FADE = 0.55, 0.25
# Painted teeth: their edge's softness, their light at the gum (rising to full at the biting edge), and how
# much of the corners' shade they take.
TEETH_SOFTNESS, TEETH_ROOT_LIGHT, TEETH_CORNER_SHADE = 1.2, 0.8, 0.25
# Width of the gaps between painted teeth, in softnesses.
TOOTH_GAP_WIDTH = 0.8
# The edge of the photo's own teeth, in softnesses.
PHOTO_TEETH_SOFTNESS = 1.5
# Redrawn lips reach this many softnesses plus pixels past the lip lines, and a lip darker than the floor
# colour fades into it over this share of the floor's brightness.
REDRAW_EDGE_SOFTNESS, REDRAW_EDGE_PIXELS = 1.5, 1.0
FLOOR_FADE = 0.3
# The box blur (rows, columns) that softens the redrawn lips' outline.
REDRAWN_BLUR = (3, 9)
# Where the lip midpoints (13 and 14) sit in the inner-lip chains.
MID = mesh.INNER_UPPER_LIP.index(mesh.INNER_LIP_MID[0])
# The lip lines a frame is painted between: inner upper and lower, outer upper and lower.
LIP_CHAINS = (mesh.INNER_UPPER_LIP, mesh.INNER_LOWER_LIP, mesh.OUTER_UPPER_OUTLINE, mesh.OUTER_LOWER_OUTLINE)


@dataclass(frozen=True)
class MouthColours:
    """Colours taken from the photo so that the painted interior matches its light (one row per face)."""

    cavity: torch.Tensor
    tongue: torch.Tensor
    teeth: torch.Tensor
    lips: torch.Tensor
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
        teeth = TEETH * light * TEETH_IN_SHADE * ((1 - TEETH_SKIN_TINT) + TEETH_SKIN_TINT * tint)
        own = _photo_teeth(crop, landmarks)
        if own is not None:
            teeth = own
        softness = float(np.clip(0.7 / max(crop_scale, 1e-3), 0.7, 3.0))
        rows = np.stack([lips * CAVITY_OF_LIPS, lips * TONGUE_OF_LIPS, teeth, lips])
        tensors = torch.tensor(rows, dtype=torch.float32, device=device)
        return cls(
            cavity=tensors[0:1],
            tongue=tensors[1:2],
            teeth=tensors[2:3],
            lips=tensors[3:4],
            softness=torch.tensor([softness], device=device),
        )

    @classmethod
    def stack(cls, colours: list[MouthColours]) -> MouthColours:
        return cls(
            *(
                torch.cat([getattr(c, name) for c in colours])
                for name in ("cavity", "tongue", "teeth", "lips", "softness")
            )
        )


def _parted_lips(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The inner-lip midpoints and the mouth width, when the photo's lips are parted; else None."""
    upper, lower = landmarks[mesh.INNER_LIP_MID[0]], landmarks[mesh.INNER_LIP_MID[1]]
    left, right = landmarks[mesh.MOUTH_CORNERS[0]], landmarks[mesh.MOUTH_CORNERS[1]]
    width = float(np.hypot(*(right - left)))
    if lower[1] - upper[1] < PHOTO_TEETH_GAP * width:
        return None
    return upper, lower, width


def _photo_teeth(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    """The colour of the teeth the photo already shows between parted lips, if it shows any."""
    parted = _parted_lips(landmarks)
    if parted is None:
        return None
    upper, lower, width = parted
    x0, x1 = int(upper[0] - 0.2 * width), int(upper[0] + 0.2 * width)
    y0, y1 = int(upper[1] + 1), int(lower[1] - 1)
    patch = crop[y0:y1, x0:x1].reshape(-1, 3).astype(np.float64)
    if len(patch) < 8:
        return None
    brightness = patch.mean(axis=1)
    bright = patch[brightness >= np.percentile(brightness, 70)]
    return bright.mean(axis=0) * 0.92


def lip_edges(crop: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The landmarks, with the inner-lip points of parted lips moved out of the dark gap onto the lips' edges.

    Towards the corners of a smile the face model's inner-lip lines run inside the dark of
    the mouth; lips redrawn closed from those lines would carry dark wedges along.
    """
    points = landmarks.astype(np.float32).copy()
    parted = _parted_lips(landmarks)
    if parted is None:
        return points
    width = parted[2]
    size = crop.shape[0]
    brightness = crop.astype(np.float32).mean(axis=-1)
    outline = np.clip(landmarks[list(mesh.OUTER_LOWER_LIP + mesh.OUTER_UPPER_LIP)].round().astype(int), 0, size - 1)
    dark = brightness < DARK_GAP * brightness[outline[:, 1], outline[:, 0]].mean()
    reach = int(MAX_EDGE_SHIFT * width)
    for chain, step in ((mesh.INNER_UPPER_LIP[1:-1], -1), (mesh.INNER_LOWER_LIP[1:-1], 1)):
        for point in chain:
            x, y = int(np.clip(round(float(points[point, 0])), 0, size - 1)), int(round(float(points[point, 1])))
            moved = 0
            while moved < reach and 0 <= y < size and dark[y, x]:
                y += step
                moved += 1
            if moved:
                points[point, 1] = y + (1 if step < 0 else 0)
    return points


def _line_at(chain: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """y of a left-to-right polyline (b, p, 2) at columns xs, per frame (b, w); flat past its ends.

    `xs` is (w,) for the same columns in every frame or (b, w) for columns of its own per frame.
    """
    px = torch.cummax(chain[..., 0], dim=1).values.contiguous()
    py = chain[..., 1]
    query = (xs[None].expand(len(chain), -1) if xs.dim() == 1 else xs).contiguous()
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
    """Per frame: the rest crop, its lip lines (b, p, 2, inner and outer) and mouth width, in the frames' pixels."""

    images: torch.Tensor
    upper: torch.Tensor
    lower: torch.Tensor
    outer_upper: torch.Tensor
    outer_lower: torch.Tensor
    width: torch.Tensor
    origin: torch.Tensor


@dataclass(frozen=True)
class LipLines:
    """The lip lines of each frame at the painted columns (b, 1, w): inner upper/lower, outer upper/lower."""

    upper: torch.Tensor
    lower: torch.Tensor
    outer_upper: torch.Tensor
    outer_lower: torch.Tensor

    @classmethod
    def at(
        cls,
        upper: torch.Tensor,
        lower: torch.Tensor,
        outer_upper: torch.Tensor,
        outer_lower: torch.Tensor,
        xs: torch.Tensor,
    ) -> LipLines:
        return cls(*(_line_at(chain, xs)[:, None, :] for chain in (upper, lower, outer_upper, outer_lower)))


def _tooth_shape(across: torch.Tensor, mouth: torch.Tensor, soft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per column: the share of the teeth's height (rounded incisal edges) and the shade of the gaps between teeth.

    `across` is the signed distance from the mouth's centre in pixels.
    """
    edges = torch.tensor(TOOTH_EDGES, device=across.device) * mouth[..., None]
    distance = across.abs()[..., None]
    gaps = torch.exp(-(((distance - edges) / (soft[..., None] * TOOTH_GAP_WIDTH)) ** 2)).sum(-1)
    inner, outer = edges[..., :-1], edges[..., 1:]
    within = ((distance - inner) / (outer - inner)).clamp(0.0, 1.0)
    # Each tooth is shortest at its own edges: a scalloped line rather than a ruler-straight band.
    inside_tooth = ((distance >= inner) & (distance < outer)).float()
    scallop = (inside_tooth * (1.0 - TOOTH_ROUNDING * (2 * within - 1) ** 4)).sum(-1)
    return scallop, 1.0 - TOOTH_GAP_SHADE * gaps.clamp(max=1.0)


def _opening_strength(gap: torch.Tensor) -> torch.Tensor:
    """How strongly the interior is painted (b,), from the moved lips' gap at their midpoints."""
    return torch.clamp((gap - OPEN_FROM) / (OPEN_FULL - OPEN_FROM), 0.0, 1.0)


def _own_opening(rest_opening: torch.Tensor) -> torch.Tensor:
    """How much of a rest opening is the photo's own parted mouth: none up to half of OPEN_FULL, all from 1.5 times."""
    return torch.clamp(rest_opening / OPEN_FULL - 0.5, 0.0, 1.0)


def _closing_strength(gap: torch.Tensor, rest: MouthAtRest) -> torch.Tensor:
    """How strongly a photo's parted lips are redrawn closed (b,): as the gap shrinks below its rest gap."""
    rest_gap = rest.lower[:, MID, 1] - rest.upper[:, MID, 1]
    shrunk = torch.clamp((rest_gap - gap) / (CLOSE_OVER * rest_gap).clamp_min(1e-3), 0.0, 1.0)
    return shrunk * _own_opening(rest_gap)


def _mouth_box(
    lip_points: torch.Tensor, colours: MouthColours, rest: MouthAtRest, frame_size: tuple[int, int]
) -> tuple[slice, slice] | None:
    """The rows and columns painted: around all frames' lip points, with room for soft edges and for redrawn
    lips reaching past the corners and under the lower lip; None when nothing of it is in the frame."""
    height, width = frame_size
    spread = max(CORNER_REACH, CHIN_REDRAW) * float(rest.width.max())
    pad = EDGE_ROOM + int(EDGE_ROOM_SOFTNESS * float(colours.softness.max()) + spread)
    left = int(max(float(lip_points[..., 0].min()) - pad, 0))
    top = int(max(float(lip_points[..., 1].min()) - pad, 0))
    right = int(min(float(lip_points[..., 0].max()) + pad + 1, width))
    bottom = int(min(float(lip_points[..., 1].max()) + pad + 1, height))
    if right - left < 2 or bottom - top < 2:
        return None
    return slice(top, bottom), slice(left, right)


def paint_mouth(frames: torch.Tensor, moved: torch.Tensor, colours: MouthColours, rest: MouthAtRest) -> torch.Tensor:
    """Paint the interior into frames (b, 3, h, w) in 0..255 wherever the lips are apart.

    `moved` (b, n, 2) are the mesh points in the frames' pixels; `colours` and `rest` hold
    one row per frame. Where the photo's own lips are apart, its own upper teeth are used:
    they stay with the upper lip while the jaw opens below them; and when such a mouth
    closes, both lips are redrawn from the photo, so that no squeezed teeth show between them.
    """
    chains = [moved[:, list(ids)] for ids in LIP_CHAINS]
    gap = moved[:, mesh.INNER_LIP_MID[1], 1] - moved[:, mesh.INNER_LIP_MID[0], 1]
    strength, closing = _opening_strength(gap), _closing_strength(gap, rest)
    if float(strength.max()) <= 0.0 and float(closing.max()) <= 0.0:
        return frames
    box = _mouth_box(torch.cat(chains, 1), colours, rest, frames.shape[-2:])
    if box is None:
        return frames
    rows, columns = box
    window = frames[:, :, rows, columns]
    canvas = Canvas.over(rows, columns, colours, chains, frames.device)
    if float(closing.max()) > 0.0:
        # Past the outer corners too: the dark wedges a smile leaves there must go as well.
        reach = CORNER_REACH * rest.width[:, None]
        ends = moved[:, list(mesh.MOUTH_CORNERS), 0] + torch.cat([-reach, reach], 1)
        _redraw_lips(window, chains[0], canvas, rest, closing, ends, REDRAWN_FLOOR * colours.lips)
    if float(strength.max()) > 0.0:
        centre_x = moved[:, list(mesh.MOUTH_CORNERS), 0].mean(dim=1)[:, None, None]
        opening = Opening.within(canvas, centre_x, rest.width[:, None, None])
        colour = _photo_teeth_over(_interior_colour(opening, colours, canvas.soft), opening, rest, canvas)
        alpha = (_coverage(opening, chains[0], canvas) * strength[:, None, None])[:, None]
        window += (colour - window) * alpha
    return frames


@dataclass(frozen=True)
class Canvas:
    """The painted window, in the frames' pixels: its columns' centres `xs` (w,), its rows' centres `ys`
    (1, h, 1), the crop's softness per frame `soft` (b, 1, 1) and the moved lip lines at its columns."""

    xs: torch.Tensor
    ys: torch.Tensor
    soft: torch.Tensor
    lines: LipLines

    @classmethod
    def over(
        cls, rows: slice, columns: slice, colours: MouthColours, chains: list[torch.Tensor], device: torch.device
    ) -> Canvas:
        xs = torch.arange(columns.start, columns.stop, dtype=torch.float32, device=device) + 0.5
        ys = torch.arange(rows.start, rows.stop, dtype=torch.float32, device=device)[None, :, None] + 0.5
        return cls(xs, ys, colours.softness[:, None, None], LipLines.at(*chains, xs))


@dataclass(frozen=True)
class Opening:
    """Where each painted pixel lies in the opening between the moved lips.

    Per pixel (b, h, w): how far below the upper lip and above the lower one; per column (b, 1, w): the
    opening's height, the signed distance from the mouth's centre, and that distance as a share of half the
    mouth (0 at the centre, 1 at the corners and beyond); `mouth` (b, 1, 1) is the mouth's width at rest.
    """

    from_top: torch.Tensor
    from_bottom: torch.Tensor
    height: torch.Tensor
    offset: torch.Tensor
    across: torch.Tensor
    mouth: torch.Tensor

    @classmethod
    def within(cls, canvas: Canvas, centre_x: torch.Tensor, mouth: torch.Tensor) -> Opening:
        lines, offset = canvas.lines, canvas.xs[None, None] - centre_x
        return cls(
            from_top=canvas.ys - lines.upper,
            from_bottom=lines.lower - canvas.ys,
            height=(lines.lower - lines.upper).clamp_min(0.0),
            offset=offset,
            across=torch.clamp(offset.abs() / (mouth / 2), 0.0, 1.0),
            mouth=mouth,
        )


def _coverage(opening: Opening, upper_chain: torch.Tensor, canvas: Canvas) -> torch.Tensor:
    """How much of each pixel (b, h, w) lies between the lips, anti-aliased over the crop's softness."""
    xs, soft = canvas.xs, canvas.soft
    below_upper = torch.clamp(opening.from_top / soft + 0.5, 0.0, 1.0)
    inside = below_upper * torch.clamp(opening.from_bottom / soft + 0.5, 0.0, 1.0)
    # Nothing is painted beyond the lip corners, and it fades in over a few pixels, not at a cut.
    corner_fade = soft[:, :, 0] * CORNER_FADE_SOFTNESS + CORNER_FADE_PIXELS
    span = torch.clamp((xs[None] - upper_chain[:, :1, 0]) / corner_fade, 0.0, 1.0) * torch.clamp(
        (upper_chain[:, -1:, 0] - xs[None]) / corner_fade, 0.0, 1.0
    )
    return inside * span[:, None, :]


def _interior_colour(opening: Opening, colours: MouthColours, soft: torch.Tensor) -> torch.Tensor:
    """The painted interior (b, 3, h, w): cavity and tongue, then lower and upper teeth, then the shading
    towards the corners and under the upper lip."""
    # The cavity darkens towards the corners too.
    corner_shade = 1.0 - CORNER_SHADE * opening.across**2
    # Lip shadow: the first pixels under the upper lip are darker.
    lip_shadow = (1 - LIP_SHADOW) + LIP_SHADOW * torch.clamp(opening.from_top / (soft * LIP_SHADOW_DEPTH), 0.0, 1.0)
    colour = _teeth_over(_cavity_colour(opening, colours, soft), opening, colours, soft, corner_shade)
    return colour * (corner_shade * lip_shadow)[:, None]


def _cavity_colour(opening: Opening, colours: MouthColours, soft: torch.Tensor) -> torch.Tensor:
    """The cavity, darkest mid-way down the opening, and the tongue rising from the lower lip as the jaw drops."""
    middle_depth = torch.clamp(1.0 - (opening.from_top / opening.height.clamp_min(1.0) - 0.5).abs() * 2, 0.0, 1.0)
    cavity = colours.cavity[:, :, None, None] * (CAVITY_EDGE_LIGHT - CAVITY_MIDDLE_SHADE * middle_depth[:, None])
    tongue = _band(opening.from_bottom, opening.height * TONGUE_HEIGHT, soft * TONGUE_SOFTNESS) * torch.clamp(
        opening.height / (opening.mouth * TONGUE_OPENING), 0.0, TONGUE_MOST
    )
    return cavity + (colours.tongue[:, :, None, None] - cavity) * tongue[:, None]


def _teeth_over(
    colour: torch.Tensor, opening: Opening, colours: MouthColours, soft: torch.Tensor, corner_shade: torch.Tensor
) -> torch.Tensor:
    """`colour` with the lower teeth's hint and the upper teeth painted over it."""
    scallop, tooth_gaps = _tooth_shape(opening.offset, opening.mouth, soft)
    # Teeth show most in the middle and fade out before the corners.
    middle = torch.clamp((UPPER_TEETH_REACH - opening.across) / UPPER_TEETH_FADE, 0.0, 1.0)
    upper_height = torch.minimum(opening.height * UPPER_TEETH_SHARE, opening.mouth * UPPER_TEETH_CAP) * middle * scallop
    upper_teeth = _band(opening.from_top, upper_height, soft * TEETH_SOFTNESS)
    # The lower teeth sit further back and show only between the canines.
    lower_middle = torch.clamp((LOWER_TEETH_REACH - opening.across) / LOWER_TEETH_FADE, 0.0, 1.0)
    lower_height = (
        torch.minimum(opening.height * LOWER_TEETH_SHARE, opening.mouth * LOWER_TEETH_CAP) * lower_middle * scallop
    )
    lower_teeth = _band(opening.from_bottom, lower_height, soft * TEETH_SOFTNESS) * LOWER_TEETH_ALPHA
    teeth_light = TEETH_ROOT_LIGHT + (1 - TEETH_ROOT_LIGHT) * torch.clamp(
        opening.from_top / upper_height.clamp_min(1.0), 0.0, 1.0
    )
    teeth_shade = ((1 - TEETH_CORNER_SHADE) + TEETH_CORNER_SHADE * corner_shade) * tooth_gaps
    teeth_colour = colours.teeth[:, :, None, None] * (teeth_light * teeth_shade)[:, None]
    colour = colour + (teeth_colour * LOWER_TEETH_LIGHT - colour) * lower_teeth[:, None]
    return colour + (teeth_colour - colour) * upper_teeth[:, None]


def _photo_teeth_over(colour: torch.Tensor, opening: Opening, rest: MouthAtRest, canvas: Canvas) -> torch.Tensor:
    """`colour` with the photo's own opening hung from the moved upper lip: real teeth instead of painted ones."""
    xs, soft = canvas.xs, canvas.soft
    rest_upper = _line_at(rest.upper, xs)[:, None, :]
    rest_opening = (_line_at(rest.lower, xs)[:, None, :] - rest_upper).clamp_min(0.0)
    own = _own_opening(rest_opening) * _band(opening.from_top, rest_opening, soft * PHOTO_TEETH_SOFTNESS)
    if float(own.max()) <= 0.0:
        return colour
    source_y = rest_upper + opening.from_top.clamp(min=0.0)
    photo = _sample(rest, xs[None, None].expand_as(source_y), source_y)
    return colour + (photo - colour) * own[:, None]


def _sample(rest: MouthAtRest, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """The rest crops (b, 3, h, w) read at continuous frame-pixel positions xs, ys (b, h, w)."""
    size = rest.images.shape[-1]
    grid = torch.stack([xs - 0.5 + rest.origin[0], ys - 0.5 + rest.origin[1]], -1)
    return F.grid_sample(
        rest.images, (2 * grid + 1) / size - 1, mode="bilinear", padding_mode="border", align_corners=False
    )


def _redraw_lips(
    window: torch.Tensor,
    upper_chain: torch.Tensor,
    canvas: Canvas,
    rest: MouthAtRest,
    closing: torch.Tensor,
    ends: torch.Tensor,
    floor_colour: torch.Tensor,
) -> None:
    """Redraw both lips of a photo with parted lips from the photo itself, stretched between the moved lip lines.

    A smooth warp cannot squeeze the photo's teeth to nothing, and a face model reads any
    sliver of teeth as an open mouth; read this way the lips meet with nothing between them.
    Columns map linearly between the inner mouth corners; `closing` (b,) is how strongly and
    `ends` (b, 2) the columns where the redrawn lips fade out; whatever is darker than
    `floor_colour` (b, 3) turns into it, so the dark corners of a smile do not come along.
    """
    rest_xs = _rest_columns(upper_chain, rest, canvas.xs)
    source_y, meet = _lip_rows(canvas.lines, _rest_lip_lines(rest, rest_xs), canvas.ys)
    lips = _lifted_to(_sample(rest, rest_xs[:, None, :].expand_as(source_y), source_y), floor_colour)
    # Where the lips meet, a thin shadow line.
    lips = lips * (1.0 - SEAM_SHADE * torch.exp(-(((canvas.ys - meet) / canvas.soft) ** 2)))[:, None]
    window += (lips - window) * _redrawn_alpha(canvas, rest, closing, ends)


def _rest_columns(upper_chain: torch.Tensor, rest: MouthAtRest, xs: torch.Tensor) -> torch.Tensor:
    """The photo's column (b, w) that each painted column reads, mapped linearly between the inner mouth corners."""
    moved_left, moved_right = upper_chain[:, :1, 0], upper_chain[:, -1:, 0]
    rest_left, rest_right = rest.upper[:, :1, 0], rest.upper[:, -1:, 0]
    return rest_left + (xs[None] - moved_left) * (rest_right - rest_left) / (moved_right - moved_left).clamp_min(1.0)


def _rest_lip_lines(rest: MouthAtRest, rest_xs: torch.Tensor) -> LipLines:
    """The photo's lip lines at `rest_xs`, the inner ones moved out towards the outer ones near the corners.

    Towards the corners the photo's inner lip lines run inside the dark of the open mouth:
    the lips are read from further out there, so no dark wedge is carried into the closed mouth.
    """
    was = LipLines.at(rest.upper, rest.lower, rest.outer_upper, rest.outer_lower, rest_xs)
    rest_left, rest_right = rest.upper[:, :1, 0], rest.upper[:, -1:, 0]
    centre = (rest_left + rest_right) / 2
    inset = (
        CORNER_INSET
        * ((rest_xs - centre) / ((rest_right - rest_left) / 2).clamp_min(1.0)).clamp(-1.0, 1.0)[:, None] ** 2
    )
    return LipLines(
        upper=was.upper - inset * (was.upper - was.outer_upper),
        lower=was.lower + inset * (was.outer_lower - was.lower),
        outer_upper=was.outer_upper,
        outer_lower=was.outer_lower,
    )


def _lip_rows(lines: LipLines, was: LipLines, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The photo's row (b, h, w) each painted pixel reads, and the row (b, 1, w) where the redrawn lips meet.

    Inside each lip its rows stretch between the outer and inner lines; outside it, skin at scale one.
    """
    upper_lip = torch.where(
        ys >= lines.outer_upper,
        was.upper
        + (ys - lines.upper) * (was.upper - was.outer_upper) / (lines.upper - lines.outer_upper).clamp_min(1.0),
        was.outer_upper + (ys - lines.outer_upper),
    )
    lower_lip = torch.where(
        ys <= lines.outer_lower,
        was.lower
        + (ys - lines.lower) * (was.outer_lower - was.lower) / (lines.outer_lower - lines.lower).clamp_min(1.0),
        was.outer_lower + (ys - lines.outer_lower),
    )
    meet = (lines.upper + lines.lower) / 2
    return torch.where(ys < meet, upper_lip, lower_lip), meet


def _lifted_to(lips: torch.Tensor, floor_colour: torch.Tensor) -> torch.Tensor:
    """`lips` (b, 3, h, w) with whatever is darker than `floor_colour` (b, 3) turned into it, fading in below it."""
    floor = floor_colour.mean(dim=1)[:, None, None, None]
    deficit = torch.clamp((floor - lips.mean(dim=1, keepdim=True)) / (FLOOR_FADE * floor), 0.0, 1.0)
    return lips + (floor_colour[:, :, None, None] - lips) * deficit


def _redrawn_alpha(canvas: Canvas, rest: MouthAtRest, closing: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """How much of each pixel (b, 1, h, w) the redrawn lips cover: from above the upper lip to under the lower
    one, between `ends`, `closing` strong."""
    lines, xs, ys, soft = canvas.lines, canvas.xs, canvas.ys, canvas.soft
    reach = soft * REDRAW_EDGE_SOFTNESS + REDRAW_EDGE_PIXELS
    # Below the lower lip the warp has squeezed what was under it; the photo's own skin replaces it.
    below = reach + CHIN_REDRAW * rest.width[:, None, None]
    vertical = torch.clamp((ys - lines.outer_upper + reach) / reach, 0.0, 1.0) * torch.clamp(
        (lines.outer_lower + below - ys) / reach, 0.0, 1.0
    )
    # Fading out from the corners to `ends`, so that a spread mouth's corners join the warp smoothly.
    fade = CORNER_REACH * rest.width[:, None]
    horizontal = torch.clamp((xs[None] - ends[:, :1]) / fade, 0.0, 1.0) * torch.clamp(
        (ends[:, 1:] - xs[None]) / fade, 0.0, 1.0
    )
    alpha = (vertical * horizontal[:, None, :] * closing[:, None, None])[:, None]
    # Per-column lines turn sharply at the corners; a box blur keeps that from showing as a cut.
    rows, columns = REDRAWN_BLUR
    return F.avg_pool2d(alpha, REDRAWN_BLUR, stride=1, padding=(rows // 2, columns // 2), count_include_pad=False)
