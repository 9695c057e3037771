"""Contact sheet of the default engine's mouth shapes, so anyone can judge the look without running it.

One command:  python bench/contact_sheet.py  (writes docs/contact_sheet.png)
Rows: the bundled astronaut and Grace Hopper photos; columns: the photo at rest, then the
engine's open (a), rounded (o/u), wide (e/i) and closed (m/b/p) shapes, each with a blink-free,
centred head, cropped around the face.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.config import SAMPLE_FACES_DIR  # noqa: E402
from avatar.engines.animate import face_crop  # noqa: E402
from avatar.engines.default.engine import DefaultEngine  # noqa: E402
from avatar.engines.default.idle_motion import IdleTrack  # noqa: E402
from avatar.engines.default.mouth_shapes import VISEMES, MouthTrack  # noqa: E402
from avatar.faces import read_face  # noqa: E402
from avatar.images import load_photo  # noqa: E402

PHOTOS = ("astronaut.png", "grace_hopper.jpg")
# Column label and the viseme it shows (open, spread, tuck from the engine's own table).
SHAPES = (("open (a)", "a"), ("rounded (o)", "o"), ("wide (i)", "i"), ("teeth on lip (f)", "f"), ("closed (m)", "m"))
TILE = 300


def shape_frame(engine: DefaultEngine, face, viseme: str) -> np.ndarray:
    """One frame of `face` holding `viseme`, head still, eyes open."""
    renderer = engine.open(face_crop(face)).renderer
    opening, spread, tuck = VISEMES[viseme]
    track = MouthTrack(*(np.array([value], np.float32) for value in (opening, spread, tuck, 1.0)))
    zero = np.zeros(1, np.float32)
    motion = renderer.weights(0, track, IdleTrack(blink=zero, brow=zero, roll=zero, shift_x=zero, shift_y=zero))
    return renderer.render(np.zeros(1, int), motion)[0].numpy()


def face_tile(frame: np.ndarray, landmarks: np.ndarray) -> Image.Image:
    """The face and a little around it, square, scaled to the tile size."""
    low, high = landmarks.min(axis=0), landmarks.max(axis=0)
    centre, half = (low + high) / 2, (high - low).max() * 0.62
    box = tuple(int(v) for v in (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half))
    return Image.fromarray(frame).crop(box).resize((TILE, TILE), Image.LANCZOS)


def main() -> None:
    engine = DefaultEngine("cpu")
    labels = ["rest (photo)"] + [label for label, _ in SHAPES]
    sheet = Image.new("RGB", (TILE * len(labels), (TILE + 28) * len(PHOTOS)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, name in enumerate(PHOTOS):
        face = read_face(load_photo(SAMPLE_FACES_DIR / name, 40_000_000, 25_000_000))
        frames = [face.crop] + [shape_frame(engine, face, viseme) for _, viseme in SHAPES]
        top = row * (TILE + 28)
        for column, (label, frame) in enumerate(zip(labels, frames, strict=True)):
            sheet.paste(face_tile(frame, face.landmarks), (column * TILE, top + 28))
            draw.text((column * TILE + 8, top + 8), label, fill="black")
    out = Path("docs/contact_sheet.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(out)


if __name__ == "__main__":
    main()
