"""The Pro variant's Wan 2.1 VAE loads from the original single-file layout (Wan2.1_VAE.pth) and round-trips a clip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import save_file

from avatar.engines.base import EngineUnavailable
from avatar.engines.flashhead.vae import WanCodec
from tests.flashhead.tiny_checkpoint import randomise

RESNET_PARTS = {
    "norm1.gamma": "residual.0.gamma",
    "conv1": "residual.2",
    "norm2.gamma": "residual.3.gamma",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}
UPSAMPLER_INDEX = {0: 3, 1: 7, 2: 11}


def _resnet_part(rest: str) -> str:
    for new, old in RESNET_PARTS.items():
        if rest == new or rest.startswith(new + "."):
            return old + rest[len(new) :]
    return rest


def original_name(name: str) -> str:
    """The inverse of diffusers' convert_wan_vae_to_diffusers: a diffusers name -> the Wan 2.1 repository's."""
    fixed = {"quant_conv": "conv1", "post_quant_conv": "conv2"}
    head, _, rest = name.partition(".")
    if head in fixed:
        return f"{fixed[head]}.{rest}"
    side, _, rest = name.partition(".")
    if match := re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", rest):
        return f"{side}.middle.{2 * int(match[1])}.{_resnet_part(match[2])}"
    if match := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest):
        return f"{side}.middle.1.{match[1]}"
    if rest.startswith(("conv_in.", "norm_out.", "conv_out.")):
        part, _, leaf = rest.partition(".")
        return f"{side}.{ {'conv_in': 'conv1', 'norm_out': 'head.0', 'conv_out': 'head.2'}[part] }.{leaf}"
    if match := re.fullmatch(r"down_blocks\.(\d+)\.(.+)", rest):
        return f"encoder.downsamples.{match[1]}.{_resnet_part(match[2])}"
    if match := re.fullmatch(r"up_blocks\.(\d)\.resnets\.(\d)\.(.+)", rest):
        return f"decoder.upsamples.{4 * int(match[1]) + int(match[2])}.{_resnet_part(match[3])}"
    if match := re.fullmatch(r"up_blocks\.(\d)\.upsamplers\.0\.(.+)", rest):
        return f"decoder.upsamples.{UPSAMPLER_INDEX[int(match[1])]}.{match[2]}"
    raise AssertionError(f"no original name known for {name}")


@pytest.fixture(scope="module")
def tiny_wan() -> AutoencoderKLWan:
    vae = AutoencoderKLWan(base_dim=8, z_dim=16)
    randomise(vae, 7)
    return vae.eval()


def write_original(vae: AutoencoderKLWan, path: Path, drop: str | None = None) -> dict[str, torch.Tensor]:
    """Save `vae` as the published single file would hold it (original names), optionally without one tensor."""
    original = {original_name(name): tensor.clone() for name, tensor in vae.state_dict().items()}
    # The inverse is only trustworthy if diffusers' own conversion maps every name back.
    assert set(convert_wan_vae_to_diffusers(dict(original))) == set(vae.state_dict())
    if drop is not None:
        original.pop(drop)
    if path.suffix == ".safetensors":
        save_file(original, path)
    else:
        torch.save(original, path)
    return original


@pytest.mark.parametrize("name", ["Wan2.1_VAE.pth", "Wan2.1_VAE.safetensors"])
def test_the_original_wan_layout_loads_strictly_and_round_trips_a_clip(tiny_wan, tmp_path, name):
    path = tmp_path / name
    original = write_original(tiny_wan, path)
    assert "decoder.upsamples.4.shortcut.weight" in original and "encoder.middle.1.to_qkv.weight" in original
    codec = WanCodec.from_file(path, torch.device("cpu"), torch.float32)
    for key, tensor in tiny_wan.state_dict().items():
        assert torch.equal(codec.vae.state_dict()[key], tensor), key
    clip = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    latents = codec.encode(clip)
    assert latents.shape == (1, 16, 2, 4, 4)  # 4x temporal (1 + 4 frames), 8x spatial
    # Normalised with the stored statistics: the raw posterior mean is latents * std + mean.
    raw = tiny_wan.encode(clip).latent_dist.mode()
    mean, std = codec._stats(raw)
    torch.testing.assert_close(latents * std + mean, raw)
    video = codec.decode(latents)
    assert video.shape == (1, 3, 5, 32, 32)
    assert video.min() >= -1 and video.max() <= 1 and video.std() > 0


def test_a_wan_checkpoint_missing_a_tensor_is_refused_with_a_clear_message(tiny_wan, tmp_path):
    path = tmp_path / "Wan2.1_VAE.pth"
    write_original(tiny_wan, path, drop="decoder.head.2.bias")
    with pytest.raises(EngineUnavailable, match=r"missing \['decoder.conv_out.bias'\]"):
        WanCodec.from_file(path, torch.device("cpu"), torch.float32)
