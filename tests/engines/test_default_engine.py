"""What a user can rely on from the embedded default engine, checked on the bundled photos."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
from avatar.engines.animate import face_crop
from avatar.engines.base import SpeechChunker
from avatar.engines.default import mesh
from avatar.engines.default.engine import DefaultEngine, Motion
from avatar.engines.default.mouth_shapes import mouth_track
from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.engines.default.warp import ACTIONS
from avatar.faces import Face, read_face
from avatar.speech.utterance import Phone, Utterance
from bench.contact_sheet import shape_frame
from tests.helpers import GRACE_HOPPER, photo


def _speech(seconds: float, silent_from: float | None = None) -> Utterance:
    """A voiced buzz with syllable-like loudness, optionally silent from `silent_from` on."""
    t = np.arange(int(seconds * ENGINE_SAMPLE_RATE)) / ENGINE_SAMPLE_RATE
    syllables = np.clip(np.sin(2 * np.pi * 3.0 * t), 0.0, None)
    audio = 0.4 * syllables * np.sign(np.sin(2 * np.pi * 140 * t))
    if silent_from is not None:
        audio[t >= silent_from] = 0.0
    return Utterance("test", audio.astype(np.float32), ENGINE_SAMPLE_RATE)


def _render(face: Face, *utterances: Utterance) -> np.ndarray:
    talking = ANIMATOR.load("cpu").start(face_crop(face))
    chunks = [frames for utterance in utterances for frames in talking.push(utterance)]
    chunks += list(talking.finish())
    return np.concatenate(chunks)


def _mouth_box(face: Face) -> tuple[slice, slice]:
    points = face.landmarks[list(mesh.OUTER_UPPER_LIP + mesh.OUTER_LOWER_LIP)]
    (x0, y0), (x1, y1) = points.min(axis=0).astype(int), points.max(axis=0).astype(int)
    return slice(y0 - 6, y1 + 6), slice(x0 - 6, x1 + 6)


@pytest.fixture(scope="module")
def grace_face() -> Face:
    """A photo with closed lips: the engine paints the teeth itself."""
    return read_face(photo(GRACE_HOPPER))


@pytest.fixture(scope="module")
def talking(astronaut_face: Face) -> np.ndarray:
    """Two seconds of speech followed by one second of silence."""
    return _render(astronaut_face, _speech(3.0, silent_from=2.0))


def test_frame_count_matches_the_audio_over_several_sentences(astronaut_face: Face) -> None:
    first, second = _speech(1.01), _speech(0.77)
    frames = _render(astronaut_face, first, second)
    samples = len(first.audio) + len(second.audio)
    assert len(frames) == math.ceil(samples / SAMPLES_PER_FRAME)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (512, 512, 3)


def test_the_mouth_moves_while_speaking(talking: np.ndarray, astronaut_face: Face) -> None:
    rows, columns = _mouth_box(astronaut_face)
    mouth = talking[:50, rows, columns].astype(np.float32)
    assert mouth.std(axis=0).mean() > 4.0


def test_the_mouth_is_closed_and_still_during_silence(talking: np.ndarray, astronaut_face: Face) -> None:
    rows, columns = _mouth_box(astronaut_face)
    silent = talking[62:, rows, columns].astype(np.float32)
    assert np.abs(np.diff(silent, axis=0)).mean() < 1.0
    track = mouth_track(_speech(3.0, silent_from=2.0).audio, ENGINE_SAMPLE_RATE, (), 75)
    assert track.open[55:].max() < 0.02


def test_pixels_outside_the_face_do_not_move(talking: np.ndarray) -> None:
    corners = np.concatenate(
        [talking[:, :40, :40], talking[:, :40, -40:], talking[:, -40:, :40], talking[:, -40:, -40:]], 1
    )
    assert np.abs(np.diff(corners.astype(np.int16), axis=0)).max() == 0


def test_the_rest_pose_does_not_drift_over_a_long_speech(astronaut_face: Face) -> None:
    talking = ANIMATOR.load("cpu").start(face_crop(astronaut_face))
    rest = Motion(np.zeros((1, len(ACTIONS)), np.float32), np.zeros(1, np.float32), np.zeros((1, 2), np.float32))
    before = talking.state.renderer.render(np.zeros(1, int), rest).numpy()
    for _ in talking.push(_speech(4.0)):
        pass
    after = talking.state.renderer.render(np.zeros(1, int), rest).numpy()
    assert np.array_equal(before, after)
    assert np.abs(before[0].astype(np.int16) - astronaut_face.crop).mean() < 1.0


def test_phone_timings_shape_the_mouth() -> None:
    phones = (
        Phone("m", 0.0, 0.2),
        Phone("a", 0.2, 0.5),
        Phone("u", 0.5, 0.8),
        Phone("i", 0.8, 1.1),
        Phone("f", 1.1, 1.4),
    )
    audio = _speech(1.6).audio
    track = mouth_track(audio, ENGINE_SAMPLE_RATE, phones, 40)
    assert track.open[1] < 0.15, "m closes the lips"
    assert track.open[8] > 0.5, "a opens the jaw"
    assert track.spread[16] < -0.4, "u rounds the lips"
    assert track.spread[23] > 0.4, "i spreads the lips"
    assert track.tuck[31] > 0.5, "f tucks the lower lip"
    assert np.abs(np.diff(track.open)).max() < 0.35, "no snapping from frame to frame"


def test_the_open_mouth_shows_a_dark_interior(talking: np.ndarray, astronaut_face: Face) -> None:
    rows, columns = _mouth_box(astronaut_face)
    brightness = talking[:50, rows, columns].astype(np.float32).mean(axis=-1)
    darkest = brightness.reshape(len(brightness), -1).min(axis=1)
    assert darkest.min() < 70.0
    assert brightness.reshape(len(brightness), -1).min(axis=1)[0] > darkest.min()


def _between_the_lips(face: Face, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the rest photo's opening between the inner lips, over the middle `share` of the mouth."""
    upper, lower = face.landmarks[list(mesh.INNER_UPPER_LIP)], face.landmarks[list(mesh.INNER_LOWER_LIP)]
    left, right = upper[0, 0], upper[-1, 0]
    half = (right - left) * share / 2
    columns = np.arange(int((left + right) / 2 - half), int((left + right) / 2 + half))
    top = np.interp(columns, upper[:, 0], upper[:, 1])
    bottom = np.interp(columns, lower[:, 0], lower[:, 1])
    return columns, np.stack([top, bottom], 1)


