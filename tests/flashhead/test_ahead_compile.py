"""FlashHead compiled ahead of time, as on ZeroGPU: the same velocity, the same frames, and an uncompiled fallback.

AOTInductor compiles for the CPU too (with g++), so the real `spaces` AoTI functions compile the tiny checkpoint
here; one compile (about 30-45 s on 2 cores) serves the module.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import spaces
import torch

from avatar.engines.animate import draw_frames
from avatar.engines.flashhead.ahead import captured_arguments, compile_ahead
from avatar.engines.flashhead.engine import load_batched
from avatar.engines.flashhead.settings import FlashHeadSettings
from avatar.engines.flashhead.spec import LITE
from avatar.engines.handles import handle_of
from avatar.engines.loaded import LoadedEngine
from avatar.speech.utterance import Utterance
from bench.flashhead_speed import bench_face
from tests.flashhead.tiny_checkpoint import write_lite, write_wav2vec2
from tests.helpers import draw_in_forked_worker

SIZE = 64


def spaces_aoti() -> ModuleType:
    """`spaces`' AoTI functions on this CPU-only torch.

    `spaces.aoti_*` import them through the package `spaces.zero.torch`, whose set-up needs a CUDA build of torch;
    the functions themselves need only torch's inductor. So their module is loaded under a bare stand-in for that
    package, which is removed again.
    """
    parent = ModuleType("spaces.zero.torch")
    parent.__path__ = [str(Path(spaces.__file__).parent / "zero" / "torch")]
    sys.modules[parent.__name__] = parent
    try:
        return importlib.import_module("spaces.zero.torch.aoti")
    finally:
        del sys.modules[parent.__name__]
        del sys.modules["spaces.zero.torch.aoti"]


@pytest.fixture(scope="module", autouse=True)
def extracted_packages_removed():
    """Loading a compiled package extracts it into the temporary folder, and a forked worker leaves its copy."""
    before = set(Path(tempfile.gettempdir()).glob("aotinductor_*"))
    yield
    for folder in set(Path(tempfile.gettempdir()).glob("aotinductor_*")) - before:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> FlashHeadSettings:
    root = tmp_path_factory.mktemp("weights")
    write_lite(root / "flashhead")
    write_wav2vec2(root / "wav2vec2")
    return FlashHeadSettings(weights=str(root / "flashhead"), wav2vec2_weights=str(root / "wav2vec2"), size=SIZE)


def uncompiled(settings: FlashHeadSettings) -> LoadedEngine:
    """The engine as ZeroGPU loads it, before anything is compiled."""
    return LITE.loaded(load_batched(settings, torch.device("cpu"), compile_models=False))


@pytest.fixture(scope="module")
def reference(settings) -> LoadedEngine:
    return uncompiled(settings)


@pytest.fixture(scope="module")
def aoti() -> ModuleType:
    return spaces_aoti()


@pytest.fixture(scope="module")
def compiled(settings, aoti) -> LoadedEngine:
    engine = uncompiled(settings)
    assert compile_ahead(engine.engine, LITE.title, aoti=aoti)
    return engine


def speech(chunks: int, chunk_samples: int) -> list[Utterance]:
    """Two sentences over `chunks` whole chunks and a last, partial one."""
    audio = np.random.default_rng(7).uniform(-0.5, 0.5, chunks * chunk_samples + 3_000).astype(np.float32)
    cut = len(audio) // 2
    return [Utterance("one", audio[:cut], 16_000), Utterance("two", audio[cut:], 16_000)]


def test_the_transformer_compiled_ahead_of_time_gives_the_uncompiled_transformers_velocity(compiled, reference, aoti):
    x, _, context, y = captured_arguments(reference.engine.pipeline, aoti)
    assert x.shape[0] == 1, "captured for one session, as a ZeroGPU worker draws"
    x = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    timestep = torch.full((1,), 833.0)
    expected = reference.engine.pipeline.transformer(x, timestep, context, y)
    transformer = compiled.engine.pipeline.transformer
    torch.testing.assert_close(transformer(x, timestep, context, y), expected, rtol=1e-5, atol=1e-5)
    # Nothing eager is left to fall back on: the weights now live with the compiled package only.
    assert all(parameter.numel() == 0 for parameter in transformer.parameters())


def test_the_packages_library_calls_its_own_std_regex_the_fix_for_the_load_crash_on_the_gpu_machines(compiled):
    # Linked -Bsymbolic (docs/AOTI_LOAD_CRASH.md): the dynamic section says so.
    package = vars(compiled.engine.pipeline.transformer)["forward"]
    package.archive_file.seek(0)
    with zipfile.ZipFile(package.archive_file) as archive, tempfile.TemporaryDirectory() as folder:
        (library,) = [name for name in archive.namelist() if name.endswith(".so")]
        dynamic = subprocess.run(
            ["readelf", "-d", archive.extract(library, folder)], capture_output=True, text=True, check=True
        ).stdout
    assert "SYMBOLIC" in dynamic


def test_a_run_drawn_through_the_compiled_transformer_matches_the_uncompiled_engine_within_one_level(
    compiled, reference
):
    utterances = speech(2, reference.engine.pipeline.layout.new_samples)
    face = bench_face(SIZE, seed=0)
    expected = np.concatenate(list(draw_frames(reference, face, utterances)))
    frames = np.concatenate(list(draw_frames(compiled, face, utterances)))
    assert frames.shape == expected.shape == (53, SIZE, SIZE, 3)  # a first, a later and a last, partial chunk
    assert np.abs(frames.astype(int) - expected.astype(int)).max() <= 1


def test_a_gpu_worker_forked_after_start_up_runs_the_compiled_transformer_and_matches(compiled, reference):
    utterances = speech(1, reference.engine.pipeline.layout.new_samples)
    face = bench_face(SIZE, seed=1)
    expected = np.concatenate(list(draw_frames(reference, face, utterances)))
    there = np.concatenate(draw_in_forked_worker(handle_of(compiled), face, utterances))
    assert there.shape == expected.shape
    assert np.abs(there.astype(int) - expected.astype(int)).max() <= 1


def test_when_compiling_fails_flashhead_starts_uncompiled_draws_the_same_frames_and_says_so_in_one_line(
    settings, reference, caplog
):
    # On this CPU-only torch, `spaces`' own AoTI functions cannot even be imported: a real failure, met where
    # ZeroGPU would instead report a failed export, compile or booking.
    assert torch.version.cuda is None
    engine = uncompiled(settings)
    with caplog.at_level(logging.INFO, logger="avatar.engines.flashhead.ahead"):
        assert not compile_ahead(engine.engine, LITE.title)
    (record,) = [record for record in caplog.records if record.name == "avatar.engines.flashhead.ahead"]
    assert record.levelno == logging.WARNING and record.exc_info is None
    message = record.getMessage()
    assert message.startswith("FlashHead Lite will run uncompiled, and slower: compiling its transformer ahead")
    assert "\n" not in message
    utterances = speech(1, reference.engine.pipeline.layout.new_samples)
    face = bench_face(SIZE, seed=2)
    expected = np.concatenate(list(draw_frames(reference, face, utterances)))
    assert np.array_equal(np.concatenate(list(draw_frames(engine, face, utterances))), expected)


def crashing_package(*args: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("GPU task aborted")  # as `spaces` reports a worker that crashed loading the package


def wrong_package(x: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


@pytest.mark.parametrize("package", [crashing_package, wrong_package], ids=["crashes", "computes-wrong-values"])
def test_a_compiled_package_that_fails_its_check_is_taken_back_and_flashhead_draws_uncompiled_the_same_frames(
    settings, reference, aoti, package: Callable[..., torch.Tensor], caplog
):
    # The real capture, export and apply, around a package that crashes where it is loaded or computes wrong values.
    broken = SimpleNamespace(
        aoti_capture=aoti.aoti_capture, aoti_compile=lambda exported, configs: package, aoti_apply=aoti.aoti_apply
    )
    engine = uncompiled(settings)
    with caplog.at_level(logging.INFO, logger="avatar.engines.flashhead.ahead"):
        assert not compile_ahead(engine.engine, LITE.title, aoti=broken)
    (record,) = [record for record in caplog.records if record.name == "avatar.engines.flashhead.ahead"]
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert record.getMessage().startswith(
        "FlashHead Lite will run uncompiled, and slower: loading and checking its transformer compiled ahead of time"
    )
    transformer = engine.engine.pipeline.transformer
    assert "forward" not in vars(transformer)
    assert all(parameter.numel() > 0 for parameter in transformer.parameters())
    utterances = speech(1, reference.engine.pipeline.layout.new_samples)
    face = bench_face(SIZE, seed=3)
    expected = np.concatenate(list(draw_frames(reference, face, utterances)))
    assert np.array_equal(np.concatenate(list(draw_frames(engine, face, utterances))), expected)
