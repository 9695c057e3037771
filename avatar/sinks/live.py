"""A run's frames into its live stream (AVATAR_PLAYER=mse), each frame encoded once for both viewing and download."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.live_stream import Broadcast, LiveEncoder
from avatar.media import remux


class LiveSink:
    """Frames go into the run's live stream the moment they come; the download is that stream remuxed.

    Segments have no files here: the player reads the one stream as it grows, and segments
    are only counted, for progress.
    """

    def __init__(self, broadcast: Broadcast) -> None:
        self.broadcast = broadcast
        # Made at the first frames, which give the video's size.
        self._encoder: LiveEncoder | None = None

    def write(self, frames: np.ndarray, audio: np.ndarray, first_frame: int) -> None:
        if self._encoder is None:
            self._encoder = LiveEncoder(frames.shape[2], frames.shape[1], self.broadcast)
        self._encoder.write(frames, audio, first_frame)

    def segment(self, audio: np.ndarray, first_frame: int, count: int) -> None:
        """Nothing to make: the segment's frames are already in the stream."""
        return None

    def finish(self, audio: np.ndarray, path: Path, subtitles: Path | None = None) -> Path:
        """The ended stream as an ordinary MP4: what was watched is what is downloaded, with its captions."""
        self.close()
        return remux(self.broadcast.contents(), path, subtitles)

    def close(self) -> None:
        """End the stream, so that its viewers stop waiting, even when no frame ever came."""
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        elif not self.broadcast.closed:
            self.broadcast.close()
