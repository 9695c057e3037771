"""A run's frames as short MP4 segments for Gradio's streaming video (AVATAR_PLAYER=hls), joined at the end."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar.media import audio_span, encode_segment, join_segments


class SegmentSink:
    """Frames wait until their segment is complete, then are encoded as one MP4 in `folder`.

    A segment is encoded whole, so that it starts on a key frame and holds exactly its frames'
    audio; the download joins the segments' video as it is, with the whole speech beside it.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._waiting: list[np.ndarray] = []
        self._segments: list[Path] = []

    def write(self, frames: np.ndarray, audio: np.ndarray, first_frame: int) -> None:
        self._waiting.append(frames)

    def segment(self, audio: np.ndarray, first_frame: int, count: int) -> Path:
        waiting = np.concatenate(self._waiting)
        self._waiting = [waiting[count:]] if len(waiting) > count else []
        path = self.folder / f"segment-{len(self._segments):04d}.mp4"
        self._segments.append(encode_segment(waiting[:count], audio_span(audio, first_frame, count), path))
        return path

    def finish(self, audio: np.ndarray, path: Path, subtitles: Path | None = None) -> Path:
        return join_segments(self._segments, audio, path, subtitles=subtitles)

    def close(self) -> None:
        """Nothing to let go of: the segment files are removed with the run's folder."""
