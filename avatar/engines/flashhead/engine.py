"""FlashHead as an app engine: loads once, then streams 25 fps frames of a face speaking, chunk by chunk.

Lite renders 24 new frames a chunk, Pro 28; a chunk's worth of audio is rendered as soon as it has
arrived, and `finish` pads the last chunk with silence and trims the frames nobody asked for.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

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


class FlashHeadSession(EngineSession):
    """One face speaking: audio waits until a whole chunk is there, then that chunk's frames come out."""

    def __init__(self, pipeline: FlashHeadPipeline, state: SessionState) -> None:
        self.pipeline = pipeline
        self.state = state
        self.pending = np.zeros(0, dtype=np.float32)
        self.samples_in = 0
        self.frames_out = 0

    def _render(self, chunk: np.ndarray, keep: int) -> Iterator[np.ndarray]:
        """Render one chunk, hand its first `keep` new frames out, then carry the motion on."""
        pipeline, states = self.pipeline, [self.state]
        states[0].audio.append(chunk)
        with torch.no_grad():
            video = pipeline.decode(pipeline.denoise(states, pipeline.audio_context(states)), states)
            frames = pipeline.new_frames(video)[0][:keep]
            self.frames_out += len(frames)
            yield frames
            pipeline.carry_motion(video, states)

    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        audio = utterance.resampled(ENGINE_SAMPLE_RATE).audio.astype(np.float32)
        self.pending = np.concatenate([self.pending, audio])
        self.samples_in += len(audio)
        step = self.pipeline.layout.new_samples
        while len(self.pending) >= step:
            chunk, self.pending = self.pending[:step], self.pending[step:]
            yield from self._render(chunk, self.pipeline.layout.new_frames)

    def finish(self) -> Iterator[np.ndarray]:
        owed = math.ceil(self.samples_in / SAMPLES_PER_FRAME) - self.frames_out
        if owed <= 0:
            return
        chunk = np.zeros(self.pipeline.layout.new_samples, dtype=np.float32)
        chunk[: len(self.pending)] = self.pending
        self.pending = np.zeros(0, dtype=np.float32)
        yield from self._render(chunk, owed)


class FlashHeadEngine(Engine):
    """SoulX-FlashHead (Lite or Pro) behind the app's engine interface."""

    def __init__(self, pipeline: FlashHeadPipeline, variant: str, seed: int = 0) -> None:
        self.pipeline = pipeline
        self.seed = seed
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
        pipeline.optimise(compiled)
        engine = cls(pipeline, variant)
        if compiled:
            if progress is not None:
                progress(1.0, "Compiling FlashHead (a few minutes, once per process)")
            engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Render one silent chunk of a grey face, so compilation happens at load and not in a user's first chunk."""
        crop = np.full((self.pipeline.size, self.pipeline.size, 3), 128, dtype=np.uint8)
        state = self.pipeline.start(crop, self.seed)
        self.pipeline.render([state], [np.zeros(self.pipeline.layout.new_samples, dtype=np.float32)])

    def start(self, face: Face) -> FlashHeadSession:
        return FlashHeadSession(self.pipeline, self.pipeline.start(face.crop, self.seed))
