"""What the page read when a file was chosen (a photo's face, a recording's sound) is not read again at Generate;
a changed file is read afresh."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
import soundfile

import avatar.runs.service
import avatar.studio
from avatar.config import Settings
from avatar.framing import Framing
from avatar.recent import RecentReadings
from avatar.runs.service import RecordedAudio
from avatar.speech.offline_voice import OfflineVoice
from avatar.studio import Studio
from tests.helpers import ASTRONAUT, GRACE_HOPPER


@pytest.fixture
def counted(monkeypatch, tmp_path):
    """A studio whose face readings are counted."""
    readings = []
    real = avatar.studio.read_face

    def read_face(photo, *args, **kwargs):
        readings.append(photo.shape)
        return real(photo, *args, **kwargs)

    monkeypatch.setattr(avatar.studio, "read_face", read_face)
    return Studio(replace(Settings(), voice="offline", work_dir=tmp_path / "work")), readings


def test_generate_takes_the_face_read_when_the_photo_was_picked(counted):
    studio, readings = counted
    picked = studio.preview_face(str(ASTRONAUT))
    at_generate = studio.read_face(str(ASTRONAUT))
    assert at_generate is picked and len(readings) == 1


def test_a_photo_replaced_under_the_same_name_and_another_framing_are_read_afresh(counted, tmp_path):
    studio, readings = counted
    photo = tmp_path / "me.jpg"
    shutil.copyfile(ASTRONAUT, photo)
    first = studio.read_face(photo)
    close_up = studio.read_face(photo, Framing.CLOSE_UP)
    shutil.copyfile(GRACE_HOPPER, photo)
    replaced = studio.read_face(photo)
    assert len(readings) == 3 and close_up.framing is Framing.CLOSE_UP
    assert replaced.photo.shape != first.photo.shape


def test_kept_readings_stay_within_their_byte_budget():
    readings = RecentReadings(budget=2500, size=lambda reading: reading.nbytes)
    for name in "abcd":
        readings.put((name,), np.zeros(1000, np.uint8))
    assert [readings.get((name,)) is not None for name in "abcd"] == [False, False, True, True]


def test_generate_takes_the_recording_decoded_when_it_was_chosen(monkeypatch, tmp_path):
    decoded = []
    real = avatar.runs.service.load_recording
    monkeypatch.setattr(avatar.runs.service, "load_recording", lambda *args: decoded.append(args) or real(*args))
    studio = Studio(replace(Settings(), voice="offline", work_dir=tmp_path / "work"))
    spoken = OfflineVoice().speak("Hello there.")
    recording = tmp_path / "hello.wav"
    soundfile.write(recording, spoken.audio, spoken.sample_rate)
    studio.runs.prepare_recording(str(recording))
    studio.runs.check_speech(RecordedAudio(str(recording), "Hello there."))
    assert len(decoded) == 1
