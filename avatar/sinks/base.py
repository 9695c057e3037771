"""The one interface a run writes its video through, so the run does not care which player is on the page."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class Sink(Protocol):
    """Frames in as the engine draws them, one segment at a time out for progress, the whole MP4 at the end.

    The run calls `write` for every chunk of frames, `segment` whenever the frames written
    make up another segment, `finish` once after the last frame, and `close` however the run
    ends. `audio` is always the run's speech at `media.AUDIO_RATE`, as much as is spoken so far.
    """

    def write(self, frames: np.ndarray, audio: np.ndarray, first_frame: int) -> None:
        """Take frames (n, h, w, 3) uint8 whose first is frame `first_frame` of the run."""
        ...

    def segment(self, audio: np.ndarray, first_frame: int, count: int) -> Path | None:
        """Frames [first_frame, first_frame + count), all written, make one segment: its MP4, or None (no file)."""
        ...

    def finish(self, audio: np.ndarray, path: Path, subtitles: Path | None = None) -> Path:
        """The whole video, written to `path`, after every frame was written and every segment made.

        `subtitles`, a WebVTT file on the run's timeline, becomes the video's subtitle track.
        """
        ...

    def close(self) -> None:
        """Let go of encoders and viewers; safe after `finish` and safe twice."""
        ...
