"""bench/app_visitors.py: its reading of a live stream, its playback model, and one tiny run through the real app.

The GPU numbers come from the same command on a GPU machine; here the default engine on the CPU checks that a
visitor's stream is read and timed, and that the engine-only side and the section come out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from avatar.config import FPS
from avatar.live_stream import Broadcast, LiveEncoder
from bench.app_visitors import Fragment, FragmentedMp4, playback

ROOT = Path(__file__).resolve().parents[1]


def live_stream_bytes(frames: int, size: int = 64) -> bytes:
    """A run's live stream as the app writes it: random frames and sound through the app's own encoder."""
    broadcast = Broadcast("test")
    encoder = LiveEncoder(size, size, broadcast)
    rng = np.random.default_rng(0)
    speech = rng.uniform(-0.2, 0.2, 24_000 * (frames // FPS + 2)).astype(np.float32)
    for first in range(0, frames, 6):
        count = min(6, frames - first)
        encoder.write(rng.integers(0, 255, (count, size, size, 3), dtype=np.uint8), speech, first)
    encoder.close()
    return broadcast.contents()


def test_each_fragment_of_a_live_stream_is_read_with_its_media_time_as_its_bytes_arrive():
    data = live_stream_bytes(30)
    stream = FragmentedMp4()
    for at in range(0, len(data), 777):  # in pieces that cut boxes anywhere, as a network does
        stream.feed(data[at : at + 777], at / 1e6)
    video, audio = stream.track("vide"), stream.track("soun")
    assert video is not None and audio is not None and stream.bytes == len(data)
    spans = [f.tracks[video] for f in stream.fragments if video in f.tracks]
    assert sum(count for _, _, count in spans) == 30
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(30 / FPS)
    assert all(a[1] == pytest.approx(b[0]) for a, b in zip(spans, spans[1:], strict=False)), "fragments join"
    assert [f.arrival for f in stream.fragments] == sorted(f.arrival for f in stream.fragments)


def stream_of(arrivals: list[float], seconds: float = 0.2) -> FragmentedMp4:
    """A stream whose fragments each hold `seconds` of video and sound, arriving at `arrivals`."""
    stream = FragmentedMp4()
    stream.handlers = {1: "vide", 2: "soun"}
    for index, arrival in enumerate(arrivals):
        span = (index * seconds, (index + 1) * seconds, 5)
        stream.fragments.append(Fragment(arrival, index, {1: span, 2: span}))
    return stream


def test_playback_in_real_time_stalls_only_where_a_fragment_arrives_after_its_time():
    on_time = playback(stream_of([1.0, 1.1, 1.3, 1.5, 1.7]))
    assert on_time.first_frame == 1.0 and on_time.stalls == () and on_time.frames == 25
    late = playback(stream_of([1.0, 1.1, 1.3, 2.1, 2.2]))  # the 4th is due at 1.6 (1.0 + 0.6 s of media)
    assert late.stalls == (pytest.approx(0.5),)
    assert late.longest_stall == pytest.approx(0.5)


def test_a_tiny_run_through_the_real_app_times_every_visitor_and_the_engine_alone(tmp_path):
    out = tmp_path / "out"
    command = [
        sys.executable, "bench/app_visitors.py", "--tiny", "--out", str(out),
        "--landmarks", str(tmp_path / "landmarks.pkl"), "--seconds", "3",
    ]
    finished = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads((out / "app_visitors.json").read_text())
    (app,) = [row for row in report["app"] if not row["variant"]]
    (own_threads,) = [row for row in report["app"] if row["variant"]]  # the same load, Gradio on its own threads
    assert app["visitors"] >= 1 and app["served"] == app["visitors"], app["errors"]
    assert own_threads["served"] == own_threads["visitors"] == app["visitors"], own_threads["errors"]
    assert own_threads["own_pool_tokens_peak"] is not None
    assert 0 < app["first_picture_p50_s"] < 60
    assert all(visit["frames"] > 0 and visit["fragments"] > 1 for visit in app["visits"])
    # An encoder that the samples (every 0.5 s) never see running is counted with the children the server has
    # waited for ("others"): a tiny run on a loaded machine can leave the encoders' own column at 0.
    resources = app["resources"]
    assert resources["cores_python"] > 0 and resources["cores_encoders"] + resources["cores_others"] > 0
    assert app["open_to_first_frames_p50_s"] is not None, "the server's log joins the visitor's stream"
    (engine,) = report["engine"]
    assert engine["served"] == app["visitors"] and engine["visitors"] == app["visitors"]
    section = (out / "RESULTS.md").read_text()
    assert "| 1 | app |" in section and "| 1 | engine |" in section and "| 1 | app, own threads |" in section
