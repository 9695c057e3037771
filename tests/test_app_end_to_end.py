"""The whole app, as a visitor uses it: a real server driven through gradio_client."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from avatar.faces import find_faces
from avatar.media import parse_webvtt, probe, read_frames, read_subtitles
from bench.page_driver import AppServer
from tests.helpers import ASTRONAUT, COFFEE, video_of_the_speech


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """`python app.py` on a free loopback port, offline voice, its own work folder."""
    with AppServer(tmp_path_factory.mktemp("app")) as server:
        yield server.url


def generate(url: str, photo: Path, text: str, engine: str = "default") -> list[tuple]:
    client = Client(url, verbose=False)
    job = client.submit(handle_file(str(photo)), text, "offline:joe", engine, api_name="/run")
    return [tuple(update) for update in job]


def landmark_tracks(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An independent landmark pass over the video: lip gap, eye span and nose drop per frame (pixels)."""
    gaps, spans, drops = [], [], []
    for frame in frames:
        points = find_faces(frame)[0].landmarks
        eyes = (points[33] + points[263]) / 2
        gaps.append(points[14, 1] - points[13, 1])
        spans.append(np.hypot(*(points[263] - points[33])))
        drops.append(np.hypot(*(points[1] - eyes)))
    return np.array(gaps), np.array(spans), np.array(drops)


def test_the_astronaut_says_the_sentence_streamed_into_the_page_then_as_one_mp4(app_url, tmp_path):
    updates = generate(app_url, ASTRONAUT, "Hello there, nice to meet you.")
    players = [video for video, *_ in updates if isinstance(video, str) and "data-live-src" in video]
    assert players, "the page was given no live player"
    progress = [status for *_, status in updates if isinstance(status, str) and "of video ready" in status]
    assert progress, "no streamed segment was reported"
    live_path = players[0].split('data-live-src="')[1].split('"')[0]
    with urllib.request.urlopen(app_url + live_path, timeout=60) as answer:
        (tmp_path / "live.mp4").write_bytes(answer.read())
    live = probe(tmp_path / "live.mp4")
    _, (download, subtitles), _, status = updates[-1]
    assert "Joe (offline" in status and "Embedded photo animator" in status
    info = video_of_the_speech(download, status)
    assert live.video_seconds == pytest.approx(info.video_seconds, abs=0.1), "the live stream lost pictures"
    # All of the speech, plus at most the encoder's priming as silence after the last frame.
    assert 0.0 <= live.audio_seconds - live.video_seconds < 0.1, "the live stream lost audio"
    captions = [text for *_, text in read_subtitles(Path(download))]
    assert " ".join(captions) == "Hello there, nice to meet you."
    assert [text for *_, text in parse_webvtt(Path(subtitles).read_text())] == captions

    frames = read_frames(Path(download))
    lip_gap, eye_span, nose_drop = landmark_tracks(frames[::2])
    assert np.ptp(lip_gap) > 4.0, "the mouth barely opens"
    assert np.std(eye_span) < np.std(lip_gap) / 2.5, "the eyes move about as much as the mouth"
    assert np.std(nose_drop) < np.std(lip_gap) / 2.5, "the nose moves about as much as the mouth"
    background = float(frames[:, :40, :40].astype(np.float32).std(axis=0).mean())
    # The whole photo's background is the photo's own pixels in every frame; what is left is H.264's noise.
    assert background < 1.5, "the background swims"


def test_a_photo_with_no_face_gets_a_clear_message_and_no_video(app_url):
    updates = generate(app_url, COFFEE, "Hello there.")
    video, download, _, status = updates[-1]
    assert "No face was found" in status
    assert download is None
