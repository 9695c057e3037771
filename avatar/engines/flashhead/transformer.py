"""The FlashHead diffusion transformer (WanModelAudioProject), with the published checkpoint's parameter names.

A Wan 2.1 DiT that denoises video latents given the reference latents (concatenated on channels) and
wav2vec2 audio windows (frame-by-frame cross-attention). Written batch-safe: every sample of a batch
gets its own rotary positions, modulation and audio tokens, so several sessions can share one call.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import torch
import torch.nn.functional as F
from diffusers import ModelMixin
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from avatar.engines.flashhead import norm_rope
from avatar.engines.flashhead.fp8 import use_fp8
from avatar.engines.flashhead.norm_rope import apply_rope, rms_norm

# Audio adapter sizes of the published model (not in config.json).
AUDIO_WINDOW = 5
AUDIO_LAYERS = 12
AUDIO_CHANNELS = 768
AUDIO_INTERMEDIATE = 512
AUDIO_TOKENS = 32
ROPE_THETA = 10000.0


def sinusoidal_embedding(dim: int, position: torch.Tensor) -> torch.Tensor:
    """Timestep embedding (cos half first, then sin), computed in float64 as the published model does."""
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float64, device=position.device).div(half)
    angles = torch.outer(position.to(torch.float64), torch.pow(10000.0, -exponent))
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1).to(position.dtype)


def rope_axis_widths(head_dim: int) -> tuple[int, int, int]:
    """Complex pairs per axis (frame, height, width) for one head."""
    pairs = head_dim // 2
    return pairs - 2 * (pairs // 3), pairs // 3, pairs // 3


def _rope_table(head_dim: int, grid: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin (tokens, head_dim/2) of the 3D rotary angles, built in float64."""
    angles = []
    for axis, (pairs, size) in enumerate(zip(rope_axis_widths(head_dim), grid, strict=True)):
        width = 2 * pairs
        freqs = 1.0 / ROPE_THETA ** (torch.arange(0, width, 2, dtype=torch.float64)[:pairs] / width)
        axis_angles = torch.outer(torch.arange(size, dtype=torch.float64), freqs)
        shape = [1, 1, 1, pairs]
        shape[axis] = size
        angles.append(axis_angles.view(shape).expand(*grid, pairs))
    table = torch.cat(angles, dim=-1).reshape(math.prod(grid), head_dim // 2)
    return torch.cos(table), torch.sin(table)


@torch.compiler.disable
@lru_cache(maxsize=16)
def rope_tables(head_dim: int, grid: tuple[int, int, int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 cos/sin tables on `device`, shared by all samples of a batch (they share one grid).

    Cached per grid and device, and kept out of compiled graphs, so a compiled step never rebuilds them.
    """
    cos, sin = _rope_table(head_dim, grid)
    return cos.to(device, torch.float32), sin.to(device, torch.float32)


class RMSNorm(nn.Module):
    """RMS normalisation over the full width, in float32, then the learned scale."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


# The fewest rows (tokens of a batch) for which the FFN's first product takes its GELU in the epilogue. On an H100
# (bench/RESULTS.md, issue #28) cuBLASLt's bias+GELU kernel made 4 Lite blocks 4% faster at 10,240 rows (8 sessions)
# but 14% slower at 1,280 (one session). 2,048 lies between one Lite session and two, so the graph compiled for any
# batch from 2 up takes the epilogue with no guard on the batch size, and one Lite session keeps the two ops.
EPILOGUE_MIN_ROWS = 2048


def linear_gelu(linear: nn.Module, x: torch.Tensor, epilogue: bool = True) -> torch.Tensor:
    """GELU (tanh) of `linear(x)`. On CUDA, for a plain `nn.Linear` and at least EPILOGUE_MIN_ROWS rows, one
    cuBLASLt product with the bias and the GELU in its epilogue (`addmm_gelu`): the FFN's hidden activations, the
    widest tensor of a block, are written once instead of written, read and written again (at 8 Lite sessions
    367 MB a block). Elsewhere, or without `epilogue`, the two ops: the CPU's `_addmm_activation` takes the exact
    GELU, and an FP8 layer has its own product."""
    rows = math.prod(x.shape[:-1])
    if epilogue and x.is_cuda and type(linear) is nn.Linear and linear.bias is not None and rows >= EPILOGUE_MIN_ROWS:
        return addmm_gelu(linear, x)
    return F.gelu(linear(x), approximate="tanh")


def addmm_gelu(linear: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`linear(x)` and a GELU in one `torch._addmm_activation`, which inductor leaves to cuBLASLt whole (its bias
    and GELU epilogue) rather than splitting it into a product and a pointwise kernel. The GELU is the tanh one on
    CUDA, the exact one on the CPU."""
    flat = x.reshape(-1, linear.in_features)
    out = torch._addmm_activation(linear.bias, flat, linear.weight.t(), use_gelu=True)
    return out.reshape(*x.shape[:-1], linear.out_features)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """SDPA over (B, L, heads*d) tensors; returns (B, L, heads*d)."""
    q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)


class _Attention(nn.Module):
    """The parameters both attentions share, named as in the checkpoint: q, k, v, o, norm_q, norm_k."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.o = nn.Linear(dim, dim)
        self.norm_q = RMSNorm(dim, eps=eps)
        self.norm_k = RMSNorm(dim, eps=eps)


class SelfAttention(_Attention):
    """Self-attention over all tokens of a chunk with 3D rotary positions."""

    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6) -> None:
        super().__init__(dim, num_heads, eps)
        self.qkv: nn.Linear | None = None
        # With the fused q/k/v on CUDA, the q/k norm and rope in one kernel (norm_rope.qk_norm_rope) instead of
        # inductor's. Off until measured on a GPU (issue #28): the speed bench's bf16-norm-rope-kernel turns it on.
        self.fused_norm_rope = False

    def fuse_qkv(self) -> None:
        """Replace q, k, v by one Linear (one GEMM instead of three); call after loading weights."""
        dim = self.q.in_features
        fused = nn.Linear(dim, 3 * dim, device=self.q.weight.device, dtype=self.q.weight.dtype)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([self.q.weight, self.k.weight, self.v.weight]))
            fused.bias.copy_(torch.cat([self.q.bias, self.k.bias, self.v.bias]))
        self.qkv = fused
        del self.q, self.k, self.v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        heads = self.num_heads
        if self.qkv is not None and self.fused_norm_rope and norm_rope.fused_on(x):
            qkv = self.qkv(x)
            weights = self.norm_q.weight, self.norm_k.weight
            qk = norm_rope.qk_norm_rope(qkv, *weights, cos, sin, self.norm_q.eps)
            return self.o(_attention(qk[:, :, 0], qk[:, :, 1], qkv[..., 2 * x.shape[-1] :], heads))
        if self.qkv is not None:
            q, k, v = self.qkv(x).chunk(3, dim=-1)
        else:
            q, k, v = self.q(x), self.k(x), self.v(x)
        q = apply_rope(self.norm_q(q).unflatten(-1, (heads, -1)), cos, sin).flatten(2)
        k = apply_rope(self.norm_k(k).unflatten(-1, (heads, -1)), cos, sin).flatten(2)
        return self.o(_attention(q, k, v, heads))


class CrossAttention(_Attention):
    """Each latent frame's tokens attend to that frame's audio tokens only."""

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q = self.norm_q(self.q(x))
        k = self.norm_k(self.k(context))
        return self.o(_attention(q, k, self.v(context), self.num_heads))


class DiTAudioBlock(nn.Module):
    """One transformer block: modulated self-attention, audio cross-attention, modulated FFN."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, eps: float) -> None:
        super().__init__()
        self.self_attn = SelfAttention(dim, num_heads, eps)
        self.cross_attn = CrossAttention(dim, num_heads, eps)
        self.norm1 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.norm2 = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.norm3 = nn.LayerNorm(dim, eps=eps)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))
        # The FFN's GELU in its first product's epilogue on CUDA (linear_gelu; ffn[1] stays for the checkpoint's
        # layer numbers). Off: the product and the GELU apart, as before, the speed bench's baseline.
        self.gelu_epilogue = True

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, t_mod: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation + t_mod).chunk(6, dim=1)
        x = x + self.self_attn(self.norm1(x) * (1 + scale1) + shift1, cos, sin) * gate1
        batch, frames = context.shape[:2]
        per_frame = self.norm3(x).reshape(batch * frames, -1, x.shape[-1])
        x = x + self.cross_attn(per_frame, context.flatten(0, 1)).reshape(x.shape)
        hidden = linear_gelu(self.ffn[0], self.norm2(x) * (1 + scale2) + shift2, self.gelu_epilogue)
        return x + self.ffn[2](hidden) * gate2


class MLP(nn.Module):
    """Unused by the forward pass; kept so the published checkpoint loads strictly (`audio_emb`)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.LayerNorm(in_dim),
            nn.Linear(in_dim, in_dim),
            nn.GELU(),
            nn.Linear(in_dim, out_dim),
            nn.LayerNorm(out_dim),
        )


class Head(nn.Module):
    """Final modulated LayerNorm and projection back to patch pixels."""

    def __init__(self, dim: int, out_dim: int, patch_size: tuple[int, int, int], eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = nn.Linear(dim, out_dim * math.prod(patch_size))
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.modulation + t[:, None]).chunk(2, dim=1)
        return self.head(self.norm(x) * (1 + scale) + shift)


class AudioProjModel(nn.Module):
    """wav2vec2 windows -> 32 audio tokens per latent frame."""

    def __init__(self, frames_per_latent: int, output_dim: int) -> None:
        super().__init__()
        per_frame = AUDIO_LAYERS * AUDIO_CHANNELS
        self.output_dim = output_dim
        self.proj1 = nn.Linear(AUDIO_WINDOW * per_frame, AUDIO_INTERMEDIATE)
        self.proj1_vf = nn.Linear((AUDIO_WINDOW + frames_per_latent - 1) * per_frame, AUDIO_INTERMEDIATE)
        self.proj2 = nn.Linear(AUDIO_INTERMEDIATE, AUDIO_INTERMEDIATE)
        self.proj3 = nn.Linear(AUDIO_INTERMEDIATE, AUDIO_TOKENS * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, first: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
        """first (B, 1, 5, 12, 768), later (B, F-1, s+4, 12, 768) -> (B, F, 32, output_dim)."""
        first = torch.relu(self.proj1(first.flatten(2)))
        later = torch.relu(self.proj1_vf(later.flatten(2)))
        tokens = self.proj3(torch.relu(self.proj2(torch.cat([first, later], dim=1))))
        tokens = tokens.unflatten(-1, (AUDIO_TOKENS, self.output_dim))
        return F.layer_norm(
            tokens.float(), (self.output_dim,), self.norm.weight.float(), self.norm.bias.float(), self.norm.eps
        )


def group_audio_windows(context: torch.Tensor, frames_per_latent: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split per-video-frame windows (B, 1+(F-1)*s, 5, 12, 768) into the first frame and one group per latent.

    From each group of s frames: the first frame's window entries [0:3], the middle frames' entry [2],
    the last frame's entries [2:5], so every latent frame sees s+4 feature frames in time order.
    """
    mid = AUDIO_WINDOW // 2
    first = context[:, :1]
    groups = context[:, 1:].unflatten(1, (-1, frames_per_latent))
    later = torch.cat(
        [groups[:, :, 0, : mid + 1], groups[:, :, 1:-1, mid], groups[:, :, -1, mid:]],
        dim=2,
    )
    return first, later


class WanModelAudioProject(ModelMixin, ConfigMixin):
    """The FlashHead DiT; `from_pretrained(Model_Lite|Model_Pro)` loads the published weights strictly."""

    _no_split_modules: ClassVar[list[str]] = ["DiTAudioBlock"]

    @register_to_config
    def __init__(
        self,
        dim: int,
        in_dim: int,
        ffn_dim: int,
        out_dim: int,
        text_dim: int,
        freq_dim: int,
        eps: float,
        vae_stride: tuple[int, int, int],
        patch_size: tuple[int, int, int],
        num_heads: int,
        num_layers: int,
        has_image_input: bool = False,
    ) -> None:
        super().__init__()
        if has_image_input:
            raise ValueError("FlashHead checkpoints have no image input; has_image_input must be false")
        self.dim = dim
        self.freq_dim = freq_dim
        self.num_heads = num_heads
        self.patch_size = tuple(patch_size)
        self.frames_per_latent = vae_stride[0]
        self.patch_embedding = nn.Conv3d(in_dim, dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.time_embedding = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim * 6))
        self.blocks = nn.ModuleList(DiTAudioBlock(dim, num_heads, ffn_dim, eps) for _ in range(num_layers))
        self.head = Head(dim, out_dim, self.patch_size, eps)
        self.audio_emb = MLP(AUDIO_CHANNELS, dim)
        self.audio_proj = AudioProjModel(self.frames_per_latent, dim)

    def fuse_qkv(self) -> None:
        """Fuse each block's q, k, v projections (inference only; state-dict names change afterwards)."""
        for block in self.blocks:
            block.self_attn.fuse_qkv()

    def use_fp8(self) -> None:
        """Run every block's linear layers in FP8 (see fp8.py): they are 95% of the FLOPs; the embeddings, the
        audio projection and the head stay as they are. Inference only, after loading weights."""
        for block in self.blocks:
            use_fp8(block)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, context: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Velocity for noisy latents `x` given reference latents `y`, timesteps (B,) and audio windows."""
        batch = x.shape[0]
        tokens = self.patch_embedding(torch.cat([x, y], dim=1))
        grid = tuple(tokens.shape[2:])
        tokens = tokens.flatten(2).transpose(1, 2)
        t = self.time_embedding(sinusoidal_embedding(self.freq_dim, timestep.to(tokens.dtype).expand(batch)))
        t_mod = self.time_projection(t).unflatten(1, (6, self.dim))
        first, later = group_audio_windows(context.to(tokens.dtype), self.frames_per_latent)
        audio = self.audio_proj(first, later).to(tokens.dtype)
        cos, sin = rope_tables(self.dim // self.num_heads, grid, tokens.device)
        for block in self.blocks:
            tokens = block(tokens, audio, t_mod, cos, sin)
        out = self.head(tokens, t)
        return self.unpatchify(out, grid)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, f*h*w, pf*ph*pw*C) tokens -> (B, C, f*pf, h*ph, w*pw) latents."""
        f, h, w = grid
        pf, ph, pw = self.patch_size
        x = x.reshape(x.shape[0], f, h, w, pf, ph, pw, -1)
        return x.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(x.shape[0], -1, f * pf, h * ph, w * pw)
