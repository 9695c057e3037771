"""One FlashHead chunk, stage by stage, for a batch of sessions: audio -> latents -> frames -> next motion.

The stages are separate methods so the benchmark can time each stage. Every stage takes a batch:
sessions rendered together share each GPU call. On CUDA the frames travel to the host on a side
stream while the motion re-encode runs, so neither waits for the other. Every random draw of a
session goes through its `Noise`, so a run can be replayed draw for draw (tests/flashhead/test_chunk_parity.py
replays the published pipeline's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from avatar.config import SAMPLES_PER_FRAME
from avatar.engines.flashhead.audio_features import (
    AudioBuffer,
    AudioFeatures,
    frame_windows,
)
from avatar.engines.flashhead.colour import match_colours, reference_stats
from avatar.engines.flashhead.compiled import compiled
from avatar.engines.flashhead.sampler import pin_motion, sample
from avatar.engines.flashhead.transformer import WanModelAudioProject
from avatar.engines.flashhead.vae import LtxCodec, PosteriorNoise, WanCodec

CHUNK_FRAMES = 33
MOTION_LATENTS = 2


@dataclass(frozen=True)
class ChunkLayout:
    """How a 33-frame chunk splits into motion context and new frames for a VAE's temporal stride."""

    frames: int
    motion_frames: int

    @classmethod
    def for_stride(cls, temporal_stride: int, frames: int = CHUNK_FRAMES) -> ChunkLayout:
        return cls(frames=frames, motion_frames=(MOTION_LATENTS - 1) * temporal_stride + 1)

    @property
    def new_frames(self) -> int:
        return self.frames - self.motion_frames

    @property
    def new_samples(self) -> int:
        return self.new_frames * SAMPLES_PER_FRAME

    def silence(self) -> np.ndarray:
        """A chunk's worth of 16 kHz silence."""
        return np.zeros(self.new_samples, dtype=np.float32)


class HostFrames:
    """uint8 frames -> host arrays through reused pinned staging buffers, copied on a side stream on CUDA.

    A pageable copy runs at about 1.3 GB/s on the H100 host (118 ms for 8 sessions' chunk); a pinned one
    runs at PCIe speed and can overlap GPU work. One copy may be in flight at a time (the engine renders
    one chunk at a time): `start` reuses the buffer of that shape, so finish each copy before the next.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        # Made at the first copy, not at load: on ZeroGPU there is no GPU until a run books one.
        self.stream: torch.cuda.Stream | None = None
        self.staging: dict[tuple[int, ...], torch.Tensor] = {}

    def start(self, frames: torch.Tensor) -> Callable[[], np.ndarray]:
        """Begin copying `frames` (contiguous uint8 on the device); the returned call waits and gives an array."""
        if self.device.type != "cuda":
            array = frames.cpu().numpy()
            return lambda: array
        if self.stream is None:
            self.stream = torch.cuda.Stream(self.device)
        shape = tuple(frames.shape)
        if shape not in self.staging:
            self.staging[shape] = torch.empty(shape, dtype=torch.uint8, pin_memory=True)
        buffer = self.staging[shape]
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            buffer.copy_(frames, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
        frames.record_stream(self.stream)

        def finish() -> np.ndarray:
            done.synchronize()
            return buffer.numpy().copy()

        return finish


class Noise(Protocol):
    """Where every random draw of one session comes from: standard normal, of the shape asked for (one session's,
    without the batch dimension), on the pipeline's device and in its dtype.

    One method per kind of draw, so that a recorded run (the published pipeline's, in the parity test) can hand
    each back in its place: the published code draws the sampler's noise from a seeded generator but the VAE
    posterior's from torch's global one, so only recorded draws reproduce it.
    """

    def initial(self, shape: torch.Size) -> torch.Tensor:
        """A chunk's starting latents (their motion frames are then overwritten)."""

    def renoise(self, shape: torch.Size) -> torch.Tensor:
        """The fresh noise mixed into x0 after a sampler step that has a later time."""

    def posterior(self, shape: torch.Size) -> torch.Tensor:
        """The VAE posterior sample's draw: of the reference encode, then of each chunk's motion re-encode."""


class SeededNoise:
    """The default `Noise`: every draw, in the order the pipeline asks, from one generator seeded per session."""

    def __init__(self, seed: int, device: torch.device, dtype: torch.dtype) -> None:
        self.generator = torch.Generator(device).manual_seed(seed)
        self.dtype = dtype

    def _draw(self, shape: torch.Size) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.generator.device, dtype=self.dtype)

    def initial(self, shape: torch.Size) -> torch.Tensor:
        return self._draw(shape)

    def renoise(self, shape: torch.Size) -> torch.Tensor:
        return self._draw(shape)

    def posterior(self, shape: torch.Size) -> torch.Tensor:
        return self._draw(shape)


