"""FP8 matrix products for the transformer's linear layers, for GPUs with FP8 tensor cores (Ada, Hopper and later).

Weights are stored once as float8 e4m3 with a scale per output row; activations are quantised per row on the fly
(the largest magnitude of each row maps to e4m3's largest value) and both go to one `torch._scaled_mm`. Compiled,
the activation quantisation (a row maximum and a cast) fuses into the op before it; eager, it costs more than the
faster product saves, so the engine uses FP8 only when it compiles. The numerics change: bench/flashhead_speed.py
measures the change against bfloat16 (`--configs quality`); it runs only with AVATAR_FLASHHEAD_FP8=on.
"""

from __future__ import annotations

import torch
from torch import nn

E4M3 = torch.float8_e4m3fn
E4M3_MAX = torch.finfo(E4M3).max
# The smallest row maximum quantised as is: an all-zero row would otherwise divide by zero.
TINY = 1e-12


def fp8_supported(device: torch.device) -> bool:
    """Whether `device` multiplies float8 on tensor cores: CUDA compute capability 8.9 (Ada) or higher."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9)


def quantise_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, K) -> e4m3 values and the float32 scale (M, 1) of each row, x ~= values * scale."""
    scale = x.abs().amax(dim=-1, keepdim=True).float().clamp(min=TINY) / E4M3_MAX
    return (x.float() / scale).clamp(-E4M3_MAX, E4M3_MAX).to(E4M3), scale


class Fp8Linear(nn.Module):
    """A frozen `nn.Linear` whose product runs in float8 with row-wise scales; output in the layer's own dtype."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight, scale = quantise_rows(linear.weight.detach())
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        # Stored (out, in) row-major, so its transpose is the column-major operand `_scaled_mm` needs.
        self.register_buffer("weight", weight)
        self.register_buffer("weight_scale", scale.t().contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, scale = quantise_rows(x.reshape(-1, self.in_features))
        # Fast accumulation (Hopper's FP8 tensor cores accumulating without periodic promotion), as inference does.
        out = torch._scaled_mm(
            values,
            self.weight.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=self.out_dtype,
            use_fast_accum=values.is_cuda,
        )
        return out.reshape(*x.shape[:-1], self.out_features)


def use_fp8(module: nn.Module) -> int:
    """Replace every `nn.Linear` inside `module` by an `Fp8Linear` of the same weights; how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Fp8Linear(child))
            replaced += 1
        else:
            replaced += use_fp8(child)
    return replaced
