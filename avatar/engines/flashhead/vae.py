"""Pixels <-> normalised latents for both FlashHead variants, through diffusers' own VAE classes.

Lite uses the LTX-Video VAE (folder `VAE_LTX/`, diffusers layout) with per-channel latent statistics;
Pro uses the Wan 2.1 VAE (single file `VAE_Wan/Wan2.1_VAE.pth`, original layout, converted on load).
Videos are (B, 3, T, H, W) in [-1, 1]; latents are (B, C, f, h, w), normalised as the DiT expects.
Decoding returns what the published wrapper of each VAE returns: LTX's raw decoder output (it can
overshoot [-1, 1]; the published pipeline colour-matches and re-encodes it unclamped), Wan's clamped
by diffusers itself (as the original Wan VAE does).

The Wan VAE is causal in time: diffusers runs its decoder one latent frame at a time (its encoder on the
first video frame, then 4 at a time), each causal convolution reading the last frames of the step before
from a list of cached features. Compiled whole (`torch.compile(vae.decode)`), that loop compiles badly:
torch 2.11's dynamo breaks the graph where diffusers compares a cached tensor with its "Rep" marker
(`tensor == "Rep"`), then compiles each layer on its own, recompiles layers for every shape into the
second chunk until its limit (8) and runs the rest eagerly; torch 2.13 traces the loop, but as one graph
per clip length with every step unrolled (nine decoders a chunk, slow to compile). `WanSteps` compiles
the loop's two kinds of step instead, see there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import torch
from diffusers import AutoencoderKLLTXVideo, AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from safetensors.torch import load_file

from avatar.engines.base import EngineUnavailable
from avatar.engines.flashhead.compiled import compiled
from avatar.engines.flashhead.weights import load_strict

PosteriorNoise: TypeAlias = Callable[[torch.Size], torch.Tensor]
"""Given a raw latent shape (B, C, f, h, w), the standard-normal draw that samples the VAE posterior there."""


class _Codec(ABC):
    """What both VAEs share: latents normalised per channel around diffusers' encode and decode."""

    vae: AutoencoderKLLTXVideo | AutoencoderKLWan
    decoder: Callable

    @abstractmethod
    def _stats(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std, shaped to broadcast over (B, C, f, h, w)."""

    @abstractmethod
    def _latents(self, video: torch.Tensor, noise: PosteriorNoise | None) -> torch.Tensor:
        """Raw latents of `video`, as the published wrapper of this VAE takes them."""

    @torch.no_grad()
    def encode(self, video: torch.Tensor, noise: PosteriorNoise | None = None) -> torch.Tensor:
        """Normalised latents of `video`; `noise` gives the posterior sample's draw (None: the posterior mean)."""
        latents = self._latents(video, noise)
        mean, std = self._stats(latents)
        return (latents - mean) / std

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> video, not clamped here: see the module docstring."""
        mean, std = self._stats(latents)
        return self._video(latents * std + mean)

    @abstractmethod
    def _video(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents -> video through `decoder`."""


class LtxCodec(_Codec):
    """LTX-Video VAE: 8x temporal, 32x spatial, 128 channels; latents normalised by mean/std of means."""

    def __init__(self, vae: AutoencoderKLLTXVideo) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.encoder = self.vae._encode
        self.decoder = self.vae.decode

    def compile(self, any_batch: bool = False) -> None:
        """Compile encoder and decoder: the motion re-encode runs every chunk, so both pay off."""
        self.encoder = compiled(self.vae._encode, any_batch)
        self.decoder = compiled(self.vae.decode, any_batch)

    def _video(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents, return_dict=False)[0]

    @classmethod
    def from_folder(cls, folder: Path, device: torch.device, dtype: torch.dtype) -> LtxCodec:
        """Load `VAE_LTX/` (config.json + diffusion_pytorch_model.safetensors); every weight must be present."""
        vae = load_strict(AutoencoderKLLTXVideo, folder)
        return cls(vae.to(device=device, dtype=dtype))

    def _stats(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        return self.vae.latents_mean.view(shape).to(latents), self.vae.latents_std.view(shape).to(latents)

    def _latents(self, video: torch.Tensor, noise: PosteriorNoise | None) -> torch.Tensor:
        """A sample of the posterior, mean + std * noise (as the published wrapper, through diffusers, does).

        Goes through `_encode` (moments as one tensor) so the compiled part has a plain tensor output.
        The draw comes from `noise`, never from diffusers' own (global, unseeded) generator.
        """
        posterior = DiagonalGaussianDistribution(self.encoder(video.to(self.vae.dtype)))
        if noise is None:
            return posterior.mode()
        draw = noise(posterior.mean.shape).to(posterior.mean)
        return posterior.mean + posterior.std * draw


class _CachedFeature:
    """A cached feature map as diffusers' Wan layers read it, known not to be their "Rep" marker.

    The layers test `feat_cache[i] == "Rep"` on every cached tensor; torch 2.11's dynamo cannot trace a
    tensor compared with a string (Tensor.__eq__ returns NotImplemented) and breaks the graph there (2.13
    can). Wrapped, the comparison is plain Python; the layers only slice the feature or move it to a device.
    """

    __slots__ = ("tensor",)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __eq__(self, other: object) -> bool:
        return False

    def __ne__(self, other: object) -> bool:
        return True

    def __getitem__(self, index: object) -> torch.Tensor:
        return self.tensor[index]

    def to(self, *args: object, **kwargs: object) -> torch.Tensor:
        return self.tensor.to(*args, **kwargs)


Cache: TypeAlias = list[torch.Tensor | None]
"""The causal convolutions' cached features between steps, in diffusers' order (None: a slot never used)."""


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` laid out as a fresh tensor of its shape (a copy only if it is not contiguous).

    Compiled steps guard on strides: a slice of a longer clip, an expanded frame, or a batch-1 tensor whose
    (meaningless) batch stride inductor chose differently would each compile the step again.
    """
    return tensor.contiguous().view(tensor.shape)


def _settled(cache: list) -> Cache:
    """A step's cache handed back, as plain tensors for the next step."""
    return [None if feature is None else _plain(getattr(feature, "tensor", feature)) for feature in cache]


def _slots(module: torch.nn.Module) -> int:
    """How many cached features a diffusers Wan encoder or decoder keeps: one per causal convolution."""
    return sum(isinstance(layer, WanCausalConv3d) for layer in module.modules())


class WanSteps:
    """diffusers' Wan VAE loops as two steps each, every step a function of tensors that compiles to one graph.

    The first steps differ from the rest: on the first latent frame the cache is empty and the decoder does
    not upsample in time (one video frame out, not four); on the second, the cache holds single frames and
    the temporal upsamplers' "Rep" marker. From the third on, every step sees the same shapes. So the
    `start` takes the first two steps together (latent frames 0-1; video frames 0-4 when encoding) and the
    `step` one more (a latent frame; 4 video frames), with the cache passed in and handed back as plain
    tensors: two graphs each way for a clip of any length, compiled during the first chunk, traced whole
    (no graph break), never recompiled for the same batch size. Numerically the same as diffusers' own loop,
    which this repeats with its own layers: decode = post_quant_conv, the decoder, clamp to [-1, 1]; encode =
    the encoder, quant_conv (the posterior's moments). Clips shorter than the start (one latent frame, fewer
    than five video frames) go through diffusers' loop as they are. Dynamo keeps one cache per function,
    shared by every WanSteps: each VAE and batch size class takes one of its 8 entries.
    """

    def __init__(self, vae: AutoencoderKLWan) -> None:
        if vae.config.patch_size is not None or vae.config.is_residual:
            raise ValueError("WanSteps repeats the Wan 2.1 VAE's loops: no patching, no residual up blocks")
        self.vae = vae
        self.decoder_slots = _slots(vae.decoder)
        self.encoder_slots = _slots(vae.encoder)
        self.decode_start = self._decode_start
        self.decode_step = self._decode_step
        self.encode_start = self._encode_start
        self.encode_step = self._encode_step

    def compile(self, any_batch: bool = False) -> None:
        """Compile the four steps (see `compiled` for `any_batch`)."""
        self.decode_start = compiled(self._decode_start, any_batch)
        self.decode_step = compiled(self._decode_step, any_batch)
        self.encode_start = compiled(self._encode_start, any_batch)
        self.encode_step = compiled(self._encode_step, any_batch)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Raw latents (B, C, f, h, w) -> video (B, 3, 1 + 4(f-1), H, W) clamped to [-1, 1], as diffusers' decode."""
        if latents.shape[2] < 2:
            return self.vae.decode(latents, return_dict=False)[0]
        video, cache = self.decode_start(_plain(latents[:, :, :2]))
        pieces = [video]
        for index in range(2, latents.shape[2]):
            piece, cache = self.decode_step(_plain(latents[:, :, index : index + 1]), _settled(cache))
            pieces.append(piece)
        return torch.cat(pieces, 2)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video (B, 3, 1 + 4k, H, W) -> the posterior's moments (B, 2C, 1 + k, h, w), as diffusers' `_encode`.

        Like diffusers, frames past the last whole group of four are not encoded.
        """
        if video.shape[2] < 5:
            return self.vae._encode(video)
        moments, cache = self.encode_start(_plain(video[:, :, :5]))
        pieces = [moments]
        for first in range(5, video.shape[2] - 3, 4):
            piece, cache = self.encode_step(_plain(video[:, :, first : first + 4]), _settled(cache))
            pieces.append(piece)
        return torch.cat(pieces, 2)

    def _decode_start(self, latents: torch.Tensor) -> tuple[torch.Tensor, list]:
        cache: list = [None] * self.decoder_slots
        x = self.vae.post_quant_conv(latents)
        first = self.vae.decoder(x[:, :, :1], feat_cache=cache, feat_idx=[0], first_chunk=True)
        second = self.vae.decoder(x[:, :, 1:], feat_cache=cache, feat_idx=[0])
        return torch.cat([first, second], 2).clamp(-1, 1), cache

    def _decode_step(self, latents: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, list]:
        features = [None if feature is None else _CachedFeature(feature) for feature in cache]
        video = self.vae.decoder(self.vae.post_quant_conv(latents), feat_cache=features, feat_idx=[0])
        return video.clamp(-1, 1), features

    def _encode_start(self, video: torch.Tensor) -> tuple[torch.Tensor, list]:
        cache: list = [None] * self.encoder_slots
        first = self.vae.encoder(video[:, :, :1], feat_cache=cache, feat_idx=[0])
        rest = self.vae.encoder(video[:, :, 1:], feat_cache=cache, feat_idx=[0])
        return self.vae.quant_conv(torch.cat([first, rest], 2)), cache

    def _encode_step(self, video: torch.Tensor, cache: Cache) -> tuple[torch.Tensor, list]:
        features = [None if feature is None else _CachedFeature(feature) for feature in cache]
        moments = self.vae.quant_conv(self.vae.encoder(video, feat_cache=features, feat_idx=[0]))
        return moments, features


class WanCodec(_Codec):
    """Wan 2.1 VAE: 4x temporal, 8x spatial, 16 channels; latents normalised by the VAE's stored statistics."""

    def __init__(self, vae: AutoencoderKLWan) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.encoder = self.vae._encode
        self.decoder = self._diffusers_decode

    def compile(self, any_batch: bool = False) -> None:
        """Compile diffusers' loops step by step (`WanSteps`): two graphs to decode, two to encode, any clip length."""
        steps = WanSteps(self.vae)
        steps.compile(any_batch)
        self.encoder = steps.encode
        self.decoder = steps.decode

    def _diffusers_decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]

    def _video(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents)

    @classmethod
    def from_file(cls, path: Path, device: torch.device, dtype: torch.dtype) -> WanCodec:
        """Load the original-layout checkpoint (.pth or .safetensors), sizes read from its tensors, strictly."""
        if path.suffix == ".safetensors":
            original = load_file(path)
        else:
            original = torch.load(path, map_location="cpu", weights_only=True)
        state = convert_wan_vae_to_diffusers(original)
        base_dim = state["encoder.conv_in.weight"].shape[0]
        z_dim = state["post_quant_conv.weight"].shape[0]
        vae = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim)
        expected = vae.state_dict()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise EngineUnavailable(
                f"The Wan VAE in '{path}' does not fit AutoencoderKLWan: missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}. Download it again."
            )
        vae.load_state_dict(state, strict=True)
        return cls(vae.to(device=device, dtype=dtype))

    def _stats(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, -1, 1, 1, 1)
        mean = torch.tensor(self.vae.config.latents_mean).view(shape).to(latents)
        std = torch.tensor(self.vae.config.latents_std).view(shape).to(latents)
        return mean, std

    def _latents(self, video: torch.Tensor, noise: PosteriorNoise | None) -> torch.Tensor:
        """The posterior mean (as the published Wan wrapper uses): it draws no noise."""
        return DiagonalGaussianDistribution(self.encoder(video.to(self.vae.dtype))).mode()
