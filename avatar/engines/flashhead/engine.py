"""FlashHead as an app engine: loads once, then streams 25 fps frames of a face speaking, chunk by chunk.

Lite renders 24 new frames a chunk, Pro 28; a chunk's worth of audio is rendered as soon as it has
arrived, and `finish` pads the last chunk with silence and trims the frames nobody asked for.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME, Settings
from avatar.engines.base import Engine, EngineInfo, EngineSession, EngineUnavailable
from avatar.engines.flashhead.audio_features import AudioFeatures
from avatar.engines.flashhead.pipeline import FlashHeadPipeline, SessionState
from avatar.engines.flashhead.transformer import WanModelAudioProject
from avatar.engines.flashhead.vae import LtxCodec, WanCodec
from avatar.engines.flashhead.weights import (
    Progress,
    load_strict,
    resolve_flashhead,
    resolve_wav2vec2,
    variant_files,
)
from avatar.faces import Face
from avatar.speech.utterance import Utterance

T = TypeVar("T")


def choose_device(setting: str, allow_cpu: bool) -> torch.device:
    """The device from AVATAR_DEVICE ('auto', 'cuda', 'cuda:N', 'cpu'); CPU only when explicitly allowed."""
    if setting in ("auto", "") and torch.cuda.is_available():
        return torch.device("cuda")
    device = torch.device("cpu" if setting in ("auto", "") else setting)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EngineUnavailable("FlashHead was asked to run on a GPU, but no CUDA GPU is available here.")
    if device.type == "cpu" and not allow_cpu:
        raise EngineUnavailable(
            "FlashHead needs an NVIDIA GPU (CUDA); none was found, so the photo animator is used instead."
        )
    return device


def load_pipeline(
    model_dir: Path, vae_path: Path, wav2vec2_dir: Path, device: torch.device, dtype: torch.dtype, size: int = 512
) -> FlashHeadPipeline:
    """Load the three models strictly from local paths and place them on `device`."""
    try:
        transformer = load_strict(WanModelAudioProject, model_dir)
        if vae_path.is_dir():
            codec = LtxCodec.from_folder(vae_path, device, dtype)
        else:
            codec = WanCodec.from_file(vae_path, device, dtype)
        audio = AudioFeatures.from_folder(str(wav2vec2_dir), device)
    except OSError as error:
        raise EngineUnavailable(f"The FlashHead weights could not be read: {error}") from error
    return FlashHeadPipeline(transformer.to(device=device, dtype=dtype), codec, audio, device, dtype, size)


class FlashHeadBatch:
    """Several faces speaking at once: one forward pass renders every session's chunk.

    Sessions advance in step: a chunk is rendered when every session has a chunk's worth of audio.
    `finish` pads with silence and trims each session to ceil(samples / 640) frames in all, so a
    session that has finished gets empty arrays while the others catch up.
    """

    def __init__(self, engine: FlashHeadEngine, states: list[SessionState]) -> None:
        self.engine = engine
        self.states = states
        self.pending = [np.zeros(0, dtype=np.float32) for _ in states]
        self.samples_in = [0] * len(states)
        self.frames_out = [0] * len(states)

    def _render(self, chunks: list[np.ndarray], keep: list[int]) -> list[np.ndarray]:
        frames = self.engine.run(self.engine.pipeline.render, self.states, chunks)
        kept = [out[:n] for out, n in zip(frames, keep, strict=True)]
        for index, out in enumerate(kept):
            self.frames_out[index] += len(out)
        return kept

    def _take(self, index: int) -> np.ndarray:
        """The next chunk of session `index`'s audio, padded with silence."""
        step = self.engine.pipeline.layout.new_samples
        chunk = np.zeros(step, dtype=np.float32)
        head = self.pending[index][:step]
        chunk[: len(head)] = head
        self.pending[index] = self.pending[index][step:]
        return chunk

    def push(self, utterances: list[Utterance]) -> Iterator[list[np.ndarray]]:
        """Add one utterance per session (in `start_many` order); yield each rendered chunk's frames per session."""
        if len(utterances) != len(self.states):
            raise ValueError(f"{len(self.states)} sessions need {len(self.states)} utterances, not {len(utterances)}")
        for index, utterance in enumerate(utterances):
            audio = utterance.resampled(ENGINE_SAMPLE_RATE).audio.astype(np.float32)
            self.pending[index] = np.concatenate([self.pending[index], audio])
            self.samples_in[index] += len(audio)
        layout = self.engine.pipeline.layout
        while min(len(pending) for pending in self.pending) >= layout.new_samples:
            chunks = [self._take(index) for index in range(len(self.states))]
            yield self._render(chunks, [layout.new_frames] * len(self.states))

    def owed(self) -> list[int]:
        """Frames each session still owes for the audio pushed so far."""
        return [
            max(0, math.ceil(samples / SAMPLES_PER_FRAME) - out)
            for samples, out in zip(self.samples_in, self.frames_out, strict=True)
        ]

    def finish(self) -> Iterator[list[np.ndarray]]:
        """The frames still owed, chunk by chunk, until every session has all of its frames."""
        new_frames = self.engine.pipeline.layout.new_frames
        while any(self.owed()):
            keep = [min(n, new_frames) for n in self.owed()]
            chunks = [self._take(index) for index in range(len(self.states))]
            yield self._render(chunks, keep)
        self.pending = [np.zeros(0, dtype=np.float32) for _ in self.states]


