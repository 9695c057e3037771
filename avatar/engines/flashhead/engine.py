"""FlashHead as an app engine: loads once, then draws 25 fps frames of faces speaking, a chunk at a time.

Lite draws 24 new frames a chunk, Pro 28. Faces talking at once share each forward pass: the engine is
placed behind a `BatchScheduler` (`load_batched`), which batches their chunks on one GPU thread and makes
every call of the engine there. A first chunk and later ones share a forward too. Compiled, each batch
size is its own CUDA graph, so every size a step may have is warmed at load (one compile serves them
all), or, padded, a few sizes are and every forward runs at one of them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from avatar.engines.base import Engine, EngineUnavailable, FaceCrop, SpeechChunk
from avatar.engines.flashhead.audio_features import AudioFeatures
from avatar.engines.flashhead.fp8 import fp8_supported
from avatar.engines.flashhead.pipeline import FlashHeadPipeline, FlashHeadState
from avatar.engines.flashhead.settings import FlashHeadSettings
from avatar.engines.flashhead.transformer import WanModelAudioProject
from avatar.engines.flashhead.vae import LtxCodec, WanCodec
from avatar.engines.flashhead.weights import load_strict, resolve_flashhead, resolve_wav2vec2, variant_files
from avatar.engines.scheduler import Batching, BatchScheduler
from avatar.engines.spec import Progress

# Most sessions in one forward pass. Beyond 8 a step gains little (421 -> 434 useful frames/s at 16 on an
# H100, bench/RESULTS.md) but takes twice as long (456 -> 885 ms), and a visitor who arrives waits for the
# step in flight before their first chunk starts; more sessions than this take turns, most urgent first.
LARGEST_STEP = 8
# Seed of the grey faces that pad a batch up to a warmed size (their frames are dropped).
PAD_SEED = 1_000_003


def compute_dtype(device: torch.device) -> torch.dtype:
    """The dtype FlashHead computes in on `device`: bfloat16 on a GPU that has it, float16 on one that does
    not (T4, V100), float32 on the CPU.

    float16 is checked only on the tiny test checkpoint (tests/flashhead/test_dtype.py); on the real weights
    it is unmeasured, and its narrower range risks overflow in attention and norms where bfloat16 has none.
    """
    if device.type != "cuda":
        return torch.float32
    # Emulated bfloat16 does not count: a T4 can hold the tensors but has no bfloat16 tensor cores.
    with torch.cuda.device(-1 if device.index is None else device.index):  # -1: the current device
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16


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
    """SoulX-FlashHead (Lite or Pro) behind the app's engine interface.

    Call it from one thread (its `BatchScheduler`'s): compiled, its CUDA graphs belong to the thread that
    recorded them.
    """

    def __init__(self, pipeline: FlashHeadPipeline, variant: str, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
        self.device = pipeline.device
        self.chunk_frames = pipeline.layout.new_frames
        self.gpu_seconds_per_speech_second = GPU_SECONDS_PER_SPEECH_SECOND[variant]
        # The batch sizes forwards run at, once compiled (each a graph of its own); None: any size.
        self.batch_sizes: tuple[int, ...] | None = None
        self.cuda_graphs = False
        self._pads: list[FlashHeadState] = []

    @classmethod
    def from_settings(
        cls, settings: FlashHeadSettings, device: torch.device, progress: Progress | None = None
    ) -> FlashHeadEngine:
        """Resolve the weights (local folder or hub id) and load them onto `device`, not yet optimised.

        Raises EngineUnavailable when the weights are missing and cannot be downloaded, or cannot be read.
        """
        variant_files(settings.variant)
        model_dir, vae_path = resolve_flashhead(settings.weights, settings.variant, progress)
        wav2vec2_dir = resolve_wav2vec2(settings.wav2vec2_weights, progress)
        if progress is not None:
            progress(1.0, "Loading FlashHead")
        pipeline = load_pipeline(model_dir, vae_path, wav2vec2_dir, device, compute_dtype(device), settings.size)
        return cls(pipeline, settings.variant)

    def optimise(
        self, compiled: bool, largest: int, sizes: tuple[int, ...] | None = None, fp8: bool = False
    ) -> tuple[int, ...]:
        """Fuse and compile (with CUDA graphs on a GPU) for steps of up to `largest` faces; the batch sizes to warm
        up (`warm_up`, on the thread that will draw), so that compilation happens at load.

        Without `sizes`, one compile serves every batch size from 2 up and each size from 1 to `largest` is to be
        warmed (a step takes every waiting face, up to the largest). With `sizes` (1 among them), each is compiled
        on its own and a step is padded up to the next of them. Uncompiled, a forward may have any size and
        nothing is to be warmed. `fp8` runs the transformer's block products in float8 (fp8.py).
        """
        self.cuda_graphs = compiled and self.pipeline.device.type == "cuda"
        self.pipeline.optimise(compiled, cuda_graphs=self.cuda_graphs, any_batch=sizes is None, fp8=fp8)
        if not compiled:
            return ()
        if sizes is None:
            # 1 and the largest compile (in that order); the sizes between only record their CUDA graphs.
            return (1, largest, *range(2, largest)) if largest > 1 else (1,)
        self.batch_sizes = sizes
        return sizes

    def warm_up(self, sizes: tuple[int, ...], progress: Progress | None = None) -> dict[int, float]:
        """Draw three silent chunks (a first one, then later ones) at each of `sizes`, so that compiling and
        recording CUDA graphs happen now rather than in a visitor's run; the seconds each size took."""
        seconds = {}
        for done, size in enumerate(sizes):
            if progress is not None:
                progress(done / len(sizes), f"Compiling FlashHead for {size} session(s) at once")
            start = time.perf_counter()
            states = [self.pipeline.start(self.pipeline.grey_crop(), self.seed) for _ in range(size)]
            silence = [self.pipeline.layout.silence()] * size
            for _ in range(3):
                self._render(states, silence)
            seconds[size] = time.perf_counter() - start
        return seconds

    def open(self, face: FaceCrop) -> FlashHeadState:
        """Encode the face once."""
        return self.pipeline.start(face.pixels, self.seed)

    def check(self, state: object, chunk: SpeechChunk) -> None:
        if not isinstance(state, FlashHeadState):
            raise TypeError(f"FlashHead cannot draw a face it did not open ({type(state).__name__})")
        if len(chunk.audio) != self.pipeline.layout.new_samples:
            samples = self.pipeline.layout.new_samples
            raise ValueError(f"FlashHead draws {samples} samples a step, not {len(chunk.audio)}")

    def draw(self, states: list[FlashHeadState], chunks: list[SpeechChunk]) -> Iterator[list[np.ndarray]]:
        """One chunk for every face, all in one forward pass; each face's frames trimmed to what it owes."""
        frames = self._render(states, [chunk.audio for chunk in chunks])
        yield [out[: chunk.frames] for out, chunk in zip(frames, chunks, strict=True)]

    def _render(self, states: list[FlashHeadState], audio: list[np.ndarray]) -> list[np.ndarray]:
        """`pipeline.render` in one forward, padded up to the next warmed batch size where there are some.

        The pads are grey faces of the engine's own, given silence, so the faces' states and random draws
        are the same as without them; their frames are dropped. A batch larger than every warmed size runs as
        it is.
        """
        size = min((s for s in self.batch_sizes or () if s >= len(states)), default=len(states))
        pads = self._pad_states(size - len(states))
        silence = [self.pipeline.layout.silence()] * len(pads)
        if self.cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # nothing from the last step is read again
        return self.pipeline.render(states + pads, audio + silence)[: len(states)]

    def _pad_states(self, count: int) -> list[FlashHeadState]:
        """`count` throwaway faces, grey, made on first need and reused."""
        while len(self._pads) < count:
            self._pads.append(self.pipeline.start(self.pipeline.grey_crop(), PAD_SEED + len(self._pads)))
        return self._pads[:count]


def batched(
    engine: FlashHeadEngine, sessions: int, largest_step: int = LARGEST_STEP
) -> BatchScheduler[FlashHeadEngine]:
    """The engine behind its batching scheduler: `sessions` faces at once, at most `largest_step` in one forward."""
    return BatchScheduler(engine, "flashhead-gpu", Batching(largest=min(sessions, largest_step)))


def optimise_behind(
    scheduler: BatchScheduler[FlashHeadEngine],
    compiled: bool,
    sizes: tuple[int, ...] | None = None,
    fp8: bool = False,
    progress: Progress | None = None,
) -> dict[int, float]:
    """Optimise the scheduler's engine for its steps (`FlashHeadEngine.optimise`; `sizes` pads steps up to those
    sizes) and warm every batch size a step may have up on the scheduler's device thread; the seconds each took."""
    warm = scheduler.engine.optimise(compiled, scheduler.batching.largest, sizes, fp8)
    return scheduler.call(scheduler.engine.warm_up, warm, progress) if warm else {}


def load_batched(
    settings: FlashHeadSettings,
    device: torch.device,
    progress: Progress | None = None,
    compile_models: bool | None = None,
) -> BatchScheduler[FlashHeadEngine]:
    """FlashHead as `settings` ask, on `device`, behind its batching scheduler; compiled on a GPU unless told."""
    scheduler = batched(FlashHeadEngine.from_settings(settings, device, progress), settings.sessions)
    compiled = device.type == "cuda" if compile_models is None else compile_models
    largest = scheduler.batching.largest
    padded = settings.batching == "padded"
    sizes = tuple(sorted({min(size, largest) for size in settings.warm_sizes})) if padded else None
    fp8 = compiled and settings.wants_fp8(fp8_supported(device))
    optimise_behind(scheduler, compiled, sizes, fp8, progress)
    return scheduler
