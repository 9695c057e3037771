"""Streaming with FlashHead: frame counts, motion hand-over, audio windows, and clear refusals."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from avatar.engines.animate import draw_frames
from avatar.engines.base import EngineUnavailable, FaceCrop, SpeechChunker
from avatar.engines.devices import choose_device
from avatar.engines.flashhead.audio_features import frame_windows
from avatar.engines.flashhead.engine import FlashHeadEngine
from avatar.engines.flashhead.settings import FlashHeadSettings
from avatar.engines.flashhead.spec import LITE
from avatar.engines.flashhead.transformer import WanModelAudioProject
from avatar.engines.flashhead.weights import load_strict
from avatar.engines.handles import handle_of
from avatar.engines.loaded import LoadedEngine
from avatar.speech.utterance import Utterance
from bench.flashhead_speed import bench_face
from tests.flashhead.tiny_checkpoint import write_lite, write_wav2vec2
from tests.helpers import draw_in_forked_worker

SIZE = 64


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> LoadedEngine:
    root = tmp_path_factory.mktemp("weights")
    write_lite(root / "flashhead")
    write_wav2vec2(root / "wav2vec2")
    settings = FlashHeadSettings(weights=str(root / "flashhead"), wav2vec2_weights=str(root / "wav2vec2"), size=SIZE)
    return LITE.load("cpu", settings)


def a_face() -> FaceCrop:
    return bench_face(SIZE, seed=0)


def speech(samples: int, seed: int = 0) -> Utterance:
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)
    return Utterance(text="hello", audio=audio, sample_rate=16_000)


class Spy:
    """Wraps the denoiser to record what each sampler step was given."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, x, timestep, context, y):
        self.calls.append((x.clone(), timestep.clone(), context.clone()))
        return self.model(x, timestep, context, y)


def test_three_chunks_stream_with_motion_handed_over_and_audio_windows_from_the_8s_buffer(engine):
    talking = engine.start(a_face())
    pipeline = engine.engine.pipeline
    spy = Spy(pipeline.denoiser)
    pipeline.denoiser = spy
    try:
        layout = pipeline.layout
        assert (layout.motion_frames, layout.new_frames) == (9, 24)
        utterance = speech(3 * layout.new_samples)
        first_motion = talking.state.motion.clone()
        assert torch.equal(first_motion, talking.state.reference_latents[:, :, :1])
        motions, chunks = [], []
        for frames in talking.push(utterance):
            chunks.append(frames)
            buffer = talking.state.audio.samples.copy()
            expected = frame_windows(pipeline.audio.encode(buffer[None], frames=200), 167, 200)
            motions.append((talking.state.motion.clone(), expected))
    finally:
        pipeline.denoiser = spy.model

    assert [c.shape for c in chunks] == [(24, SIZE, SIZE, 3)] * 3
    assert all(c.dtype == np.uint8 for c in chunks)
    assert all(c.min() >= 0 and c.max() <= 255 and c.std() > 0 for c in chunks)
    assert len(spy.calls) == 12
    assert [round(float(t[0])) for _, t, _ in spy.calls[:4]] == [1000, 938, 833, 625]
    # The buffer ends with exactly the audio pushed so far (silence before it for the first chunks).
    assert np.array_equal(talking.state.audio.samples[-utterance.audio.size :], utterance.audio)
    # A chunk's frames come out after its motion re-encode was started, so at each yield the state
    # already holds the motion that the next chunk is pinned to.
    for chunk in range(3):
        pinned_before = first_motion if chunk == 0 else motions[chunk - 1][0]
        for step in range(4):
            x = spy.calls[4 * chunk + step][0]
            assert torch.equal(x[:, :, : pinned_before.shape[2]], pinned_before)
        torch.testing.assert_close(spy.calls[4 * chunk][2], motions[chunk][1])
        # After each chunk the motion is two fresh latent frames (9 video frames re-encoded).
        assert motions[chunk][0].shape == (1, 8, 2, 2, 2)
        assert not torch.equal(motions[chunk][0], pinned_before[:, :, : motions[chunk][0].shape[2]])


def test_a_run_yields_one_frame_per_640_samples_whatever_the_sentence_lengths(engine):
    talking = engine.start(a_face())
    pushed = [10_000, 20_001, 5_000]
    counts = [sum(len(f) for f in talking.push(speech(n, seed=n))) for n in pushed]
    assert counts == [0, 24, 24]
    tail = list(talking.finish())
    assert sum(len(f) for f in tail) == math.ceil(sum(pushed) / 640) - 48
    assert list(talking.finish()) == []


def test_warming_up_renders_a_chunk_and_leaves_sessions_unaffected(engine):
    pipeline = engine.engine.pipeline
    state = pipeline.start(pipeline.grey_crop(), 0)
    frames = pipeline.render([state], [pipeline.layout.silence()])
    assert frames[0].shape == (24, SIZE, SIZE, 3) and frames[0].dtype == np.uint8
    assert state.motion.shape[2] == 2
    engine.placement.call(engine.engine.warm_up, (1,))
    talking = engine.start(a_face())
    assert sum(len(f) for f in talking.push(speech(24 * 640))) == 24


def test_a_run_drawn_in_a_forked_gpu_worker_as_on_zerogpu_matches_one_drawn_here(engine):
    engine.start(a_face())  # the engine's GPU thread exists before the fork, as in the app
    utterances = [speech(20_000, seed=1), speech(9_000, seed=2)]
    here = np.concatenate(list(draw_frames(engine, a_face(), utterances)))
    there = np.concatenate(draw_in_forked_worker(handle_of(engine), a_face(), utterances))
    assert there.shape == here.shape == (46, SIZE, SIZE, 3)
    assert np.abs(there.astype(int) - here.astype(int)).max() <= 1


