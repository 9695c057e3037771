"""The q/k norm and rope kernel (norm_rope.qk_norm_rope): what the torch code computes, wired where it was.

CI has no GPU, so the Triton kernel runs in Triton's interpreter (`TRITON_INTERPRET=1`, read when a kernel is
defined, hence a fresh process) on CPU tensors, with the shapes of a head of Lite scaled down: an odd number of heads
and a width that is not a power of two, so the kernel's masks matter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from avatar.engines.flashhead import norm_rope
from avatar.engines.flashhead.transformer import SelfAttention, rope_tables

ROOT = Path(__file__).resolve().parents[2]

KERNEL_AGAINST_TORCH = """
import json, torch
from avatar.engines.flashhead import norm_rope
from avatar.engines.flashhead.transformer import rope_tables

torch.manual_seed(0)
heads, head_dim, grid = 3, 16, (2, 3, 4)
dim, tokens = heads * head_dim, 24
cos, sin = rope_tables(head_dim, grid, torch.device("cpu"))
errors = {}
for dtype in (torch.float32, torch.bfloat16):
    qkv = (torch.randn(2, tokens, 3 * dim) * 3).to(dtype)
    weight_q, weight_k = ((torch.rand(dim) + 0.5).to(dtype) for _ in range(2))
    fused = norm_rope.qk_norm_rope(qkv, weight_q, weight_k, cos, sin, 1e-6)
    expected = norm_rope.norm_rope_reference(qkv, weight_q, weight_k, cos, sin, 1e-6)
    assert fused.shape == expected.shape == (2, tokens, 2, dim) and fused.dtype == dtype
    errors[str(dtype)] = ((fused.float() - expected.float()).norm() / expected.float().norm()).item()

# The whole self-attention through the custom op, as on CUDA, against the torch code.
from avatar.engines.flashhead.transformer import SelfAttention

attention = SelfAttention(dim, heads).eval()
attention.fuse_qkv()
attention.fused_norm_rope = True
x = torch.randn(2, tokens, dim)
with torch.no_grad():
    expected = attention(x, cos, sin)
    norm_rope.fused_on = lambda x: True
    fused = attention(x, cos, sin)
errors["attention"] = ((fused - expected).norm() / expected.norm()).item()
print(json.dumps(errors))
"""


def run_interpreted(script: str) -> dict:
    environment = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, cwd=ROOT, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_the_fused_kernel_computes_the_torch_norm_and_rope_and_the_attention_through_its_op_the_same() -> None:
    errors = run_interpreted(KERNEL_AGAINST_TORCH)
    # float32: the same arithmetic in another order of summation.
    assert errors["torch.float32"] < 1e-6
    # bfloat16: rounded at the same three points as the torch code. Triton's interpreter rounds to bfloat16 by
    # truncation (measured: every value cut, none rounded) where the GPU and torch round to nearest, so each of the
    # three roundings can be off by a last bit (0.4%); on a GPU the bench measures the kernel against torch.
    assert errors["torch.bfloat16"] < 1.5e-2
    assert errors["attention"] < 1e-6


def test_on_the_cpu_the_attention_keeps_the_torch_code() -> None:
    torch.manual_seed(0)
    attention = SelfAttention(32, 2).eval()
    attention.fuse_qkv()
    attention.fused_norm_rope = True
    x = torch.randn(1, 8, 32)
    cos, sin = rope_tables(16, (2, 2, 2), torch.device("cpu"))
    assert not norm_rope.fused_on(x)
    with torch.no_grad():
        on = attention(x, cos, sin)
        attention.fused_norm_rope = False
        assert torch.equal(on, attention(x, cos, sin))
