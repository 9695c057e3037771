"""The self-attention's q/k RMSNorm and interleaved rope, in one pass over the fused q/k/v product on CUDA.

At 8 Lite sessions inductor's own kernel for the norm and the rope ran at 38% of the GPU's copy rate (0.44 ms of a
4-block step, bench/RESULTS.md, issue #28): every output feature needs its rope partner, and the compiled code
loads it again. `qk_norm_rope` instead holds a whole token's q (or k) in registers as (pairs, 2): one read and one
write of each feature. It is a custom op (`torch.library.triton_op`), so torch.compile, CUDA graphs and
AOTInductor keep it inside the compiled step. The kernel rounds where the torch code it stands in for (`rms_norm`,
`apply_rope`, still the CPU's path) rounds. The self-attention takes it only when told to (`fused_norm_rope`), until
its speed is measured on a GPU.
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # the CPU wheel of torch comes without Triton: there is no op then, and the torch code runs
    triton = None


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMS normalisation over the last dimension in float32, rounded back to x's dtype, then the learned scale."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps)).to(x.dtype) * weight


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2i], x[2i+1]) of x (B, L, heads, head_dim) by the token's angles."""
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    cos, sin = cos[None, :, None, :], sin[None, :, None, :]
    rotated = torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def norm_rope_reference(
    qkv: torch.Tensor, weight_q: torch.Tensor, weight_k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, eps: float
) -> torch.Tensor:
    """What `qk_norm_rope` computes, in torch ops: q and k of `qkv` (B, L, 3*dim) normalised and rotated, stacked
    as (B, L, 2, dim)."""
    dim = weight_q.shape[0]
    heads = dim // (2 * cos.shape[-1])
    q, k = qkv[..., :dim], qkv[..., dim : 2 * dim]
    rotated = [
        apply_rope(rms_norm(part, weight, eps).unflatten(-1, (heads, -1)), cos, sin).flatten(2)
        for part, weight in ((q, weight_q), (k, weight_k))
    ]
    return torch.stack(rotated, dim=2)


def fused_on(x: torch.Tensor) -> bool:
    """Whether `qk_norm_rope` runs where x is: on CUDA, with Triton."""
    return x.is_cuda and triton is not None


if triton is not None:

    @triton.jit
    def norm_rope_kernel(
        qkv,
        out,
        weight_q,
        weight_k,
        cos,
        sin,
        row_stride,
        tokens,
        eps,
        DIM: tl.constexpr,
        HALF_HEAD: tl.constexpr,
        PAIRS: tl.constexpr,
    ):
        """One token's q (program_id 1 = 0) or k (1) of one row of `qkv`: RMSNorm, scale, rope; rounded where the
        torch code rounds (after the norm, after the scale, at the end)."""
        row = tl.program_id(0)
        which = tl.program_id(1)
        pair = tl.arange(0, PAIRS)
        feature = 2 * pair[:, None] + tl.arange(0, 2)[None, :]
        inside = feature < DIM
        x = tl.load(qkv + row * row_stride + which * DIM + feature, mask=inside, other=0.0).to(tl.float32)
        scale = tl.rsqrt(tl.sum(tl.sum(x * x, axis=1), axis=0) / DIM + eps)
        if which == 0:
            weight = tl.load(weight_q + feature, mask=inside, other=0.0)
        else:
            weight = tl.load(weight_k + feature, mask=inside, other=0.0)
        dtype = out.dtype.element_ty
        normed = (x * scale).to(dtype).to(tl.float32)
        scaled = (normed * weight.to(tl.float32)).to(dtype).to(tl.float32)
        real, imag = tl.split(scaled)
        angle = (row % tokens) * HALF_HEAD + pair % HALF_HEAD
        live = pair < DIM // 2
        c = tl.load(cos + angle, mask=live, other=0.0)
        s = tl.load(sin + angle, mask=live, other=0.0)
        rotated = tl.join(real * c - imag * s, real * s + imag * c)
        tl.store(out + row * 2 * DIM + which * DIM + feature, rotated.to(dtype), mask=inside)

    @torch.library.triton_op("avatar::qk_norm_rope", mutates_args=())
    def qk_norm_rope(
        qkv: torch.Tensor,
        weight_q: torch.Tensor,
        weight_k: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        """q and k of `qkv` (B, L, 3*dim) normalised (RMSNorm with weight_q, weight_k) and rotated by the
        (L, head_dim/2) float32 tables, as `norm_rope_reference` does: (B, L, 2, dim), in one kernel."""
        qkv = qkv.contiguous()
        batch, tokens, width = qkv.shape
        dim = weight_q.shape[0]
        out = qkv.new_empty(batch, tokens, 2, dim)
        kernel = torch.library.wrap_triton(norm_rope_kernel)[(batch * tokens, 2)]
        pairs, half_head = triton.next_power_of_2(dim // 2), cos.shape[-1]
        kernel(qkv, out, weight_q, weight_k, cos, sin, width, tokens, eps, DIM=dim, HALF_HEAD=half_head, PAIRS=pairs)
        return out
