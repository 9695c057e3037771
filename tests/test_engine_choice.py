"""Which engine runs: the embedded animator everywhere, FlashHead only where it can, with reasons."""

from dataclasses import replace

from avatar.config import Settings
from avatar.engines.registry import DEFAULT_KEY, EngineRegistry
from avatar.studio import Studio
from tests.helpers import ASTRONAUT


def test_without_a_gpu_only_the_embedded_animator_is_offered_and_the_page_says_why():
    registry = EngineRegistry(Settings(engine="auto"), cuda_available=False)
    assert [option.key for option in registry.options()] == [DEFAULT_KEY]
    assert registry.preferred() == DEFAULT_KEY
    assert "No CUDA GPU" in registry.explain()


def test_with_a_gpu_flashhead_is_offered_and_preselected_when_its_weights_are_in_a_local_folder(tmp_path):
    registry = EngineRegistry(Settings(engine="auto", flashhead_weights=str(tmp_path)), cuda_available=True)
    assert {"flashhead-lite", "flashhead-pro"} <= {option.key for option in registry.options()}
    assert registry.preferred() == "flashhead-lite"
    hub_only = EngineRegistry(Settings(engine="auto"), cuda_available=True)
    assert hub_only.preferred() == DEFAULT_KEY


def test_an_engine_that_cannot_load_gives_way_to_the_embedded_animator_with_a_clear_notice(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings = replace(Settings(), flashhead_weights=str(tmp_path / "missing"), voice="offline", work_dir=tmp_path)
    studio = Studio(settings)
    studio.engines = EngineRegistry(settings, cuda_available=True)
    run = studio.start_run(ASTRONAUT, "Hello.", "offline:joe", "flashhead-lite")
    assert run.engine.info.key == DEFAULT_KEY
    assert "embedded photo animator was used instead" in run.stats.notice
    assert "flashhead-lite" in studio.engines.problems