def _posterior_noise(sources: list[Noise]) -> PosteriorNoise:
    """The VAE's posterior draw for a batch of sessions: each session's from its own `Noise`."""
    return lambda shape: torch.stack([source.posterior(shape[1:]) for source in sources])


@dataclass
class FlashHeadState:
    """One face's drawing state: what it carries from chunk to chunk."""

    reference_latents: torch.Tensor
    colour_stats: tuple[torch.Tensor, torch.Tensor]
    motion: torch.Tensor
    noise: Noise
    audio: AudioBuffer = field(default_factory=AudioBuffer)


class FlashHeadPipeline:
    """The loaded models on one device and the stages of a chunk."""

    def __init__(
        self,
        transformer: WanModelAudioProject,
        codec: LtxCodec | WanCodec,
        audio: AudioFeatures,
        device: torch.device,
        dtype: torch.dtype,
        size: int = 512,
    ) -> None:
        self.transformer = transformer.eval().requires_grad_(False)
        self.denoiser = self.transformer
        self.codec = codec
        self.audio = audio
        self.device = device
        self.dtype = dtype
        self.size = size
        self.layout = ChunkLayout.for_stride(transformer.config.vae_stride[0])
        self.colour_match = match_colours
        self.host = HostFrames(device)

    def optimise(
        self, compile_models: bool, cuda_graphs: bool = False, any_batch: bool = False, fp8: bool = False
    ) -> None:
        """Fuse q/k/v; optionally FP8 products, and compile the transformer, wav2vec2, the VAE and the colour match.

        `cuda_graphs` replays each transformer step and the audio features as CUDA graphs (mode "reduce-overhead"):
        at one session both are launch-bound (a step 32.5 -> 9.6 ms on an H100). Their graphs belong to the calling
        thread, so call the pipeline from one thread only (the engine's GPU thread). `any_batch` compiles once for
        every batch size from 2 up rather than once per size (see `compiled`). `fp8` runs the transformer's block
        products in float8 (see fp8.py): a numeric change, worth it only compiled. Compiled on CUDA, cuDNN picks
        its convolution algorithms by timing them (once per shape, at warm-up): the VAE is mostly 3D convolutions.
        """
        self.transformer.fuse_qkv()
        if fp8:
            self.transformer.use_fp8()
        if compile_models:
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = True
            mode = "reduce-overhead" if cuda_graphs else None
            self.denoiser = compiled(self.transformer, any_batch, mode)
            self.audio.compile(any_batch, mode)
            self.codec.compile(any_batch)
            self.colour_match = compiled(match_colours, any_batch)

    def grey_crop(self) -> np.ndarray:
        """A plain grey face: for warm-ups, batch padding and captured shapes, where the picture does not matter."""
        return np.full((self.size, self.size, 3), 128, dtype=np.uint8)

    def reference_pixels(self, crop: np.ndarray) -> torch.Tensor:
        """An RGB uint8 crop -> (1, 3, 1, size, size) in [-1, 1] on the device."""
        image = torch.from_numpy(np.ascontiguousarray(crop)).to(self.device).permute(2, 0, 1)[None].float()
        if image.shape[-1] != self.size or image.shape[-2] != self.size:
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", antialias=True)
        return (image / 127.5 - 1).clamp(-1, 1)[:, :, None]

    @torch.no_grad()
    def start(self, crop: np.ndarray, seed: int, noise: Noise | None = None) -> FlashHeadState:
        """Encode the face once (repeated to a whole chunk, as the model was trained) and seed the motion.

        Every random draw of the session comes from `noise`; by default from a generator seeded with `seed`.
        """
        noise = SeededNoise(seed, self.device, self.dtype) if noise is None else noise
        pixels = self.reference_pixels(crop)
        video = pixels.expand(-1, -1, self.layout.frames, -1, -1).to(self.dtype)
        latents = self.codec.encode(video, _posterior_noise([noise])).to(self.dtype)
        return FlashHeadState(
            reference_latents=latents,
            colour_stats=reference_stats(pixels),
            motion=latents[:, :, :1].clone(),
            noise=noise,
        )

    @torch.no_grad()
    def audio_context(self, states: list[FlashHeadState]) -> torch.Tensor:
        """Features over each session's whole 8 s buffer; the windows of its last 33 frames."""
        waveforms = np.stack([state.audio.samples for state in states])
        total = states[0].audio.frames
        features = self.audio.encode(waveforms, frames=total)
        return frame_windows(features, total - self.layout.frames, total).to(self.dtype)

    @torch.no_grad()
    def denoise(self, states: list[FlashHeadState], context: torch.Tensor) -> torch.Tensor:
        """4 sampler steps for the sessions, first and later chunks alike; returns (B, C, F, h, w) latents."""
        reference = torch.cat([state.reference_latents for state in states])
        shape = reference.shape[1:]
        motion, pinned = pin_motion([state.motion for state in states], shape[1])
        initial = torch.stack([state.noise.initial(shape) for state in states])

        def renoise() -> torch.Tensor:
            return torch.stack([state.noise.renoise(shape) for state in states])

        return sample(self.denoiser, initial, motion, pinned, reference, context, renoise)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, states: list[FlashHeadState]) -> torch.Tensor:
        """Latents -> colour-matched video (B, 3, 33, H, W) in [-1, 1]: the colour match clamps, the decode does not."""
        video = self.codec.decode(latents)
        mean = torch.cat([state.colour_stats[0] for state in states])
        std = torch.cat([state.colour_stats[1] for state in states])
        return self.colour_match(video, (mean, std))

    def new_frame_bytes(self, video: torch.Tensor) -> torch.Tensor:
        """The frames after the motion context as contiguous uint8 (B, n, H, W, 3), still on the device.

        Rounded to the nearest level; the published demo truncates, so frames differ from its by at most one level.
        """
        frames = video[:, :, self.layout.motion_frames :].permute(0, 2, 3, 4, 1)
        return frames.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).contiguous()

    def new_frames(self, video: torch.Tensor) -> np.ndarray:
        """The frames after the motion context as uint8 (B, n, H, W, 3) on the host."""
        return self.host.start(self.new_frame_bytes(video))()

    @torch.no_grad()
    def carry_motion(self, video: torch.Tensor, states: list[FlashHeadState]) -> None:
        """Re-encode each session's last motion-context frames: the next chunk starts from them."""
        tail = video[:, :, -self.layout.motion_frames :].to(self.dtype)
        motion = self.codec.encode(tail, _posterior_noise([state.noise for state in states]))
        for state, latents in zip(states, motion.to(self.dtype).split(1), strict=True):
            state.motion = latents

    @torch.no_grad()
    def render(self, states: list[FlashHeadState], chunks: list[np.ndarray]) -> list[np.ndarray]:
        """One chunk for each session (its `new_samples` of 16 kHz audio), in one forward; the new frames of each.

        First chunks (one motion latent) and later ones (two) share the forward. The host copy of the frames
        is started before the motion re-encode and finished after it.
        """
        for state, chunk in zip(states, chunks, strict=True):
            state.audio.append(chunk)
        video = self.decode(self.denoise(states, self.audio_context(states)), states)
        pending = self.host.start(self.new_frame_bytes(video))
        self.carry_motion(video, states)
        return list(pending())
