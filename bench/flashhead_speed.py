"""FlashHead engine speed: per-stage times of a 33-frame chunk, useful frames/s and first-chunk latency.

Full-size models with random weights (speed does not depend on weight values), so it needs no download.
One command, e.g. on a GPU:  python bench/flashhead_speed.py --variant lite --batches 1,8
and a quick CPU check of the script itself:  python bench/flashhead_speed.py --tiny --device cpu
Prints a table, writes JSON (--json) and rewrites the "## FlashHead engine" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLLTXVideo, AutoencoderKLWan
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.engines.flashhead.audio_features import AudioFeatures  # noqa: E402
from avatar.engines.flashhead.pipeline import FlashHeadPipeline, SessionState  # noqa: E402
from avatar.engines.flashhead.transformer import WanModelAudioProject  # noqa: E402
from avatar.engines.flashhead.vae import LtxCodec, WanCodec  # noqa: E402

SECTION = "## FlashHead engine"
FULL = {"dim": 1536, "ffn_dim": 8960, "text_dim": 4096, "freq_dim": 256, "eps": 1e-6, "num_heads": 12, "num_layers": 30}
TINY = {"dim": 64, "ffn_dim": 64, "text_dim": 16, "freq_dim": 32, "eps": 1e-6, "num_heads": 2, "num_layers": 1}
VARIANT_SHAPES = {
    "lite": {"in_dim": 256, "out_dim": 128, "patch_size": (1, 1, 1), "vae_stride": (8, 32, 32)},
    "pro": {"in_dim": 32, "out_dim": 16, "patch_size": (1, 2, 2), "vae_stride": (4, 8, 8)},
}
PREDICTIONS = {
    "bf16 (vs float32)": "tensor cores: transformer step about 3x faster than tf32-less float32",
    "torch.compile transformer": "fuses norm/modulation/rope elementwise work: step 10-30% faster",
    "fused QKV (at load)": "one GEMM instead of three: 1-3% of a step; names stay the checkpoint's",
    "compiled LTX decoder": "spec measured 41 ms eager -> 20 ms compiled per chunk",
    "CUDA graphs (reduce-overhead)": "removes ~750 launches a step: a few ms at batch 1, nothing at batch 8",
    "session batching": "step 23 ms (b1) -> 70 ms (b8) in the spec: about 2.6x the frames per GPU second",
    "frames before re-encode": "first-chunk latency loses the motion re-encode (a few ms)",
    "overlap decode(n) with transformer(n+1)": "impossible within one session (chunk n+1 needs the "
    "re-encoded frames of chunk n); across sessions batching already fills the GPU, so not done",
}


def build_pipeline(variant: str, tiny: bool, device: torch.device, dtype: torch.dtype, size: int) -> FlashHeadPipeline:
    """Random-weight models of the published sizes (or tiny ones), built directly on the device."""
    shapes = dict(VARIANT_SHAPES[variant])
    if tiny:
        shapes["in_dim"], shapes["out_dim"] = (16, 8) if variant == "lite" else (32, 16)
    with torch.device(device):
        transformer = WanModelAudioProject(**(TINY if tiny else FULL), **shapes).to(dtype)
        if variant == "lite":
            channels = (8, 8, 8, 8) if tiny else (128, 256, 512, 512)
            layers = (1, 1, 1, 1, 1) if tiny else (4, 3, 3, 3, 4)
            vae = AutoencoderKLLTXVideo(
                latent_channels=shapes["out_dim"],
                block_out_channels=channels,
                decoder_block_out_channels=channels,
                layers_per_block=layers,
                decoder_layers_per_block=layers,
            )
            codec = LtxCodec(vae.to(dtype))
        else:
            codec = WanCodec(AutoencoderKLWan(base_dim=8 if tiny else 96).to(dtype))
        wav2vec2 = Wav2Vec2Model(Wav2Vec2Config(**({"intermediate_size": 64, "conv_dim": (32,) * 7} if tiny else {})))
    audio = AudioFeatures(wav2vec2, Wav2Vec2FeatureExtractor(), device)
    return FlashHeadPipeline(transformer, codec, audio, device, dtype, size)


class Clock:
    """Wall time of a stage, synchronised so GPU work is counted where it happens."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn: Callable[[], object]) -> tuple[object, float]:
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        return out, (time.perf_counter() - start) * 1000


def chunk_stages(pipeline: FlashHeadPipeline, states: list[SessionState], clock: Clock) -> dict[str, float]:
    """One chunk for a batch of sessions, each stage timed in ms."""
    rng = np.random.default_rng(0)
    for state in states:
        state.audio.append(rng.uniform(-0.3, 0.3, pipeline.layout.new_samples).astype(np.float32))
    context, audio_ms = clock.time(lambda: pipeline.audio_context(states))
    latents, denoise_ms = clock.time(lambda: pipeline.denoise(states, context))
    with torch.no_grad():
        video, decode_ms = clock.time(lambda: pipeline.codec.decode(latents))
        mean = torch.cat([state.colour_stats[0] for state in states])
        std = torch.cat([state.colour_stats[1] for state in states])
        video, colour_ms = clock.time(lambda: pipeline.colour_match(video, (mean, std)))
    _, host_ms = clock.time(lambda: pipeline.new_frames(video))
    _, encode_ms = clock.time(lambda: pipeline.carry_motion(video, states))
    return {
        "audio_features_ms": audio_ms,
        "transformer_step_ms": denoise_ms / 4,
        "vae_decode_ms": decode_ms,
        "colour_match_ms": colour_ms,
        "frames_to_host_ms": host_ms,
        "reencode_ms": encode_ms,
        "first_frames_ms": audio_ms + denoise_ms + decode_ms + colour_ms + host_ms,
        "chunk_ms": audio_ms + denoise_ms + decode_ms + colour_ms + host_ms + encode_ms,
    }


