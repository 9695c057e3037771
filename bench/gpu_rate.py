"""This GPU's rates on three fixed jobs, so two GPUs that timed the two sides of one ratio can be compared.

A speed ratio should come from one GPU. Where the published pipeline and the engine ran side by side on two GPUs
of one host (to fit one call's 10 minutes), each GPU runs this too: if their rates agree, so do the GPUs.
Jobs: a bf16 8192 x 8192 x 8192 matrix product (TFLOP/s), a bf16 3x3x3 convolution of a VAE decoder's size
(TFLOP/s), and a device-to-device copy of 2 GiB (GB/s, bytes read and written). Medians of 10 after 3 warm-ups.

    python3 bench/gpu_rate.py --json $OUT/gpu_rate.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F


def median_ms(fn: Callable[[], object], warm: int = 3, runs: int = 10) -> float:
    """Median milliseconds of `fn` timed with CUDA events."""
    for _ in range(warm):
        fn()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def rates(device: torch.device) -> dict[str, float | str]:
    """The three jobs' rates on `device`."""
    generator = torch.Generator(device).manual_seed(0)
    a, b = (torch.randn(8192, 8192, generator=generator, device=device, dtype=torch.bfloat16) for _ in range(2))
    gemm_ms = median_ms(lambda: a @ b)
    video = torch.randn(1, 256, 9, 128, 128, generator=generator, device=device, dtype=torch.bfloat16)
    kernel = torch.randn(256, 256, 3, 3, 3, generator=generator, device=device, dtype=torch.bfloat16)
    conv_ms = median_ms(lambda: F.conv3d(video, kernel, padding=1))
    conv_flop = 2 * video.numel() * kernel[0].numel()
    source = torch.empty(2**30, device=device, dtype=torch.int16)
    copy_ms = median_ms(lambda: source.clone())
    return {
        "gpu": torch.cuda.get_device_name(device),
        "bf16_gemm_tflops": 2 * 8192**3 / gemm_ms / 1e9,
        "bf16_conv3d_tflops": conv_flop / conv_ms / 1e9,
        "copy_gbs": 2 * source.nbytes / copy_ms / 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    result = rates(torch.device(args.device))
    print(json.dumps(result), flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