def test_a_smile_showing_teeth_closes_in_silence_with_no_teeth_left_between_the_lips(
    talking: np.ndarray, astronaut_face: Face
) -> None:
    columns, rows = _between_the_lips(astronaut_face, 0.6)
    mid = rows.mean(axis=1).round().astype(int)
    rest_teeth = astronaut_face.crop[mid, columns].astype(np.float32).min(axis=1).mean()
    # In silence the lips meet about half-way up the old opening: nothing there is as white as teeth.
    closed = talking[-5:, :, :][:, mid - 3, columns].astype(np.float32).min(axis=-1)
    assert rest_teeth > 180.0
    assert closed.mean() < rest_teeth - 40.0


def test_closed_lips_of_a_smile_leave_no_dark_marks_at_the_corners(astronaut_face: Face) -> None:
    closed = shape_frame(DefaultEngine("cpu"), astronaut_face, "m").astype(np.float32).mean(axis=-1)
    skin = closed[_mouth_box(astronaut_face)].mean()
    for corner in mesh.MOUTH_CORNERS:
        x, y = astronaut_face.landmarks[corner].round().astype(int)
        around = closed[y - 10 : y + 10, x - 8 : x + 8]
        assert around.min() > 0.5 * skin


def test_painted_teeth_show_separate_teeth_not_a_flat_band(grace_face: Face) -> None:
    open_mouth = shape_frame(DefaultEngine("cpu"), grace_face, "a").astype(np.float32).mean(axis=-1)
    columns, _ = _between_the_lips(grace_face, 0.5)
    upper = grace_face.landmarks[list(mesh.INNER_UPPER_LIP)]
    row = np.interp(columns, upper[:, 0], upper[:, 1]).round().astype(int) + 3
    teeth = open_mouth[row, columns]
    assert teeth.mean() > 120.0, "the upper teeth show under the upper lip"
    dips = (teeth[1:-1] < teeth[:-2] - 4) & (teeth[1:-1] <= teeth[2:])
    assert dips.sum() >= 2, "darker gaps between the teeth"


def test_the_last_few_samples_of_a_run_do_not_pop_the_mouth_open(astronaut_face: Face) -> None:
    engine = DefaultEngine("cpu")
    state = engine.open(face_crop(astronaut_face))
    chunker = SpeechChunker(engine.chunk_frames)
    speech = _speech(1.0, silent_from=0.8)
    ending = Utterance("tail", np.concatenate([speech.audio, np.full(9, 0.001, np.float32)]), ENGINE_SAMPLE_RATE)
    for chunk in chunker.push(ending):
        state.track(chunk)
    (leftover,) = chunker.finish()
    assert leftover.frames == 1
    assert state.track(leftover).open.max() < 0.02


def test_a_run_started_while_its_face_is_being_prepared_waits_for_that_preparation(astronaut_face, monkeypatch):
    from avatar.engines.default import engine as engine_module

    builds = []

    class CountedRenderer(engine_module.FaceRenderer):
        def __init__(self, *args, **kwargs):
            builds.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(engine_module, "FaceRenderer", CountedRenderer)
    engine = ANIMATOR.load("cpu")
    preparing = threading.Thread(target=engine.prepare, args=(face_crop(astronaut_face),))
    preparing.start()
    while not builds:
        time.sleep(0.001)
    talking = engine.start(face_crop(astronaut_face))
    preparing.join()
    assert len(builds) == 1
    assert isinstance(talking.state.renderer, CountedRenderer)
