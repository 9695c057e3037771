"""The live stream a page plays while a run goes on: in sync, never stuck, whole for late viewers."""

import threading

import numpy as np
import pytest

from avatar.live_stream import Broadcast, LiveEncoder, LiveStreams
from avatar.media import AUDIO_RATE, probe, read_audio, remux

FRAMES = np.zeros((25, 64, 64, 3), np.uint8)


def click_at(seconds: float) -> np.ndarray:
    audio = np.zeros(AUDIO_RATE, np.float32)
    start = round(seconds * AUDIO_RATE)
    audio[start : start + 48] = 0.9
    return audio


def encode(frames: np.ndarray, audio: np.ndarray) -> bytes:
    broadcast = Broadcast()
    encoder = LiveEncoder(frames.shape[2], frames.shape[1], broadcast)
    half = len(frames) // 2
    steps = lambda: (encoder.write(frames[:half], audio, 0), encoder.write(frames[half:], audio, half), encoder.close())  # noqa: E731
    worker = threading.Thread(target=steps)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "the encoder got stuck"
    return b"".join(broadcast.read(timeout=1))


def test_a_sound_plays_at_the_moment_it_was_made_not_an_encoder_delay_later(tmp_path):
    path = tmp_path / "live.mp4"
    path.write_bytes(encode(FRAMES, click_at(0.1)))
    audio = read_audio(path, AUDIO_RATE)
    assert np.argmax(np.abs(audio)) / AUDIO_RATE == pytest.approx(0.1, abs=0.005)


def test_a_whole_second_of_full_size_frames_written_at_once_plays_as_one_second_of_video_and_sound(tmp_path):
    path = tmp_path / "live.mp4"
    path.write_bytes(encode(np.zeros((25, 512, 512, 3), np.uint8), click_at(0.5)))
    info = probe(path)
    assert info.video_seconds == pytest.approx(1.0, abs=0.05)
    # The encoder's priming, with no edit list to remove it, shows as silence after the last frame.
    assert 0.0 <= info.audio_seconds - info.video_seconds < 0.1


def test_a_viewer_who_connects_late_gets_the_stream_from_its_first_byte():
    streams = LiveStreams()
    broadcast = streams.open()
    broadcast.append(b"first ")
    broadcast.append(b"second")
    broadcast.close()
    assert streams.get(broadcast.token) is broadcast
    assert b"".join(broadcast.read(timeout=1)) == b"first second"
    assert streams.get("not-a-token") is None


def test_the_download_made_from_the_live_stream_keeps_its_sound_where_it_was_made(tmp_path):
    video = remux(encode(np.zeros((25, 512, 512, 3), np.uint8), click_at(0.3)), tmp_path / "talking-photo.mp4")
    assert not (tmp_path / "talking-photo.fragmented.mp4").exists()
    info = probe(video)
    assert info.video_seconds == pytest.approx(1.0, abs=0.05)
    audio = read_audio(video, AUDIO_RATE)
    assert np.argmax(np.abs(audio)) / AUDIO_RATE == pytest.approx(0.3, abs=0.005)


def test_every_frame_of_the_live_stream_lasts_one_25th_of_a_second_from_the_start(tmp_path):
    path = tmp_path / "live.mp4"
    path.write_bytes(encode(np.zeros((46, 64, 64, 3), np.uint8), click_at(0.3)))
    assert probe(path).fps == 25
    assert probe(remux(path.read_bytes(), tmp_path / "download.mp4")).fps == 25


def test_sound_that_comes_after_its_frames_were_written_plays_under_them_with_no_gap(tmp_path):
    """A microphone's sound: each tenth of a second's frames are written before the next tenth exists."""
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * AUDIO_RATE) / AUDIO_RATE)).astype(np.float32)
    broadcast = Broadcast()
    encoder = LiveEncoder(64, 64, broadcast)
    written = 0
    for tenth in range(1, 21):
        heard = tone[: tenth * AUDIO_RATE // 10]
        frames = len(heard) * 25 // AUDIO_RATE - written
        encoder.write(np.zeros((frames, 64, 64, 3), np.uint8), heard, written)
        written += frames
    encoder.close()
    path = tmp_path / "live.mp4"
    path.write_bytes(b"".join(broadcast.read(timeout=1)))
    played = read_audio(path, AUDIO_RATE)[AUDIO_RATE // 10 : 19 * AUDIO_RATE // 10]
    quietest = min(np.abs(played[i : i + 240]).max() for i in range(0, len(played) - 240, 240))
    assert quietest > 0.25, "silence was written where the sound came later"
