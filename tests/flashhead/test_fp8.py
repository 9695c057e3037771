"""FP8 matrix products: close to the layers they replace, and a switch that turns them off."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from avatar.engines.flashhead.fp8 import Fp8Linear, fp8_supported
from avatar.engines.flashhead.settings import FlashHeadSettings
from avatar.engines.flashhead.transformer import WanModelAudioProject
from tests.flashhead.tiny_checkpoint import TINY_LITE, randomise


def relative_error(value: torch.Tensor, expected: torch.Tensor) -> float:
    return float((value - expected).norm() / expected.norm())


def test_an_fp8_layer_gives_what_the_layer_it_replaces_gives_within_a_few_percent():
    torch.manual_seed(0)
    linear = nn.Linear(256, 96)
    x = torch.randn(4, 40, 256)
    with torch.no_grad():
        error = relative_error(Fp8Linear(linear)(x), linear(x))
    # e4m3 keeps 3 bits of mantissa: about 3% per value, averaging down over the 256 products of a sum.
    assert 0 < error < 0.05


def test_a_row_of_zeros_quantises_to_zeros_rather_than_dividing_by_zero():
    linear = nn.Linear(32, 16)
    x = torch.zeros(16, 32)
    with torch.no_grad():
        out = Fp8Linear(linear)(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, linear.bias.expand(16, -1), atol=0.02, rtol=0)


def tiny_inputs(model: WanModelAudioProject) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    channels = TINY_LITE["out_dim"]
    frames = 1 + 4 * model.frames_per_latent
    return {
        "x": torch.randn(2, channels, 5, 2, 2, generator=generator),
        "y": torch.randn(2, channels, 5, 2, 2, generator=generator),
        "timestep": torch.tensor([999.0, 500.0]),
        "context": torch.randn(2, frames, 5, 12, 768, generator=generator),
    }


def test_the_transformer_in_fp8_predicts_velocities_close_to_the_full_precision_ones():
    model = WanModelAudioProject(**TINY_LITE).eval()
    randomise(model, 1)
    model.fuse_qkv()
    fp8 = copy.deepcopy(model)
    fp8.use_fp8()
    inputs = tiny_inputs(model)
    with torch.no_grad():
        error = relative_error(fp8(**inputs), model(**inputs))
    assert 0 < error < 0.1
    assert sum(isinstance(module, Fp8Linear) for module in fp8.modules()) == 8 * TINY_LITE["num_layers"]


@pytest.mark.parametrize(
    ("choice", "supported", "expected"), [("on", True, True), ("on", False, False), ("off", True, False)]
)
def test_fp8_is_used_only_where_the_gpu_has_fp8_tensor_cores_and_never_when_switched_off(choice, supported, expected):
    assert FlashHeadSettings(fp8=choice).wants_fp8(supported) is expected


def test_a_mistyped_fp8_setting_is_refused_naming_the_variable_and_its_choices(monkeypatch):
    monkeypatch.setenv("AVATAR_FLASHHEAD_FP8", "maybe")
    with pytest.raises(ValueError, match="AVATAR_FLASHHEAD_FP8 must be one of on, off"):
        FlashHeadSettings.from_env("lite")


def test_the_cpu_never_counts_as_having_fp8_tensor_cores():
    assert not fp8_supported(torch.device("cpu"))
