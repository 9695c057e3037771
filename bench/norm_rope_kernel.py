"""The q/k norm and rope alone, at Lite's sizes: the Triton kernel (norm_rope.qk_norm_rope) against inductor's code.

Each side reads q and k from a fused q/k/v product of (batch, 1280, 3 x 1536) bf16 and writes them normalised and
rotated; its bytes moved over its time, against this GPU's copy rate (bench/gpu_rate.py), tell how near the memory's
limit each runs. Also the relative error of each against the eager torch code.

    python3 bench/norm_rope_kernel.py --batches 1,8 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.engines.flashhead import norm_rope  # noqa: E402
from avatar.engines.flashhead.ahead import relative_error  # noqa: E402
from avatar.engines.flashhead.transformer import rope_tables  # noqa: E402
from bench.gpu_rate import median_ms  # noqa: E402

DIM, HEADS, GRID = 1536, 12, (5, 16, 16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--json", type=Path, default=Path("bench/out/norm_rope_kernel.json"))
    args = parser.parse_args()
    device = torch.device("cuda")
    cos, sin = rope_tables(DIM // HEADS, GRID, device)
    inductor = torch.compile(norm_rope.norm_rope_reference)
    rows = []
    print("| batch | rows | MB moved | Triton kernel ms | GB/s | inductor ms | GB/s | kernel error | inductor error |")
    print("|---|---|---|---|---|---|---|---|---|")
    for batch in (int(b) for b in args.batches.split(",")):
        torch.manual_seed(batch)
        qkv = torch.randn(batch, 1280, 3 * DIM, device=device, dtype=torch.bfloat16)
        weight_q, weight_k = (torch.rand(DIM, device=device, dtype=torch.bfloat16) + 0.5 for _ in range(2))
        inputs = (qkv, weight_q, weight_k, cos, sin, 1e-6)
        expected = norm_rope.norm_rope_reference(*inputs)
        moved = 2 * 2 * batch * 1280 * DIM * 2  # q and k, read and written, 2 bytes each
        kernel_ms = median_ms(lambda inputs=inputs: norm_rope.qk_norm_rope(*inputs), warm=5, runs=50)
        inductor_ms = median_ms(lambda inputs=inputs: inductor(*inputs), warm=5, runs=50)
        row = {
            "batch": batch,
            "rows": batch * 1280,
            "mb_moved": moved / 1e6,
            "kernel_ms": kernel_ms,
            "kernel_gb_s": moved / kernel_ms / 1e6,
            "inductor_ms": inductor_ms,
            "inductor_gb_s": moved / inductor_ms / 1e6,
            "kernel_error": relative_error(norm_rope.qk_norm_rope(*inputs), expected),
            "inductor_error": relative_error(inductor(*inputs), expected),
        }
        rows.append(row)
        print(
            f"| {batch} | {row['rows']} | {row['mb_moved']:.0f} | {kernel_ms:.3f} | {row['kernel_gb_s']:.0f} "
            f"| {inductor_ms:.3f} | {row['inductor_gb_s']:.0f} | {row['kernel_error']:.2e} "
            f"| {row['inductor_error']:.2e} |",
            flush=True,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"gpu": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
