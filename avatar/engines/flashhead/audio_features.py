"""Speech -> the wav2vec2 features FlashHead was trained on: 12 layer outputs per 25 fps video frame.

The CNN encoder runs at 50 frames/s; its output is resampled to the video frame count *before* the
transformer layers (as the published model does), and every frame takes a 5-frame window of
neighbours. Streaming keeps a rolling 8 s buffer so each chunk sees the same left context.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

from avatar.config import ENGINE_SAMPLE_RATE, FPS, SAMPLES_PER_FRAME
from avatar.engines.flashhead.compiled import compiled

WINDOW_RADIUS = 2
BUFFER_SECONDS = 8


class AudioFeatures:
    """Turns 16 kHz waveforms into (frames, 12, 768) features with a frozen wav2vec2 model."""

    def __init__(
        self, model: Wav2Vec2Model, extractor: Wav2Vec2FeatureExtractor, device: torch.device | str = "cpu"
    ) -> None:
        if model.config.do_stable_layer_norm:
            raise ValueError(
                "FlashHead was trained on wav2vec2-base features; this wav2vec2 model normalises its layers the "
                "other way (do_stable_layer_norm), so its features would not fit"
            )
        self.model = model.eval().requires_grad_(False).to(device)
        self.extractor = extractor
        self.device = torch.device(device)

    @classmethod
    def from_folder(cls, folder: str, device: torch.device | str = "cpu") -> AudioFeatures:
        """Load a local wav2vec2 folder (config.json, weights, preprocessor_config.json), never the network."""
        model = Wav2Vec2Model.from_pretrained(folder, local_files_only=True)
        extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder, local_files_only=True)
        return cls(model, extractor, device)

    def normalise(self, waveforms: np.ndarray) -> torch.Tensor:
        """Zero mean, unit variance per waveform (the extractor's do_normalize), as a (B, samples) tensor."""
        batch = np.atleast_2d(np.asarray(waveforms, dtype=np.float32))
        values = self.extractor(list(batch), sampling_rate=ENGINE_SAMPLE_RATE, return_tensors="np").input_values
        return torch.from_numpy(np.asarray(values, dtype=np.float32)).to(self.device)

    def compile(self, any_batch: bool = False, mode: str | None = None) -> None:
        """Compile the features pass as one graph; with mode "reduce-overhead", one CUDA graph: wav2vec2-base over
        8 s is about 100 small kernels, so at one session it is launch-bound (6-8 ms on an H200, eager)."""
        self.features = compiled(self.features, any_batch, mode)

    @torch.no_grad()
    def encode(self, waveforms: np.ndarray, frames: int | None = None) -> torch.Tensor:
        """(B, samples) 16 kHz audio -> (B, frames, 12, 768); frames defaults to int(seconds * 25)."""
        values = self.normalise(waveforms)
        if frames is None:
            frames = int(values.shape[-1] * FPS / ENGINE_SAMPLE_RATE)
        return self.features(values, frames)

    def features(self, values: torch.Tensor, frames: int) -> torch.Tensor:
        """Normalised (B, samples) -> every encoder layer's output at `frames` frames, (B, frames, 12, 768).

        The encoder's steps before its layers are spelled out here (positional convolution, LayerNorm; dropout is
        off in eval) and each layer's output kept as it comes: transformers 5.x returns no hidden states when its
        encoder is called alone, and hooks would split a compiled pass in two. The parity test against the
        published features checks this against transformers' own encoder.
        """
        cnn = self.model.feature_extractor(values)
        cnn = F.interpolate(cnn, size=frames, mode="linear", align_corners=True).transpose(1, 2)
        hidden, _ = self.model.feature_projection(cnn)
        encoder = self.model.encoder
        hidden = encoder.layer_norm(hidden + encoder.pos_conv_embed(hidden))
        layers: list[torch.Tensor] = []
        for layer in encoder.layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out
            layers.append(hidden)
        return torch.stack(layers, dim=2)


def frame_windows(features: torch.Tensor, start: int, end: int) -> torch.Tensor:
    """(B, T, 12, 768) -> (B, end-start, 5, 12, 768): frames i-2..i+2 for i in [start, end), clamped to [0, end-1]."""
    offsets = torch.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1, device=features.device)
    centres = torch.arange(start, end, device=features.device)[:, None] + offsets[None]
    return features[:, centres.clamp(0, end - 1)]


class AudioBuffer:
    """The last 8 s of one session's audio (silence at the start), to which each chunk's audio is appended."""

    def __init__(self, seconds: int = BUFFER_SECONDS) -> None:
        self.samples = np.zeros(seconds * ENGINE_SAMPLE_RATE, dtype=np.float32)

    @property
    def frames(self) -> int:
        return len(self.samples) // SAMPLES_PER_FRAME

    def append(self, audio: np.ndarray) -> None:
        """Shift the buffer left by len(audio) samples and put `audio` at the end."""
        audio = np.asarray(audio, dtype=np.float32)[-len(self.samples) :]
        self.samples = np.concatenate([self.samples[len(audio) :], audio])
