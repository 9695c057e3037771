"""FlashHead as an app engine: loads once, then draws 25 fps frames of faces speaking, a chunk at a time.

Lite draws 24 new frames a chunk, Pro 28; every session's chunk in a step shares one forward pass.
All pipeline calls run on one GPU thread of the engine's own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from avatar.engines.base import Engine, EngineUnavailable, FaceCrop, SpeechChunk
from avatar.engines.flashhead.audio_features import AudioFeatures
from avatar.engines.flashhead.pipeline import FlashHeadPipeline, SessionState
from avatar.engines.flashhead.spec import FlashHeadSettings
from avatar.engines.flashhead.transformer import WanModelAudioProject
from avatar.engines.flashhead.vae import LtxCodec, WanCodec
from avatar.engines.flashhead.weights import (
    Progress,
    load_strict,
    resolve_flashhead,
    resolve_wav2vec2,
    variant_files,
)

T = TypeVar("T")


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


# GPU seconds a second of speech may take in ZeroGPU's worker (uncompiled, on half an H200): Lite took
# 0.43-0.51 on a whole H100 warm, 1.1 cold (bench/zerogpu_rehearsal.py); Pro, about 0.9 there uncompiled.
GPU_SECONDS_PER_SPEECH_SECOND = {"lite": 1.0, "pro": 4.0}


class FlashHeadEngine(Engine):
    """SoulX-FlashHead (Lite or Pro) behind the app's engine interface."""

    def __init__(self, pipeline: FlashHeadPipeline, variant: str, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.key = f"flashhead-{variant}"
        self.label = f"FlashHead {variant.capitalize()}"
        self.device = pipeline.device
        self.chunk_frames = pipeline.layout.new_frames
        self.gpu_seconds_per_speech_second = GPU_SECONDS_PER_SPEECH_SECOND[variant]
        self._lock = threading.Lock()
        self._worker: ThreadPoolExecutor | None = None
        self._worker_pid = 0

    @classmethod
    def from_settings(
        cls,
        settings: FlashHeadSettings,
        device: torch.device,
        progress: Progress | None = None,
        compile_models: bool | None = None,
    ) -> FlashHeadEngine:
        """Resolve the weights (local folder or hub id), load them onto `device`, and optimise for it.

        Raises EngineUnavailable when the weights are missing and cannot be downloaded, or cannot be read.
        """
        variant_files(settings.variant)
        model_dir, vae_path = resolve_flashhead(settings.weights, settings.variant, progress)
        wav2vec2_dir = resolve_wav2vec2(settings.wav2vec2_weights, progress)
        if progress is not None:
            progress(1.0, "Loading FlashHead")
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        pipeline = load_pipeline(model_dir, vae_path, wav2vec2_dir, device, dtype, settings.size)
        compiled = device.type == "cuda" if compile_models is None else compile_models
        engine = cls(pipeline, settings.variant)
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

    def open(self, face: FaceCrop) -> SessionState:
        """Encode the face once, on the GPU thread."""
        return self.run(self.pipeline.start, face.pixels, self.seed)

    def draw(self, states: list[SessionState], chunks: list[SpeechChunk]) -> Iterator[list[np.ndarray]]:
        """One chunk for every session in one forward pass; each session's frames trimmed to what it owes."""
        frames = self.run(self.pipeline.render, states, [chunk.audio for chunk in chunks])
        yield [out[: chunk.frames] for out, chunk in zip(frames, chunks, strict=True)]
