"""FlashHead sessions batched on the engine's GPU thread draw the same frames as alone, however they join and leave."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest
import torch

from avatar.engines.base import SpeechChunk, SpeechChunker
from avatar.engines.flashhead import settings as flashhead_settings
from avatar.engines.flashhead.engine import LARGEST_STEP, FlashHeadEngine, batched
from avatar.engines.flashhead.settings import FlashHeadSettings, default_sessions
from avatar.engines.flashhead.spec import LITE
from avatar.engines.loaded import LoadedEngine
from avatar.engines.scheduler import Batching
from avatar.speech.utterance import Utterance
from bench.flashhead_speed import bench_face
from tests.flashhead.tiny_checkpoint import write_lite, write_wav2vec2

SIZE = 64
STEP = 24 * 640  # a Lite chunk's samples


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> LoadedEngine:
    root = tmp_path_factory.mktemp("weights")
    write_lite(root / "flashhead")
    write_wav2vec2(root / "wav2vec2")
    settings = FlashHeadSettings(
        weights=str(root / "flashhead"), wav2vec2_weights=str(root / "wav2vec2"), size=SIZE, sessions=4
    )
    return LITE.load("cpu", settings)


def speech(samples: int, seed: int) -> Utterance:
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)
    return Utterance(text="hello", audio=audio, sample_rate=16_000)


# Four visitors: their faces, and their speech as the engine's chunks.
LONG = speech(3 * STEP, seed=1)  # three whole chunks
SHORT = speech(STEP + 3_000, seed=2)  # a chunk and 5 frames more
FACES = {"long": 1, "short": 2, "stopping": 3, "failing": 4}


def chunks_of(utterance: Utterance) -> list[SpeechChunk]:
    chunker = SpeechChunker(24)
    return chunker.push(utterance) + chunker.finish()


CHUNKS = {
    "long": chunks_of(LONG),
    "short": chunks_of(SHORT),
    "stopping": chunks_of(speech(3 * STEP, seed=3)),
    "failing": chunks_of(speech(STEP, seed=4)),
}


def face(name: str):
    return bench_face(SIZE, seed=FACES[name])


def drawn_alone(engine: LoadedEngine, name: str, chunks: int) -> np.ndarray:
    state = engine.open(face(name))
    return np.concatenate([frames for chunk in CHUNKS[name][:chunks] for frames in engine.step(state, chunk)])


@pytest.fixture(scope="module")
def alone(engine) -> dict[str, np.ndarray]:
    """Each visitor's frames when it has the engine to itself."""
    return {name: drawn_alone(engine, name, len(CHUNKS[name])) for name in ("long", "short", "stopping")} | {
        "failing": drawn_alone(engine, "failing", 1)
    }


@contextmanager
def renders_seen(engine: LoadedEngine) -> Iterator[list[list[int]]]:
    """The motion length (1: a first chunk, 2: a later one) of every session of every forward pass."""
    pipeline = engine.engine.pipeline
    render, seen = pipeline.render, []

    def watched(states, audio):
        seen.append([state.motion.shape[2] for state in states])
        return render(states, audio)

    pipeline.render = watched
    try:
        yield seen
    finally:
        del pipeline.render


def first_chunks_together(engine: LoadedEngine, visitors: dict[str, Callable[[], list]], together: int) -> dict:
    """Run each visitor in a thread of its own, the GPU thread held until `together` first chunks are waiting."""
    release = threading.Event()
    scheduler = engine.placement
    with ThreadPoolExecutor(max_workers=len(visitors) + 1) as pool:
        held = pool.submit(scheduler.call, release.wait)
        futures = {name: pool.submit(visit) for name, visit in visitors.items()}
        while scheduler.waiting() < together:
            assert not any(f.done() and f.exception() for f in futures.values()), "a visitor failed early"
            threading.Event().wait(0.001)
        release.set()
        held.result()
        return {name: future.result(timeout=300) for name, future in futures.items()}


def same_frames(batched: list[np.ndarray], alone: np.ndarray) -> bool:
    """The frames a session drew batched are those it drew alone (up to where it stopped), within rounding."""
    batched = np.concatenate(batched)
    alone = alone[: len(batched)]
    return batched.shape == alone.shape and np.abs(batched.astype(int) - alone.astype(int)).max() <= 1


