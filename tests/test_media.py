"""Segments play on their own, join without gaps, and the final MP4 matches the speech."""

import numpy as np
import pytest

from avatar.media import AUDIO_RATE, audio_span, encode_segment, join_segments, probe, read_frames


def tone(seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * AUDIO_RATE)) / AUDIO_RATE
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def frames(count: int, size: int = 64) -> np.ndarray:
    ramp = np.linspace(0, 255, count).astype(np.uint8)
    return np.broadcast_to(ramp[:, None, None, None], (count, size, size, 3)).copy()


def test_a_segment_holds_exactly_its_frames_and_their_audio(tmp_path):
    info = probe(encode_segment(frames(25), tone(1.0), tmp_path / "one.mp4"))
    assert info.fps == 25
    assert info.video_seconds == pytest.approx(1.0, abs=1e-6)
    assert info.audio_seconds == pytest.approx(1.0, abs=0.025)


def test_segments_join_into_one_mp4_as_long_as_the_speech(tmp_path):
    speech = tone(2.37)
    count = int(np.ceil(2.37 * 25))
    video = frames(count)
    segments = [
        encode_segment(video[i : i + 25], audio_span(speech, i, len(video[i : i + 25])), tmp_path / f"s{i}.mp4")
        for i in range(0, count, 25)
    ]
    info = probe(join_segments(segments, speech, tmp_path / "all.mp4"))
    assert info.fps == 25
    assert info.video_seconds == pytest.approx(2.37, abs=0.05)
    assert info.audio_seconds == pytest.approx(2.37, abs=0.05)
    decoded = read_frames(tmp_path / "all.mp4")
    assert len(decoded) == count
    assert np.abs(decoded[:, 32, 32, 0].astype(int) - video[:, 32, 32, 0]).max() < 8


def test_the_audio_under_frames_is_padded_with_silence_past_the_end():
    speech = tone(0.5)
    span = audio_span(speech, 10, 5)
    assert len(span) == round(5 * AUDIO_RATE / 25)
    assert np.all(span[-1000:] == 0)
