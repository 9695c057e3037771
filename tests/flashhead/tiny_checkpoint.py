"""Writes tiny random FlashHead checkpoints in the published folder layout, for tests and the CPU bench run."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from diffusers import AutoencoderKLLTXVideo
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

from avatar.engines.flashhead.transformer import WanModelAudioProject

TINY_LITE = {
    "dim": 64,
    "in_dim": 16,
    "ffn_dim": 64,
    "out_dim": 8,
    "text_dim": 16,
    "freq_dim": 32,
    "eps": 1e-6,
    "vae_stride": (8, 32, 32),
    "patch_size": (1, 1, 1),
    "num_heads": 2,
    "num_layers": 1,
    "has_image_input": False,
}


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Small random values everywhere (zeros would hide wiring mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in sorted(module.state_dict().items()):
            if tensor.is_floating_point() and "latents_" not in name:
                scale = 0.1 if tensor.dim() < 2 else 1 / math.sqrt(math.prod(tensor.shape[1:]))
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * scale + (tensor.dim() == 1) * 0.5)


def write_lite(root: Path) -> None:
    """root/Model_Lite (config.json + safetensors) and root/VAE_LTX (diffusers AutoencoderKLLTXVideo)."""
    model = WanModelAudioProject(**TINY_LITE)
    randomise(model, 1)
    model.save_pretrained(root / "Model_Lite")
    vae = AutoencoderKLLTXVideo(
        latent_channels=TINY_LITE["out_dim"],
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
    )
    randomise(vae, 2)
    vae.latents_mean.normal_(generator=torch.Generator().manual_seed(3))
    vae.latents_std.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(4))
    vae.save_pretrained(root / "VAE_LTX")


def write_wav2vec2(folder: Path) -> None:
    """A wav2vec2 with the base model's 12 layers of width 768 (the adapter needs them), narrow elsewhere."""
    config = Wav2Vec2Config(intermediate_size=64, conv_dim=(32,) * 7, num_attention_heads=4)
    model = Wav2Vec2Model(config)
    randomise(model, 5)
    model.save_pretrained(folder)
    Wav2Vec2FeatureExtractor().save_pretrained(folder)
