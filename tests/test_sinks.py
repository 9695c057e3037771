"""Each sink alone turns frames and speech into a correct MP4 of the right length (with the real ffmpeg)."""

import numpy as np
import pytest

from avatar.live_stream import Broadcast
from avatar.media import AUDIO_RATE, probe, read_frames
from avatar.sinks.live import LiveSink
from avatar.sinks.segments import SegmentSink

COUNT = 49
CHUNKS = (7, 13, 20, 9)
SEGMENTS = ((0, 10), (10, 25), (35, 14))


def ramp(count: int = COUNT, size: int = 64) -> np.ndarray:
    """Frames that brighten one step at a time, so decoded frames can be matched to those written."""
    levels = np.linspace(0, 255, count).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (count, size, size, 3)).copy()


def speech(seconds: float = COUNT / 25) -> np.ndarray:
    t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def write_in_chunks(sink, frames: np.ndarray, audio: np.ndarray) -> None:
    first = 0
    for size in CHUNKS:
        sink.write(frames[first : first + size], audio, first)
        first += size


def assert_plays_the_frames_and_the_speech(video, frames: np.ndarray) -> None:
    info = probe(video)
    assert info.fps == 25
    assert info.video_seconds == pytest.approx(COUNT / 25, abs=0.01)
    assert info.audio_seconds == pytest.approx(COUNT / 25, abs=0.05)
    decoded = read_frames(video)
    assert len(decoded) == COUNT
    assert np.abs(decoded[:, 32, 32, 0].astype(int) - frames[:, 32, 32, 0]).max() < 8


def test_the_segment_sink_makes_one_mp4_per_segment_and_joins_them_into_the_whole_video(tmp_path):
    frames, audio = ramp(), speech()
    sink = SegmentSink(tmp_path)
    write_in_chunks(sink, frames, audio)
    paths = [sink.segment(audio, first, count) for first, count in SEGMENTS]
    for path, (_, count) in zip(paths, SEGMENTS, strict=True):
        assert probe(path).video_seconds == pytest.approx(count / 25, abs=1e-6)
    assert_plays_the_frames_and_the_speech(sink.finish(audio, tmp_path / "talking-photo.mp4"), frames)
    sink.close()
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["segment-0000.mp4", "segment-0001.mp4", "segment-0002.mp4", "talking-photo.mp4"]


def test_the_live_sink_streams_each_frame_once_and_its_download_is_that_stream(tmp_path):
    frames, audio = ramp(), speech()
    broadcast = Broadcast("token")
    sink = LiveSink(broadcast)
    write_in_chunks(sink, frames, audio)
    assert [sink.segment(audio, first, count) for first, count in SEGMENTS] == [None, None, None]
    video = sink.finish(audio, tmp_path / "talking-photo.mp4")
    sink.close()
    assert broadcast.closed
    assert_plays_the_frames_and_the_speech(video, frames)
    streamed = tmp_path / "streamed.mp4"
    streamed.write_bytes(broadcast.contents())
    assert np.array_equal(read_frames(streamed), read_frames(video))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["streamed.mp4", "talking-photo.mp4"]


def test_a_live_stream_whose_run_ends_before_any_frame_still_ends_so_viewers_stop_waiting():
    broadcast = Broadcast("token")
    LiveSink(broadcast).close()
    assert broadcast.closed
    assert b"".join(broadcast.read(timeout=1)) == b""
