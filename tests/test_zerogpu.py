"""On a ZeroGPU Space, GPU work runs inside `spaces.GPU` in a forked worker; elsewhere nothing changes."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import fields

import numpy as np
import pytest
import torch

from avatar import zerogpu
from avatar.config import Settings
from avatar.engines.animate import (
    LONGEST_BOOKING,
    booked_seconds,
    draw_frames,
    draw_frames_on_gpu,
    face_crop,
    raising_messages,
)
from avatar.engines.base import EngineUnavailable
from avatar.engines.default.engine import DefaultEngine
from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.engines.flashhead.ahead import compile_on_gpu
from avatar.engines.handles import handle_of
from avatar.engines.placement import Unbatched
from avatar.engines.registry import EngineRegistry
from avatar.errors import UserFacingError
from avatar.speech.utterance import Utterance
from bench.page_driver import ROOT
from tests.helpers import draw_in_forked_worker


def speech(seconds: float, seed: int = 0) -> Utterance:
    """Loud and quiet stretches, so that the mouth opens and closes."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * 16_000)
    envelope = (np.sin(np.linspace(0, 12 * np.pi, samples)) > 0).astype(np.float32)
    audio = (0.4 * envelope * rng.standard_normal(samples)).astype(np.float32)
    return Utterance(text="hello", audio=audio, sample_rate=16_000)


def test_an_engine_travels_by_pickle_as_a_small_handle_to_itself(astronaut_face):
    engine = ANIMATOR.load("cpu")
    engine.prepare(face_crop(astronaut_face))
    pickled = pickle.dumps(handle_of(engine))
    assert len(pickled) < 500
    assert pickle.loads(pickled).engine is engine


def test_only_the_face_crop_and_its_landmarks_travel_to_an_engine_never_the_photo(astronaut_face):
    crop = face_crop(astronaut_face)
    assert crop.pixels is astronaut_face.crop and crop.landmarks is astronaut_face.landmarks
    assert len(pickle.dumps(crop)) < astronaut_face.crop.nbytes + astronaut_face.landmarks.nbytes + 1000
    assert {field.name for field in fields(crop)} == {"pixels", "landmarks", "photo_scale"}


def test_a_run_drawn_in_a_forked_gpu_worker_matches_the_same_run_drawn_here(astronaut_face):
    engine = ANIMATOR.load("cpu")
    utterances = [speech(0.9, seed=1), speech(0.5, seed=2)]
    face = face_crop(astronaut_face)
    here = np.concatenate(list(draw_frames(engine, face, utterances)))
    there = np.concatenate(draw_in_forked_worker(handle_of(engine), face, utterances))
    assert there.shape == here.shape == (35, 512, 512, 3)
    assert np.abs(there.astype(int) - here.astype(int)).max() <= 1


def test_a_message_for_the_user_comes_back_whole_from_the_gpu_worker(astronaut_face):
    class FullGpuEngine(DefaultEngine):
        def open(self, face):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    engine = ANIMATOR.loaded(Unbatched(FullGpuEngine("cpu")))  # held here: a handle does not keep it alive
    items = draw_in_forked_worker(handle_of(engine), face_crop(astronaut_face), [speech(0.5)])
    assert len(items) == 1 and isinstance(items[0], UserFacingError)
    with pytest.raises(UserFacingError, match="GPU ran out of memory"):
        list(raising_messages(iter(items)))


def test_with_spaces_installed_but_no_zerogpu_the_gpu_work_is_the_plain_function():
    assert zerogpu.spaces is not None, "the tests run with the `spaces` package installed"
    assert not zerogpu.ACTIVE
    assert zerogpu.gpu_task(duration=booked_seconds)(draw_frames) is draw_frames
    assert not hasattr(draw_frames_on_gpu, "zerogpu"), "spaces marks the functions it wraps for ZeroGPU"


def test_compiling_at_start_up_books_zerogpus_longest_start_up_call_and_elsewhere_runs_in_process():
    handle = handle_of(ANIMATOR.load("cpu"))
    assert zerogpu.startup_booking(handle) == zerogpu.STARTUP_BOOKING == 1500
    assert not hasattr(compile_on_gpu, "zerogpu"), "off ZeroGPU the start-up compile is the plain function"


def test_a_failed_gpu_call_is_told_in_one_line_with_what_failed_in_the_worker():
    from spaces.zero.gradio import error  # what `spaces` raises when its worker fails or a booking is refused

    in_the_worker = error("ZeroGPU worker error", "TorchRuntimeError")
    assert zerogpu.failure(in_the_worker) == "ZeroGPU worker error: TorchRuntimeError"
    assert zerogpu.failure(RuntimeError("CUDA out of memory")) == "RuntimeError: CUDA out of memory"
    assert zerogpu.failure(TimeoutError()) == "TimeoutError"


def test_without_the_spaces_package_the_app_imports_and_runs_its_gpu_work_in_process():
    script = (
        "import sys; sys.modules['spaces'] = None\n"
        "import app\n"
        "from avatar import zerogpu\n"
        "from avatar.engines.animate import draw_frames\n"
        "assert zerogpu.spaces is None and not zerogpu.ACTIVE\n"
        "assert zerogpu.gpu_task(duration=len)(draw_frames) is draw_frames\n"
        "print('imported')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_a_gpu_booking_covers_the_worker_start_and_the_drawing_and_never_exceeds_zerogpus_limit(astronaut_face):
    engine = ANIMATOR.load("cpu")
    engine.engine.gpu_seconds_per_speech_second = 2.0
    handle, face = handle_of(engine), face_crop(astronaut_face)
    short = booked_seconds(handle, face, [speech(3.0), speech(2.0)])
    assert short == pytest.approx(20 + 10, abs=1)
    assert booked_seconds(handle, face, [speech(200.0)]) == LONGEST_BOOKING


def test_once_sealed_only_engines_loaded_at_start_up_are_offered_and_others_refuse_clearly():
    registry = EngineRegistry(Settings(device="cpu"), cuda_available=True)
    registry.get("default")
    assert {option.key for option in registry.options()} == {"default", "flashhead-lite", "flashhead-pro"}
    registry.seal()
    assert [option.key for option in registry.options()] == ["default"]
    assert registry.preferred() == "default"
    with pytest.raises(EngineUnavailable, match="not loaded when this app started"):
        registry.get("flashhead-lite")
