"""Pixels <-> normalised latents for both FlashHead variants, through diffusers' own VAE classes.

Lite uses the LTX-Video VAE (folder `VAE_LTX/`, diffusers layout) with per-channel latent statistics;
Pro uses the Wan 2.1 VAE (single file `VAE_Wan/Wan2.1_VAE.pth`, original layout, converted on load).
Videos are (B, 3, T, H, W) in [-1, 1]; latents are (B, C, f, h, w), normalised as the DiT expects.
Decoding returns what the published wrapper of each VAE returns: LTX's raw decoder output (it can
overshoot [-1, 1]; the published pipeline colour-matches and re-encodes it unclamped), Wan's clamped
by diffusers itself (as the original Wan VAE does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TypeAlias

import torch
from diffusers import AutoencoderKLLTXVideo, AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
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
        return self.decoder(latents * std + mean, return_dict=False)[0]


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


class WanCodec(_Codec):
    """Wan 2.1 VAE: 4x temporal, 8x spatial, 16 channels; latents normalised by the VAE's stored statistics."""

    def __init__(self, vae: AutoencoderKLWan) -> None:
        self.vae = vae.eval().requires_grad_(False)
        self.decoder = self.vae.decode

    def compile(self, any_batch: bool = False) -> None:
        """Compile the decoder only: the encoder's per-frame cache loop would recompile for every clip length."""
        self.decoder = compiled(self.vae.decode, any_batch)

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
        return self.vae.encode(video.to(self.vae.dtype)).latent_dist.mode()