class FlashHeadSession(EngineSession):
    """One face speaking: a batch of one; audio waits until a whole chunk is there, then its frames come out."""

    def __init__(self, batch: FlashHeadBatch) -> None:
        self.batch = batch

    @property
    def state(self) -> SessionState:
        return self.batch.states[0]

    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        for frames in self.batch.push([utterance]):
            yield frames[0]

    def finish(self) -> Iterator[np.ndarray]:
        for frames in self.batch.finish():
            yield frames[0]


# GPU seconds a second of speech may take in ZeroGPU's worker (uncompiled, on half an H200): Lite took
# 0.43-0.51 on a whole H100 warm, 1.1 cold (bench/zerogpu_rehearsal.py); Pro, about 0.9 there uncompiled.
GPU_SECONDS_PER_SPEECH_SECOND = {"lite": 1.0, "pro": 4.0}


class FlashHeadEngine(Engine):
    """SoulX-FlashHead (Lite or Pro) behind the app's engine interface."""

    def __init__(self, pipeline: FlashHeadPipeline, variant: str, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.uses_gpu = pipeline.device.type == "cuda"
        self.gpu_seconds_per_speech_second = GPU_SECONDS_PER_SPEECH_SECOND[variant]
        self._lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None
        self._worker_pid = 0
        self.info = EngineInfo(
            key=f"flashhead-{variant}", label=f"FlashHead {variant.capitalize()}", device=str(pipeline.device)
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        progress: Progress | None = None,
        allow_cpu: bool = False,
        compile_models: bool | None = None,
    ) -> FlashHeadEngine:
        """Resolve the weights (local folder or hub id), load them, and optimise for the device.

        Raises EngineUnavailable when there is no CUDA GPU (unless `allow_cpu`), when the weights are
        missing and cannot be downloaded, or when they cannot be read.
        """
        variant = settings.flashhead_variant
        variant_files(variant)
        device = choose_device(settings.device, allow_cpu)
        model_dir, vae_path = resolve_flashhead(settings.flashhead_weights, variant, progress)
        wav2vec2_dir = resolve_wav2vec2(settings.wav2vec2_weights, progress)
        if progress is not None:
            progress(1.0, "Loading FlashHead")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        pipeline = load_pipeline(model_dir, vae_path, wav2vec2_dir, device, dtype, settings.crop_size)
        compiled = device.type == "cuda" if compile_models is None else compile_models
        engine = cls(pipeline, variant)
        if progress is not None and compiled:
            progress(1.0, "Compiling FlashHead (a few minutes, once per process)")
        engine.optimise(compiled)
        return engine

    def optimise(self, compiled: bool) -> None:
        """Fuse, compile (with CUDA graphs on a GPU) and warm up, so compilation happens at load."""
        self.pipeline.optimise(compiled, cuda_graphs=compiled and self.pipeline.device.type == "cuda")
        if compiled:
            self.warm_up()

    def _gpu_thread(self) -> ThreadPoolExecutor:
        """The one thread that makes every pipeline call.

        Gradio serves each visitor from its own thread, while CUDA graphs (torch.compile
        "reduce-overhead") are recorded per thread and must not be replayed by two threads at once;
        one thread also keeps one chunk in flight at a time. A process forked from this one (ZeroGPU's
        GPU worker) inherits none of its threads, so it starts its own.
        """
        with self._lock:
            if self._worker_pid != os.getpid():
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flashhead-gpu")
                self._worker_pid = os.getpid()
            return self._worker

    def run(self, fn: Callable[..., T], *args: object) -> T:
        """Call `fn(*args)` on the engine's GPU thread and wait for its result (errors are re-raised here)."""
        return self._gpu_thread().submit(fn, *args).result()

    def warm_up(self) -> None:
        """Render one silent chunk of a grey face, so compilation happens now rather than in a visitor's run."""
        crop = np.full((self.pipeline.size, self.pipeline.size, 3), 128, dtype=np.uint8)
        state = self.run(self.pipeline.start, crop, self.seed)
        silence = np.zeros(self.pipeline.layout.new_samples, dtype=np.float32)
        self.run(self.pipeline.render, [state], [silence])

    def start(self, face: Face) -> FlashHeadSession:
        return FlashHeadSession(self.start_many([face]))

    def start_many(self, faces: list[Face]) -> FlashHeadBatch:
        """Prepare several faces to speak together; their chunks share every forward pass."""
        return FlashHeadBatch(self, [self.run(self.pipeline.start, face.crop, self.seed) for face in faces])
