"""The whole app, as a visitor uses it: a real server driven through gradio_client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from avatar.engines.default import mesh
from avatar.media import probe, read_frames
from bench.page_driver import AppServer
from tests.helpers import ASTRONAUT, COFFEE


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` on a free loopback port, offline voice, its own work folder."""
    with AppServer(tmp_path_factory.mktemp("app")) as server:
        yield server.url


def generate(url: str, photo: Path, text: str) -> list[tuple]:
    client = Client(url, verbose=False)
    job = client.submit(handle_file(str(photo)), text, "offline:joe", "default", api_name="/run")
    return [tuple(update) for update in job]


def region_motion(frames: np.ndarray, points: np.ndarray, margin: int) -> float:
    """Mean over pixels of the standard deviation over time, in a box around `points`."""
    x0, y0 = (points.min(axis=0) - margin).astype(int)
    x1, y1 = (points.max(axis=0) + margin).astype(int)
    return float(frames[:, y0:y1, x0:x1].astype(np.float32).std(axis=0).mean())


def test_the_astronaut_says_the_sentence_streamed_into_the_page_then_as_one_mp4(app_url, astronaut_face):
    updates = generate(app_url, ASTRONAUT, "Hello there, nice to meet you.")
    streamed = [video for video, _, _ in updates if isinstance(video, str) and video.endswith(".m3u8")]
    assert streamed, "no video segment was streamed"
    _, download, status = updates[-1]
    assert "Joe (offline" in status and "Embedded photo animator" in status
    spoken = float(status.split("all ")[1].split(" s of video")[0])
    info = probe(Path(download))
    assert info.fps == 25
    assert info.video_seconds == pytest.approx(spoken, abs=0.1)
    assert info.audio_seconds == pytest.approx(spoken, abs=0.1)

    frames = read_frames(Path(download))
    landmarks = astronaut_face.landmarks
    mouth = region_motion(frames, landmarks[list(mesh.UPPER_LIP + mesh.LOWER_LIP)], 6)
    forehead = region_motion(frames, landmarks[[9, 107, 336, 108, 337]], 4)
    background = float(frames[:, :40, :40].astype(np.float32).std(axis=0).mean())
    assert mouth > 6.0, "the mouth barely moves"
    assert mouth > 4 * forehead, "the rest of the face moves as much as the mouth"
    assert background < 1.0, "the background swims"


def test_a_photo_with_no_face_gets_a_clear_message_and_no_video(app_url):
    updates = generate(app_url, COFFEE, "Hello there.")
    video, download, status = updates[-1]
    assert "No face was found" in status
    assert download is None
