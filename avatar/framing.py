"""What a run's video shows: the whole photo as its user framed it, or the engine's square close-up.

The choice and the video's size live here, below the faces and the judging that depend on them;
putting the animated face back into the photo is avatar/paste_back.py's.
"""

from __future__ import annotations

from enum import StrEnum


class Framing(StrEnum):
    """What the video shows: the whole photo (its own shape and framing) or the engine's square close-up."""

    WHOLE = "whole"
    CLOSE_UP = "close-up"

    @property
    def label(self) -> str:
        """The name a user sees."""
        return {Framing.WHOLE: "Whole photo", Framing.CLOSE_UP: "Face close-up"}[self]


def framing_choices() -> list[tuple[str, str]]:
    """(label, value) pairs for a choice on the page, the default (Whole photo) first."""
    return [(framing.label, framing.value) for framing in Framing]


def video_size(shape: tuple[int, ...], max_side: int) -> tuple[int, int]:
    """(width, height) of a whole-photo video: the photo's own size, shrunk to `max_side` at most, even for H.264."""
    height, width = shape[:2]
    scale = min(1.0, max_side / max(height, width))
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)