def test_sessions_joining_and_leaving_a_running_batch_draw_the_same_frames_as_alone(engine, alone):
    long, short = engine.start(face("long")), engine.start(face("short"))  # the app's way: sentences in
    stopping, failing = engine.open(face("stopping")), engine.open(face("failing"))  # a server's: open, step
    long_drawing = threading.Event()

    def speak_long() -> list:
        frames = []
        for piece in long.push(LONG):
            frames.append(piece)
            long_drawing.set()
        return frames + list(long.finish())

    def speak_short_once_long_is_drawing() -> list:
        long_drawing.wait()
        return [*short.push(SHORT), *short.finish()]

    def stop_after_two_chunks() -> list:
        frames = list(engine.step(stopping, CHUNKS["stopping"][0]))
        steps = engine.step(stopping, CHUNKS["stopping"][1])
        frames.append(next(steps))
        steps.close()  # the visitor pressed Stop with these frames in hand
        return frames

    def fail_at_the_second_chunk() -> list:
        frames = list(engine.step(failing, CHUNKS["failing"][0]))
        broken = SpeechChunk(np.zeros(1_000, np.float32), 1)
        with pytest.raises(ValueError, match="draws 15360 samples a step, not 1000"):
            list(engine.step(failing, broken))
        return frames

    visitors = {
        "long": speak_long,
        "short": speak_short_once_long_is_drawing,
        "stopping": stop_after_two_chunks,
        "failing": fail_at_the_second_chunk,
    }
    with renders_seen(engine) as renders:
        drawn = first_chunks_together(engine, visitors, together=3)

    assert renders[0] == [1, 1, 1]  # the three first chunks shared one forward pass
    assert sum(map(len, renders)) == 3 + 2 + 2 + 1  # the stopped and the failed sessions drew no more
    counts = {name: sum(map(len, frames)) for name, frames in drawn.items()}
    assert counts == {"long": 3 * 24, "short": math.ceil(SHORT.audio.size / 640), "stopping": 2 * 24, "failing": 24}
    for name in ("long", "short", "stopping", "failing"):
        assert same_frames(drawn[name], alone[name]), name


def test_a_first_chunk_shares_a_forward_with_later_chunks_and_each_draws_the_same_as_alone(engine, alone):
    states = {name: engine.open(face(name)) for name in ("long", "stopping")}
    earlier = {name: list(engine.step(state, CHUNKS[name][0])) for name, state in states.items()}
    states["short"] = engine.open(face("short"))

    def next_chunk(name: str) -> Callable[[], list]:
        chunk = CHUNKS[name][1 if name in earlier else 0]
        return lambda: earlier.get(name, []) + list(engine.step(states[name], chunk))

    with renders_seen(engine) as renders:
        drawn = first_chunks_together(engine, {name: next_chunk(name) for name in states}, together=3)
    assert sorted(renders[0]) == [1, 2, 2]  # one forward: the newcomer's first chunk and two later ones
    for name in states:
        assert same_frames(drawn[name], alone[name]), name


def test_sessions_padded_up_to_a_warmed_batch_size_draw_the_same_frames_and_the_pads_are_dropped(engine, alone):
    padded = LITE.loaded(batched(FlashHeadEngine(engine.engine.pipeline, "lite"), sessions=4))
    padded.engine.batch_sizes = (1, 2, 4)
    padded.placement.batching = Batching(largest=4, gather=5.0)
    states = {name: padded.open(face(name)) for name in ("long", "short", "stopping")}

    def two_chunks(name: str) -> Callable[[], list]:
        return lambda: [frames for chunk in CHUNKS[name][:2] for frames in padded.step(states[name], chunk)]

    with renders_seen(padded) as renders:
        drawn = first_chunks_together(padded, {name: two_chunks(name) for name in states}, together=3)
    assert renders == [[1, 1, 1, 1], [2, 2, 2, 2]]
    assert {name: sum(map(len, frames)) for name, frames in drawn.items()} == {"long": 48, "short": 29, "stopping": 48}
    for name in states:
        assert same_frames(drawn[name], alone[name]), name


def test_warming_up_draws_a_first_and_two_later_chunks_at_every_size_it_is_given(engine):
    warm = LITE.loaded(batched(FlashHeadEngine(engine.engine.pipeline, "lite"), sessions=2))
    with renders_seen(warm) as renders:
        seconds = warm.placement.call(warm.engine.warm_up, (1, 2))
    assert renders == [[1], [2], [2], [1, 1], [2, 2], [2, 2]] and set(seconds) == {1, 2}


def test_sixteen_sessions_take_turns_in_steps_of_at_most_eight(engine):
    serving = batched(FlashHeadEngine(engine.engine.pipeline, "lite"), sessions=16)
    assert LARGEST_STEP == 8 and serving.batching.largest == 8
@pytest.mark.parametrize(("gib", "sessions"), [(141, 16), (80, 16), (48, 8), (24, 2)])
def test_by_default_a_larger_gpu_serves_more_sessions_at_once(monkeypatch, gib, sessions):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _: type("GPU", (), {"total_memory": gib * 2**30}))
    assert default_sessions() == sessions
    monkeypatch.setattr(flashhead_settings.zerogpu, "ACTIVE", True)
    assert default_sessions() == 1  # ZeroGPU books a GPU for each run: no batching across visitors


def test_the_batching_setting_is_any_size_by_default_and_an_unknown_one_names_the_variable(monkeypatch):
    assert FlashHeadSettings.from_env("lite").batching == "any"
    monkeypatch.setenv("AVATAR_FLASHHEAD_BATCHING", "Padded")
    assert FlashHeadSettings.from_env("lite").batching == "padded"
    monkeypatch.setenv("AVATAR_FLASHHEAD_BATCHING", "buckets")
    with pytest.raises(ValueError, match="AVATAR_FLASHHEAD_BATCHING must be one of any, padded"):
        FlashHeadSettings.from_env("lite")
