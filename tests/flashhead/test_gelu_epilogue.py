"""The FFN's GELU in its product's epilogue (transformer.linear_gelu): the same function, and one op once compiled.

On CUDA the block's first FFN product and its GELU are one `torch._addmm_activation` (cuBLASLt's bias and GELU
epilogue). CI has no GPU, so the CUDA branch's arithmetic is checked through the CPU kernel of the same op (whose
GELU is the exact one), and the speed depends on inductor leaving the op whole, which holds on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch._inductor.utils import run_and_get_code

from avatar.engines.flashhead.transformer import DiTAudioBlock, addmm_gelu, linear_gelu


def test_addmm_gelu_is_the_linear_layer_then_gelu() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(24, 40)
    x = torch.randn(2, 7, 24)
    # The CPU's _addmm_activation applies the exact GELU; CUDA's, the tanh one, as the checkpoint's FFN does.
    torch.testing.assert_close(addmm_gelu(linear, x), F.gelu(linear(x)))


def test_on_the_cpu_linear_gelu_is_the_checkpoint_ffn_exactly() -> None:
    torch.manual_seed(0)
    block = DiTAudioBlock(32, 2, 48, 1e-6)
    x = torch.randn(2, 5, 32)
    assert torch.equal(linear_gelu(block.ffn[0], x), block.ffn[1](block.ffn[0](x)))


def test_the_block_gives_the_same_output_with_the_epilogue_on_or_off_on_the_cpu() -> None:
    torch.manual_seed(0)
    block = DiTAudioBlock(32, 2, 48, 1e-6).eval()
    x, context, t_mod = torch.randn(1, 8, 32), torch.randn(1, 2, 4, 32), torch.randn(1, 6, 32)
    cos, sin = torch.ones(8, 8), torch.zeros(8, 8)
    with torch.no_grad():
        fused = block(x, context, t_mod, cos, sin)
        block.gelu_epilogue = False
        assert torch.equal(fused, block(x, context, t_mod, cos, sin))


def test_inductor_leaves_the_product_and_its_gelu_one_op() -> None:
    torch.manual_seed(0)
    linear = torch.nn.Linear(16, 32).requires_grad_(False)
    x = torch.randn(4, 16)
    _, (code, *_) = run_and_get_code(torch.compile(lambda x: addmm_gelu(linear, x)), x)
    assert "aten._addmm_activation" in code
    assert "gelu" not in code.replace("_addmm_activation", "").replace("use_gelu", "").lower()