def test_an_exact_number_of_chunks_leaves_nothing_for_finish(engine):
    talking = engine.start(a_face())
    assert sum(len(f) for f in talking.push(speech(24 * 640))) == 24
    assert list(talking.finish()) == []


def test_a_hub_id_without_network_or_cache_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    settings = FlashHeadSettings(weights="Soul-AILab/SoulX-FlashHead-1_3B")
    with pytest.raises(EngineUnavailable, match="could not be downloaded") as error:
        FlashHeadEngine.from_settings(settings, torch.device("cpu"))
    assert "AVATAR_FLASHHEAD_WEIGHTS" in str(error.value)


def test_a_missing_weights_folder_is_refused_with_a_clear_message(tmp_path):
    settings = FlashHeadSettings(weights=str(tmp_path / "nowhere"))
    with pytest.raises(EngineUnavailable, match="does not exist. Check AVATAR_FLASHHEAD_WEIGHTS"):
        FlashHeadEngine.from_settings(settings, torch.device("cpu"))


def test_an_incomplete_weights_folder_is_refused_with_a_clear_message(tmp_path):
    (tmp_path / "Model_Lite").mkdir()
    settings = FlashHeadSettings(weights=str(tmp_path))
    with pytest.raises(EngineUnavailable, match="missing Model_Lite/config.json, VAE_LTX"):
        FlashHeadEngine.from_settings(settings, torch.device("cpu"))


def test_an_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(EngineUnavailable, match="'lite' or 'pro'"):
        FlashHeadEngine.from_settings(FlashHeadSettings(variant="max"), torch.device("cpu"))


def test_without_a_gpu_flashhead_is_unavailable_with_the_reason():
    with pytest.raises(EngineUnavailable, match="FlashHead Lite .* needs an NVIDIA GPU"):
        choose_device("auto", LITE.label, LITE.needs_cuda, cuda_available=False)
    with pytest.raises(EngineUnavailable, match="no CUDA GPU is available"):
        choose_device("cuda", LITE.label, LITE.needs_cuda, cuda_available=False)


def test_a_checkpoint_with_a_missing_or_extra_tensor_is_refused(tmp_path):
    write_lite(tmp_path)
    folder = tmp_path / "Model_Lite"
    weights = load_file(folder / "diffusion_pytorch_model.safetensors")
    weights.pop("blocks.0.ffn.0.bias")
    weights["blocks.0.extra"] = torch.zeros(1)
    save_file(weights, folder / "diffusion_pytorch_model.safetensors")
    with pytest.raises(EngineUnavailable, match=r"missing \['blocks.0.ffn.0.bias'\], unexpected \['blocks.0.extra'\]"):
        load_strict(WanModelAudioProject, folder)


def test_sessions_on_many_threads_render_one_at_a_time_on_the_engine_thread(engine):
    pipeline = engine.engine.pipeline
    render = pipeline.render
    seen, busy, overlaps = set(), [0], []
    guard = threading.Lock()

    def watched(states, chunks):
        with guard:
            busy[0] += 1
            overlaps.append(busy[0])
            seen.add(threading.current_thread().name)
        try:
            return render(states, chunks)
        finally:
            with guard:
                busy[0] -= 1

    def speak(seed: int) -> int:
        talking = engine.start(a_face())
        return sum(len(f) for f in talking.push(speech(2 * 24 * 640, seed=seed)))

    pipeline.render = watched
    try:
        with ThreadPoolExecutor(max_workers=3) as visitors:
            counts = list(visitors.map(speak, range(3)))
    finally:
        del pipeline.render
    assert counts == [48, 48, 48]
    assert len(overlaps) == 6 and max(overlaps) == 1
    assert len(seen) == 1 and next(iter(seen)).startswith("flashhead-gpu")


def test_sessions_drawn_together_share_each_forward_and_match_sessions_drawn_alone(engine):
    pipeline = engine.engine.pipeline
    chunkers = [SpeechChunker(engine.chunk_frames) for _ in range(2)]
    short, long = speech(24 * 640 + 100, seed=1), speech(2 * 24 * 640 + 700, seed=2)
    pairs = zip(chunkers, (short, long), strict=True)
    chunks = [chunker.push(utterance) + chunker.finish() for chunker, utterance in pairs]
    assert [[c.frames for c in session] for session in chunks] == [[24, 1], [24, 24, 2]]
    spy = Spy(pipeline.denoiser)
    pipeline.denoiser = spy
    try:
        states = [engine.open(a_face()) for _ in range(2)]
        together = [[], []]
        for step in range(3):
            active = [i for i in range(2) if step < len(chunks[i])]
            for frames in engine.engine.draw([states[i] for i in active], [chunks[i][step] for i in active]):
                for i, out in zip(active, frames, strict=True):
                    together[i].append(out)
    finally:
        pipeline.denoiser = spy.model
    assert [x.shape[0] for x, _, _ in spy.calls] == [2] * 8 + [1] * 4
    single = engine.start(a_face())
    alone = np.concatenate([*single.push(long), *single.finish()])
    assert alone.shape == (math.ceil(long.audio.size / 640), SIZE, SIZE, 3)
    assert np.abs(alone.astype(int) - np.concatenate(together[1]).astype(int)).max() <= 1
    assert sum(len(f) for f in together[0]) == math.ceil(short.audio.size / 640)
