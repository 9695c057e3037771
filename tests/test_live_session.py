"""A live session through the run service and the Live tab's handlers: in line like any run, its take kept after Stop.

The page's part (the microphone's posts) is played here by pushing sound the way the route does; the
route itself is checked with FastAPI's test client. tests/test_live_browser.py runs the real page.
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import closing
from dataclasses import replace

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scipy.signal import resample_poly

from app import live_routes
from avatar.config import Settings
from avatar.live_stream import AAC_PRIMING_SAMPLES
from avatar.media import AUDIO_RATE, probe, read_audio
from avatar.runs.service import RunRequest, Started, TypedText
from avatar.speech.live_source import LiveSpeech
from avatar.speech.offline_voice import OfflineVoice
from avatar.studio import Studio
from tests.helpers import ASTRONAUT
from ui import live_handlers
from ui.live_handlers import ENDING, STARTING, LiveView

RATE = 48_000


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    said = OfflineVoice().speak("Hello there, nice to meet you.")
    divisor = math.gcd(RATE, said.sample_rate)
    return resample_poly(said.audio, RATE // divisor, said.sample_rate // divisor).astype(np.float32)


@pytest.fixture
def studio(tmp_path, monkeypatch) -> Studio:
    """The app with the embedded animator allowed one run at a time."""
    monkeypatch.setenv("AVATAR_RUNS_AT_ONCE", "1")
    return Studio(replace(Settings(), voice="offline", work_dir=tmp_path / "work"))


def go_live(studio: Studio, words: str = "") -> tuple[object, LiveView]:
    """The Live tab's Start, up to the view that shows the player (the session then listens)."""
    views = live_handlers.start(studio, str(ASTRONAUT), words, "default", "close-up")
    assert next(views) == LiveView(run=None, video=None, download=None, status=STARTING)
    return views, next(views)


def talk_in_real_time(speech: LiveSpeech, sound: np.ndarray) -> threading.Thread:
    """The page's microphone: a tenth of a second every tenth of a second, in a thread."""

    def post() -> None:
        start = time.monotonic()
        for index, first in enumerate(range(0, len(sound), RATE // 10)):
            time.sleep(max(0.0, start + index / 10 - time.monotonic()))
            speech.push(sound[first : first + RATE // 10], RATE)

    thread = threading.Thread(target=post)
    thread.start()
    return thread


def test_stop_ends_the_sound_and_the_take_as_long_as_it_is_kept_for_download_with_its_sound(studio, hello):
    views, started = go_live(studio)
    run = started.run
    assert isinstance(run.speech, LiveSpeech)
    assert f'data-live-microphone="live-audio/{run.speech.token}"' in started.video and " muted " in started.video
    assert studio.runs.microphones.get(run.speech.token) is run.speech
    sound = np.concatenate([np.zeros(RATE // 2, np.float32), hello, np.zeros(RATE // 2, np.float32)])
    talk_in_real_time(run.speech, sound).join()
    assert live_handlers.stop(run) == LiveView(status=ENDING)
    finished = next(view for view in views if isinstance(view.download, list))  # its files last while views go on
    assert finished.run is None and finished.status.startswith("Spoken by **you, live**")
    (video,) = finished.download
    info = probe(video)
    heard = read_audio(video, AUDIO_RATE)[AAC_PRIMING_SAMPLES:]
    views.close()
    assert info.video_seconds == pytest.approx(len(sound) / RATE, abs=0.08)
    assert np.abs(heard[AUDIO_RATE : int(1.5 * AUDIO_RATE)]).max() > 0.1, "the take lost the visitor's sound"
    assert np.abs(heard[: AUDIO_RATE // 3]).max() < 0.01, "the pause before the words was not silent"


def test_a_live_session_waits_in_line_like_any_run_and_is_told_its_number(studio):
    talking = studio.runs.serve(RunRequest(str(ASTRONAUT), TypedText("Hello there.", "offline:joe"), "default"))
    with closing(talking):
        assert isinstance(next(talking), Started)  # the typed run holds the one slot
        views = live_handlers.start(studio, str(ASTRONAUT), "", "default", "whole")
        with closing(views):
            assert next(views).status == STARTING
            assert "number 1 in line" in next(views).status


def test_leaving_the_page_ends_the_session_and_its_run(studio):
    views, started = go_live(studio)
    live_handlers.leave(started.run)
    assert started.run.speech.ended
    with pytest.raises(StopIteration):
        while True:
            view = next(views)
            assert not (isinstance(view.download, list) and view.download), "a take nobody can download was kept"


def test_the_microphone_route_takes_sound_while_the_session_listens_and_says_410_once_it_has_ended(studio):
    app = FastAPI(routes=live_routes(studio))
    client = TestClient(app)
    speech = LiveSpeech(60)
    studio.runs.microphones.add(speech)
    tenth = (np.sin(np.arange(RATE // 10) / 5) * 8000).astype("<i2").tobytes()
    assert client.post(f"/live-audio/{speech.token}?rate={RATE}", content=tenth).status_code == 204
    assert client.post(f"/live-audio/{speech.token}?rate=5", content=tenth).status_code == 400
    assert client.post("/live-audio/not-a-token?rate=48000", content=tenth).status_code == 404
    assert client.post(f"/live-audio/{speech.token}?rate={RATE}&end=lost", content=tenth).status_code == 410
    assert speech.ended and speech.notice.startswith("The microphone stopped sending sound")
    assert client.post(f"/live-audio/{speech.token}?rate={RATE}", content=tenth).status_code == 410