def measure(pipeline: FlashHeadPipeline, batch: int, chunks: int, clock: Clock) -> dict[str, float]:
    """Warm up (compiles), then median stage times over `chunks` steady-state chunks and a fresh first chunk."""
    crop = np.random.default_rng(1).integers(0, 256, (pipeline.size, pipeline.size, 3), dtype=np.uint8)
    states = [pipeline.start(crop, seed) for seed in range(batch)]
    warm_start = time.perf_counter()
    for _ in range(3):
        chunk_stages(pipeline, states, clock)
    warmup_s = time.perf_counter() - warm_start
    if clock.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(clock.device)
    runs = [chunk_stages(pipeline, states, clock) for _ in range(chunks)]
    result = {key: float(np.median([run[key] for run in runs])) for key in runs[0]}
    fresh = [pipeline.start(crop, seed) for seed in range(batch)]
    first = chunk_stages(pipeline, fresh, clock)
    fresh_again = [pipeline.start(crop, seed) for seed in range(batch)]
    first = min(first["first_frames_ms"], chunk_stages(pipeline, fresh_again, clock)["first_frames_ms"])
    result["first_chunk_latency_ms"] = first
    result["useful_fps"] = batch * pipeline.layout.new_frames / (result["chunk_ms"] / 1000)
    result["warmup_s"] = warmup_s
    result["peak_gpu_mem_gib"] = (
        torch.cuda.max_memory_allocated(clock.device) / 2**30 if clock.device.type == "cuda" else 0.0
    )
    return result


def render_section(report: dict) -> str:
    """The markdown section for bench/RESULTS.md."""
    lines = [
        SECTION,
        "",
        f"Command: `{report['command']}`  ",
        f"Device: {report['device']}; torch {report['torch']}; {report['variant']} {report['size']}x{report['size']}, "
        f"4 steps, {report['dtype']}, {report['weights']}. Times are medians per 33-frame chunk "
        f"({report['new_frames']} new frames), per batch of sessions.",
        "",
        "| config | batch | audio ms | DiT ms/step | VAE decode ms | colour ms | to host ms | re-encode ms "
        "| chunk ms | useful fps | first chunk ms | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['config']} | {row['batch']} | failed: {row['error'][:80]} |||||||||| |")
            continue
        lines.append(
            f"| {row['config']} | {row['batch']} | {row['audio_features_ms']:.1f} | {row['transformer_step_ms']:.1f} "
            f"| {row['vae_decode_ms']:.1f} | {row['colour_match_ms']:.1f} | {row['frames_to_host_ms']:.1f} "
            f"| {row['reencode_ms']:.1f} | {row['chunk_ms']:.1f} | {row['useful_fps']:.0f} "
            f"| {row['first_chunk_latency_ms']:.1f} | {row['peak_gpu_mem_gib']:.1f} |"
        )
    lines += ["", "Optimisations (prediction; the measured effect is in the table and the notes below):", ""]
    lines += [f"- {name}: {text}" for name, text in PREDICTIONS.items()]
    if report.get("notes"):
        lines += ["", *report["notes"]]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace our section of RESULTS.md (up to the next '## ' heading) or append it; leave the rest alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + (text[end + 1 :] if end >= 0 else "")
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("lite", "pro"), default="lite")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,8", help="comma-separated session batch sizes (compiled runs)")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--configs", default="eager,compiled", help="eager (b1), compiled, graphs (+ CUDA graphs)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models: checks the script, not the speed")
    parser.add_argument("--json", type=Path, default=Path("bench/out/flashhead_speed.json"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    batches = [int(b) for b in args.batches.split(",")]
    report = {
        "command": "python " + shlex.join(["bench/flashhead_speed.py", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "variant": args.variant,
        "size": args.size,
        "dtype": str(dtype).removeprefix("torch."),
        "weights": "tiny random models (script check only)" if args.tiny else "random full-size weights",
        "rows": [],
    }
    clock = Clock(device)
    for config in args.configs.split(","):
        pipeline = build_pipeline(args.variant, args.tiny, device, dtype, args.size)
        report["new_frames"] = pipeline.layout.new_frames
        if config != "eager":
            pipeline.optimise(compile_models=False)
            if device.type == "cuda":
                mode = "reduce-overhead" if config == "graphs" else None
                pipeline.denoiser = torch.compile(pipeline.transformer, dynamic=False, mode=mode)
                if args.variant == "lite":
                    pipeline.codec.decoder = torch.compile(pipeline.codec.vae.decode, dynamic=False)
                pipeline.colour_match = torch.compile(pipeline.colour_match, dynamic=False)
        for batch in [1] if config == "eager" else batches:
            try:
                row = {"config": config, "batch": batch, **measure(pipeline, batch, args.chunks, clock)}
            except Exception as error:  # one failed configuration must not lose the others' numbers
                row = {"config": config, "batch": batch, "error": f"{type(error).__name__}: {error}"}
            report["rows"].append(row)
            print(json.dumps(row), flush=True)
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1))
        del pipeline
        if device.type == "cuda":
            torch.cuda.empty_cache()
    section = render_section(report)
    print(section)
    write_section(args.results, section)


if __name__ == "__main__":
    main()
