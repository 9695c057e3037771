"""Which engine runs: the embedded animator everywhere, FlashHead only where it can, with reasons;
and any engine the catalogue is given, declared in its own folder, runs through the real page."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest

from avatar.config import Settings
from avatar.engines import registry as registry_module
from avatar.engines.animate import draw_frames, face_crop
from avatar.engines.catalogue import SPECS
from avatar.engines.registry import EngineRegistry
from avatar.media import read_frames
from avatar.runs.service import RunRequest, TypedText
from avatar.speech.utterance import Utterance
from avatar.studio import Studio
from bench.page_driver import AppServer
from tests.engines.still_photo.spec import SPEC as STILL_PHOTO
from tests.helpers import ASTRONAUT
from tests.test_app_end_to_end import generate


def test_without_a_gpu_only_the_embedded_animator_is_offered_and_the_page_says_why():
    registry = EngineRegistry(Settings(engine="auto"), cuda_available=False)
    assert [option.key for option in registry.options()] == ["default"]
    assert registry.preferred() == "default"
    assert "No CUDA GPU" in registry.explain() and "FlashHead Lite" in registry.explain()


def test_with_a_gpu_flashhead_is_offered_and_preselected_when_its_weights_are_in_a_local_folder(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("AVATAR_FLASHHEAD_WEIGHTS", str(tmp_path))
    registry = EngineRegistry(Settings(engine="auto"), cuda_available=True)
    assert {"flashhead-lite", "flashhead-pro"} <= {option.key for option in registry.options()}
    assert registry.preferred() == "flashhead-lite"
    monkeypatch.setenv("AVATAR_FLASHHEAD_VARIANT", "pro")
    assert EngineRegistry(Settings(engine="auto"), cuda_available=True).preferred() == "flashhead-pro"
    monkeypatch.delenv("AVATAR_FLASHHEAD_WEIGHTS")
    assert EngineRegistry(Settings(engine="auto"), cuda_available=True).preferred() == "default"


def test_each_engine_reads_its_own_settings_and_its_sessions_become_its_running_slots(monkeypatch):
    monkeypatch.setenv("AVATAR_RUNS_AT_ONCE", "3")
    monkeypatch.setenv("AVATAR_FLASHHEAD_SESSIONS", "8")
    registry = EngineRegistry(Settings(), cuda_available=True)
    assert registry.sessions("default") == 3
    assert registry.sessions("flashhead-lite") == registry.sessions("flashhead-pro") == 8
    assert not any(name.startswith("flashhead") for name in vars(Settings()))


def test_the_registry_holds_no_engine_of_its_own():
    source = open(registry_module.__file__).read().lower()
    assert "flashhead" not in source and "animator" not in source


def test_an_engine_that_cannot_load_gives_way_to_the_embedded_animator_with_a_clear_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("AVATAR_FLASHHEAD_WEIGHTS", str(tmp_path / "missing"))
    settings = replace(Settings(), voice="offline", work_dir=tmp_path)
    studio = Studio(settings, EngineRegistry(settings, cuda_available=True))
    run = studio.runs.start(RunRequest(ASTRONAUT, TypedText("Hello.", "offline:joe"), "flashhead-lite"))
    assert run.engine.info.key == "default"
    assert "embedded photo animator was used instead" in run.stats.notice
    assert "flashhead-lite" in studio.engines.problems


def test_any_engine_gets_speech_at_16_khz_whatever_rate_the_voice_spoke_at(astronaut_face):
    engine = STILL_PHOTO.load("cpu")
    seconds = 0.5
    voices = [Utterance("hi", np.zeros(int(seconds * rate), np.float32), rate) for rate in (22_050, 24_000, 16_000)]
    frames = list(draw_frames(engine, face_crop(astronaut_face), voices))
    assert sum(len(f) for f in frames) == round(3 * seconds * 25)


@pytest.fixture
def restore_catalogue():
    before = list(SPECS)
    yield
    SPECS[:] = before


def test_a_third_engine_in_its_own_folder_runs_through_the_real_page_with_one_registration_line(
    tmp_path, restore_catalogue
):
    launcher = textwrap.dedent(
        """
        from avatar.engines import catalogue
        from tests.engines.still_photo.spec import SPEC
        catalogue.register(SPEC)
        import app
        app.main()
        """
    )
    with AppServer(tmp_path, argv=["-c", launcher]) as server:
        updates = generate(server.url, ASTRONAUT, "Hello there.", engine="still-photo")
    *_, (_, (download, _), _, status) = updates
    assert "Still photo" in status, status
    frames = read_frames(download)
    assert len(frames) > 10
    # Up to H.264's noise, which is a little higher on the whole photo (the default framing) than on the face alone.
    assert np.abs(frames.astype(np.int16) - frames[:1]).mean() < 1.5, "a still photo does not move"
