"""FlashHead engine speed: per-stage times of a 33-frame chunk, useful frames/s and first-chunk latency.

Full-size models with random weights (speed does not depend on weight values), so it needs no download.
One command, e.g. on a GPU:  python bench/flashhead_speed.py --variant lite --configs engine --batches 1,8
and a quick CPU check of the script itself:  python bench/flashhead_speed.py --tiny --device cpu --configs eager,engine
Configs: eager / compiled / graphs time the pipeline's stages; engine goes through FlashHeadEngine as the app
does (its GPU thread, CUDA graphs, compiled VAE and wav2vec2, pinned host copies; bf16, FP8 off as by default)
and adds its end-to-end chunk period and first-chunk latency (a fresh batch's first step -> its frames) through
`engine.draw`; engine-fp8 is the same with AVATAR_FLASHHEAD_FP8=on. quality compares FP8 with bf16 on the same
seeded weights and inputs (the transformer's relative error, PSNR of the frames of two chunks); transformer times
a few compiled blocks (--layers) in each of --variants (STEP_VARIANTS: the FFN's GELU apart as before or in its
product's epilogue as now, inductor settings, cuDNN's attention first, FP8) and profiles those of --profile by kernel
class, against their matrix products alone; decode times the eager LTX decode with cuDNN's algorithm search off and
on. --padded compiles the engine for each of --batches alone (the app's padded batching: one compile for one size).
Prints a table, writes JSON (--json) and rewrites the "## FlashHead engine" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLLTXVideo, AutoencoderKLWan, ModelMixin
from torch.autograd import DeviceType
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.engines.base import FaceCrop, SpeechChunk  # noqa: E402
from avatar.engines.flashhead.ahead import relative_error  # noqa: E402
from avatar.engines.flashhead.audio_features import AudioFeatures  # noqa: E402
from avatar.engines.flashhead.compiled import compiled  # noqa: E402
from avatar.engines.flashhead.engine import FlashHeadEngine, batched, compute_dtype, optimise_behind  # noqa: E402
from avatar.engines.flashhead.fp8 import fp8_supported  # noqa: E402
from avatar.engines.flashhead.pipeline import ChunkLayout, FlashHeadPipeline, FlashHeadState  # noqa: E402
from avatar.engines.flashhead.settings import FlashHeadSettings  # noqa: E402
from avatar.engines.flashhead.transformer import WanModelAudioProject  # noqa: E402
from avatar.engines.flashhead.vae import LtxCodec, WanCodec  # noqa: E402
from avatar.engines.scheduler import BatchScheduler  # noqa: E402
from avatar.speech.utterance import Utterance  # noqa: E402
from bench.results import write_section  # noqa: E402

SECTION = "FlashHead engine"
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
    "engine with CUDA graphs on its GPU thread": "engine b1 first chunk 139 -> ~70 ms (the graphs row of the bench)",
    "pinned staging + side-stream host copy": "b8 to-host 118 -> ~10 ms (151 MB at PCIe speed, plus a ~15 ms "
    "host memcpy out of the staging buffer); in the engine the copy also overlaps the re-encode",
    "compiled LTX encoder": "re-encode b8 77 -> ~35 ms (the decoder gained 2.2x from compiling)",
    "FP8 block products (row-wise scales, quantisation fused by compile)": "GEMMs 1.5x faster (measured alone), "
    "56% of a b8 step: step 58.5 -> ~48 ms at b8 (-18%), 9.4 -> ~8.5 ms at b1; b8 useful fps 421 -> ~470",
    "wav2vec2 compiled as one CUDA graph": "audio stage b1 8.2 -> ~3 ms (first chunk 72 -> ~67 ms), b8 15.3 -> ~8 ms",
    "cuDNN algorithm search (cudnn.benchmark)": "LTX decode 0-20% faster: its 3D convolutions are 90% of it",
    "the FFN's GELU in its product's epilogue (cuBLASLt bias+GELU, torch._addmm_activation)": "at 8 Lite sessions "
    "the GELU kernel (0.44 ms of 4 blocks: 367 MB a block read and written) goes; the first FFN product writes the "
    "same bytes with the GELU applied, predicted under 3% slower than the plain product: 4 blocks 7.79 -> ~7.40 ms "
    "(-5%), profile 7.33 -> ~6.95 ms, 1.51x -> ~1.43x its products alone; b1 1.44 -> ~1.40 ms; 30 blocks -3.3 ms a "
    "step, b8 useful fps 438 -> ~451 (+3%); relative error against the GELU apart ~1e-3 (one bf16 rounding fewer)",
    "the q/k RMSNorm and rope in one Triton kernel (norm_rope.qk_norm_rope)": "at 8 Lite sessions (H100) inductor's "
    "kernel for them took 0.440 ms of 4 blocks, 126 MB a block at 1.15 TB/s (38% of the copy rate); one pass "
    "holding each token's q or k in registers moves the same bytes at ~2.4 TB/s (80%): ~0.21 ms, so 4 blocks "
    "8.07 -> ~7.84 ms (-2.9%), profile 7.04 -> ~6.81 ms, 1.43x -> ~1.38x its products alone; b1 1.56 -> ~1.53 ms; 30 "
    "blocks -1.7 ms a step, b8 useful fps 442 -> ~449 (+1.6%); relative error against inductor's ~1e-3 (the same "
    "roundings, sums in another order)",
    "the LTX decoder's 3D convolutions channels-last (torch.channels_last_3d)": "cuDNN's bf16 convolutions work in "
    "NDHWC; in NCDHW each of the decoder's convolutions adds layout transposes around its product: eager decode "
    "at b8 -10 to -20%",
    "inductor's coordinate-descent tuning of its kernels": "the 1.3 ms of norm, modulation, rope and residual "
    "kernels left in 4 blocks at b8 run at about 1.8 TB/s of the H200's 4.3; tuned block sizes: -5 to -15% of them, "
    "4 blocks ~7.40 -> ~7.25 ms; bit-identical output",
    "engine batching 8/16/32": "chunk at b8 ~ 15 audio + 236 DiT + 138 decode + 13 colour + 35 re-encode + ~15 "
    "copy = ~450 ms -> ~425 useful fps; b16/b32 about the same per session: 500 not reached while decode is 17 ms "
    "a session",
}


def transformer_config(variant: str, tiny: bool) -> dict:
    """The transformer's constructor arguments: the published sizes of `variant`, or tiny ones of its layout."""
    shapes = dict(VARIANT_SHAPES[variant])
    if tiny:
        shapes["in_dim"], shapes["out_dim"] = (16, 8) if variant == "lite" else (32, 16)
    return {**(TINY if tiny else FULL), **shapes}


def random_models(variant: str, tiny: bool) -> tuple[WanModelAudioProject, ModelMixin, Wav2Vec2Model]:
    """Transformer, VAE and wav2vec2 of the published sizes (or tiny ones), random weights, on the current device."""
    config = transformer_config(variant, tiny)
    transformer = WanModelAudioProject(**config)
    if variant == "lite":
        channels = (8, 8, 8, 8) if tiny else (128, 256, 512, 512)
        layers = (1, 1, 1, 1, 1) if tiny else (4, 3, 3, 3, 4)
        vae = AutoencoderKLLTXVideo(
            latent_channels=config["out_dim"],
            block_out_channels=channels,
            decoder_block_out_channels=channels,
            layers_per_block=layers,
            decoder_layers_per_block=layers,
        )
    else:
        vae = AutoencoderKLWan(base_dim=8 if tiny else 96)
    wav2vec2 = Wav2Vec2Model(Wav2Vec2Config(**({"intermediate_size": 64, "conv_dim": (32,) * 7} if tiny else {})))
    return transformer, vae, wav2vec2


def build_pipeline(variant: str, tiny: bool, device: torch.device, dtype: torch.dtype, size: int) -> FlashHeadPipeline:
    """Random-weight models of the published sizes (or tiny ones), built directly on the device."""
    with torch.device(device):
        transformer, vae, wav2vec2 = random_models(variant, tiny)
    codec = LtxCodec(vae.to(dtype)) if variant == "lite" else WanCodec(vae.to(dtype))
    audio = AudioFeatures(wav2vec2, Wav2Vec2FeatureExtractor(), device)
    return FlashHeadPipeline(transformer.to(dtype), codec, audio, device, dtype, size)


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


def chunk_stages(pipeline: FlashHeadPipeline, states: list[FlashHeadState], clock: Clock) -> dict[str, float]:
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


def face_from_crop(crop: np.ndarray) -> FaceCrop:
    """A face made of a square crop alone (no landmarks): all FlashHead looks at."""
    return FaceCrop(crop, np.zeros((478, 2), np.float32))


def bench_face(size: int, seed: int) -> FaceCrop:
    """A random-pixel face: speed does not depend on the picture."""
    return face_from_crop(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


def bench_speech(samples: int, seed: int) -> Utterance:
    return Utterance(
        text="bench",
        audio=np.random.default_rng(seed).uniform(-0.3, 0.3, samples).astype(np.float32),
        sample_rate=16_000,
    )


def measure_engine(scheduler: BatchScheduler[FlashHeadEngine], batch: int, chunks: int) -> dict[str, float]:
    """Through the engine's batched step on its GPU thread, as the app drives it: first-chunk latency of fresh
    sessions and the steady chunk period."""
    engine = scheduler.engine
    pipeline = engine.pipeline
    faces = [bench_face(pipeline.size, seed) for seed in range(batch)]
    step = pipeline.layout.new_samples
    speech = [SpeechChunk(bench_speech(step, seed).audio, pipeline.layout.new_frames) for seed in range(batch)]

    def draw_step(states: list[FlashHeadState]) -> list[list[np.ndarray]]:
        return list(engine.draw(states, speech))

    firsts = []
    for _ in range(2):
        fresh = [scheduler.open(face) for face in faces]
        start = time.perf_counter()
        scheduler.call(draw_step, fresh)
        firsts.append((time.perf_counter() - start) * 1000)
    states = [scheduler.open(face) for face in faces]
    periods = []
    for _ in range(chunks + 1):
        start = time.perf_counter()
        scheduler.call(draw_step, states)
        periods.append((time.perf_counter() - start) * 1000)
    period = float(np.median(periods))
    return {
        "engine_first_chunk_ms": min(firsts),
        "engine_chunk_ms": period,
        "engine_useful_fps": batch * pipeline.layout.new_frames / (period / 1000),
    }


def psnr(frames: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio of uint8 frames against the reference frames, in dB."""
    mse = float(np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def two_chunks(pipeline: FlashHeadPipeline, batch: int) -> np.ndarray:
    """The frames of two chunks (a first and a later one) of `batch` seeded sessions, eager, as uint8."""
    crop = np.random.default_rng(1).integers(0, 256, (pipeline.size, pipeline.size, 3), dtype=np.uint8)
    states = [pipeline.start(crop, seed) for seed in range(batch)]
    rng = np.random.default_rng(2)
    frames = []
    for _ in range(2):
        audio = [rng.uniform(-0.3, 0.3, pipeline.layout.new_samples).astype(np.float32) for _ in states]
        frames.append(np.stack(pipeline.render(states, audio)))
    return np.concatenate(frames, axis=1)


def fp8_quality(variant: str, tiny: bool, device: torch.device, dtype: torch.dtype, size: int) -> dict[str, float]:
    """FP8 against bf16 on the same seeded random weights and inputs: the transformer output's relative error and
    the PSNR of two chunks' frames (random weights, so this is how far the numbers move, not how a real face looks)."""
    torch.manual_seed(0)
    pipeline = build_pipeline(variant, tiny, device, dtype, size)
    pipeline.optimise(compile_models=False)
    generator = torch.Generator(device).manual_seed(3)
    latent = pipeline.codec.encode(
        pipeline.reference_pixels(np.full((size, size, 3), 128, np.uint8)).expand(-1, -1, 33, -1, -1).to(dtype)
    )
    shape = (2, *latent.shape[1:])
    inputs = {
        "x": torch.randn(shape, generator=generator, device=device, dtype=dtype),
        "y": torch.randn(shape, generator=generator, device=device, dtype=dtype),
        "timestep": torch.tensor([999.0, 500.0], device=device),
        "context": torch.randn(2, 33, 5, 12, 768, generator=generator, device=device, dtype=dtype),
    }
    with torch.no_grad():
        reference_out = pipeline.transformer(**inputs).float()
        reference_frames = two_chunks(pipeline, 2)
        pipeline.transformer.use_fp8()
        fp8_out = pipeline.transformer(**inputs).float()
        fp8_frames = two_chunks(pipeline, 2)
    return {
        "transformer_relative_error": relative_error(fp8_out, reference_out),
        "frames_psnr_db": psnr(fp8_frames, reference_frames),
        "frames_max_level_difference": int(np.abs(fp8_frames.astype(int) - reference_frames.astype(int)).max()),
    }


# Attention backends the transformer config compares: SDPA's own choice, and cuDNN's fused attention first.
ATTENTION_ORDERS = {
    "sdpa": None,
    "cudnn": [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH],
}


@dataclass(frozen=True)
class StepVariant:
    """One way to run the transformer config's blocks: the FFN's GELU in its product's epilogue or apart (as before
    transformer.linear_gelu), the q/k norm and rope in inductor's kernels or in one of ours (norm_rope), FP8
    products, the attention order, and inductor settings patched while it compiles."""

    gelu_epilogue: bool = True
    fused_norm_rope: bool = False
    fp8: bool = False
    attention: str = "sdpa"
    inductor: tuple[tuple[str, object], ...] = ()


# The transformer config's variants (--variants picks some); the first one picked is the others' reference.
STEP_VARIANTS = {
    "bf16-gelu-apart": StepVariant(gelu_epilogue=False),
    "bf16": StepVariant(),
    "bf16-norm-rope-kernel": StepVariant(fused_norm_rope=True),
    "bf16-coordinate-descent": StepVariant(inductor=(("coordinate_descent_tuning", True),)),
    "bf16-cudnn-attention": StepVariant(attention="cudnn"),
    "fp8": StepVariant(fp8=True),
}
# Kernel classes of the profile, tried in this order. Inductor's fused kernels come first: those feeding
# attention carry "scaled_dot_product" in their names but are norms, rope and copies.
KERNEL_CLASSES = {
    "fused elementwise (triton)": ("triton",),
    "attention": ("flash", "fmha", "sdpa", "attention", "attn"),
    "matrix products": ("gemm", "nvjet", "cutlass", "xmma", "addmm", "aten::mm", "scaled_mm", "splitk"),
}


def kernel_class(name: str) -> str:
    """The class of a kernel (or, on a CPU, an aten op) by its name, the first of KERNEL_CLASSES that matches;
    "other" when none does."""
    lowered = name.lower()
    if "triton_tem" in lowered:  # inductor's own matrix-product templates (max-autotune), epilogues fused in
        return "matrix products"
    return next((group for group, words in KERNEL_CLASSES.items() if any(w in lowered for w in words)), "other")


def step_profile(step: Callable[[], object], device: torch.device, calls: int = 3) -> tuple[dict[str, float], dict]:
    """Device time of one call of `step` by kernel class (ms), from torch's profiler, the top kernels printed; and
    every kernel's time (ms) and launches per call."""
    activity = torch.profiler.ProfilerActivity.CUDA if device.type == "cuda" else torch.profiler.ProfilerActivity.CPU
    with torch.profiler.profile(activities=[activity]) as profile:
        for _ in range(calls):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    wanted = DeviceType.CUDA if device.type == "cuda" else DeviceType.CPU
    kernels, launches = {}, {}
    for event in profile.key_averages():
        if event.device_type == wanted:
            own = event.self_device_time_total if device.type == "cuda" else event.self_cpu_time_total
            kernels[event.key] = own / 1000 / calls
            launches[event.key] = event.count / calls
    for name, ms in sorted(kernels.items(), key=lambda item: -item[1])[:12]:
        print(f"  {ms:8.3f} ms  {kernel_class(name):28s} {name[:110]}", flush=True)
    classes = dict.fromkeys([*KERNEL_CLASSES, "other"], 0.0)
    for name, ms in kernels.items():
        classes[kernel_class(name)] += ms
    listing = {
        name: {"ms": ms, "launches": launches[name], "class": kernel_class(name)} for name, ms in kernels.items()
    }
    return {f"profile_{group.split(' (')[0].replace(' ', '_')}_ms": ms for group, ms in classes.items()}, listing


def seeded_transformer(config: dict, device: torch.device, dtype: torch.dtype) -> WanModelAudioProject:
    """A frozen transformer of `config` with fused q/k/v, its random weights the same on every call."""
    torch.manual_seed(0)
    with torch.device(device):
        transformer = WanModelAudioProject(**config).to(dtype).eval().requires_grad_(False)
    transformer.fuse_qkv()
    return transformer


def variant_transformer(
    config: dict, variant: StepVariant, device: torch.device, dtype: torch.dtype
) -> tuple[WanModelAudioProject, Callable[[], contextlib.AbstractContextManager[None]]]:
    """`seeded_transformer` set up as `variant` says, and a context for its calls (attention order, inductor
    settings: inductor reads them when a call compiles)."""
    transformer = seeded_transformer(config, device, dtype)
    for block in transformer.blocks:
        block.gelu_epilogue = variant.gelu_epilogue
        block.self_attn.fused_norm_rope = variant.fused_norm_rope
    if variant.fp8:
        transformer.use_fp8()
    order = ATTENTION_ORDERS[variant.attention]

    @contextlib.contextmanager
    def context() -> Iterator[None]:
        with torch._inductor.config.patch(dict(variant.inductor)):
            with sdpa_kernel(order, set_priority=True) if order else contextlib.nullcontext():
                yield

    return transformer, context


def transformer_steps(
    variant: str,
    tiny: bool,
    layers: int,
    batches: list[int],
    clock: Clock,
    dtype: torch.dtype,
    names: list[str],
    profiled: list[str],
    deadline: float,
    kernels_path: Path,
) -> dict[str, float]:
    """One compiled step (CUDA graphs on a GPU) of a transformer of `layers` blocks at each batch size, for each of
    the STEP_VARIANTS `names`, with its first call's seconds (the compile) and its relative error against the first
    of them at the largest batch; then, for each of `profiled`, where a step at the largest batch goes, by kernel
    class, from a profile (compiled without CUDA graphs, whose kernels the profiler cannot see into), with the
    step's ratio to its matrix products alone; every profiled kernel goes to `kernels_path`. What a lever saves per
    block, without compiling all 30 blocks for each variant. A variant not begun by `deadline` (perf_counter
    seconds) is skipped."""
    config = dict(transformer_config(variant, tiny), num_layers=layers)
    latent_frames = 1 + 32 // config["vae_stride"][0]
    side = 512 // config["vae_stride"][1] if not tiny else 2
    mode = "reduce-overhead" if clock.device.type == "cuda" else None
    inputs = {}
    for batch in batches:
        generator = torch.Generator(clock.device).manual_seed(batch)
        latents = torch.randn(
            batch, config["out_dim"], latent_frames, side, side, generator=generator, device=clock.device, dtype=dtype
        )
        context = torch.randn(batch, 33, 5, 12, 768, generator=generator, device=clock.device, dtype=dtype)
        inputs[batch] = (latents, torch.full((batch,), 999.0, device=clock.device), context, latents)
    rows, outputs, listings = {"layers": layers}, {}, {}
    largest = max(batches)
    for name in [*names, *(name for name in profiled if name not in names)]:
        if time.perf_counter() > deadline:
            print(f"{name}: skipped, past the deadline", flush=True)
            continue
        variant_settings = STEP_VARIANTS[name]
        if name in names:
            torch._dynamo.reset()  # each variant compiles afresh, well inside dynamo's recompile limit
            transformer, settings = variant_transformer(config, variant_settings, clock.device, dtype)
            step = compiled(transformer, any_batch=True, mode=mode)
            for batch in batches:
                rows |= time_step(step, settings, inputs[batch], clock, f"b{batch}_{name}")
            with torch.no_grad(), settings():
                torch.compiler.cudagraph_mark_step_begin()
                outputs[name] = step(*inputs[largest]).clone()
            if name != names[0] and names[0] in outputs:
                rows[f"b{largest}_{name}_relative_error"] = relative_error(outputs[name], outputs[names[0]])
            del transformer, step
        if name in profiled and time.perf_counter() <= deadline:
            torch._dynamo.reset()
            transformer, settings = variant_transformer(config, variant_settings, clock.device, dtype)
            graph = compiled(transformer)
            with torch.no_grad(), settings():
                for _ in range(3):
                    graph(*inputs[largest])
                print(f"profile of {name} at b{largest}:", flush=True)
                classes, listings[name] = step_profile(lambda graph=graph: graph(*inputs[largest]), clock.device)
            rows |= {f"b{largest}_{name}_{key}": ms for key, ms in classes.items()}
            products, step_ms = classes["profile_matrix_products_ms"], rows.get(f"b{largest}_{name}_step_ms")
            if products and step_ms:
                rows[f"b{largest}_{name}_step_over_products"] = step_ms / products
            kernels_path.parent.mkdir(parents=True, exist_ok=True)
            kernels_path.write_text(json.dumps(listings, indent=1))
            del transformer, graph
        print(json.dumps(rows), flush=True)  # what a call cut short still reports
    return rows


def time_step(
    step: Callable[..., torch.Tensor],
    settings: Callable[[], contextlib.AbstractContextManager[None]],
    args: tuple,
    clock: Clock,
    key: str,
) -> dict[str, float]:
    """A compiled step's first call (its compile, in seconds) and the median of its later calls (ms)."""

    def call() -> torch.Tensor:
        torch.compiler.cudagraph_mark_step_begin()
        with settings():
            return step(*args)

    with torch.no_grad():
        first_s = clock.time(call)[1] / 1000
        times = [clock.time(call)[1] for _ in range(12)]
    print(f"{key}: {np.median(times[2:]):.3f} ms (first call {first_s:.1f} s)", flush=True)
    return {f"{key}_step_ms": float(np.median(times[2:])), f"{key}_first_call_s": first_s}


def decode_search(pipeline: FlashHeadPipeline, batches: list[int], clock: Clock) -> dict[str, float]:
    """The eager VAE decode of a chunk at each batch size, with cuDNN's algorithm search off and on, in the default
    memory layout and channels-last (weights and latents)."""
    rows = {}
    frames = pipeline.layout.frames
    latent_frames = 1 + (frames - 1) // pipeline.transformer.frames_per_latent
    side = pipeline.size // pipeline.transformer.config.vae_stride[1]
    channels = pipeline.transformer.config.out_dim
    for layout in (torch.contiguous_format, torch.channels_last_3d):
        pipeline.codec.vae.to(memory_format=layout)
        for search in (False, True):
            torch.backends.cudnn.benchmark = search
            for batch in batches:
                latents = torch.randn(
                    batch, channels, latent_frames, side, side, device=clock.device, dtype=pipeline.dtype
                ).to(memory_format=layout)
                times = [clock.time(lambda latents=latents: pipeline.codec.decode(latents))[1] for _ in range(5)]
                name = f"decode_b{batch}_{'search' if search else 'heuristic'}_{str(layout).removeprefix('torch.')}"
                rows[f"{name}_ms"] = float(np.median(times[2:]))
                print(f"{name}: {rows[f'{name}_ms']:.1f} ms", flush=True)
    torch.backends.cudnn.benchmark = False
    pipeline.codec.vae.to(memory_format=torch.contiguous_format)
    return rows


def render_section(report: dict) -> str:
    """The markdown section for bench/RESULTS.md."""
    lines = [
        f"Command: `{report['command']}`  ",
        f"Device: {report['device']}; torch {report['torch']}; {report['variant']} {report['size']}x{report['size']}, "
        f"4 steps, {report['dtype']}, {report['weights']}. Times are medians per 33-frame chunk "
        f"({report['new_frames']} new frames), per batch of sessions.",
        "",
        "| config | batch | audio ms | DiT ms/step | VAE decode ms | colour ms | to host ms | re-encode ms "
        "| chunk ms | useful fps | first chunk ms | engine chunk ms | engine useful fps | engine first chunk ms "
        "| peak GiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["rows"]:
        if "error" in row:
            lines.append(f"| {row['config']} | {row['batch']} | failed: {row['error'][:80]} ||||||||||||| |")
            continue
        if row["config"] in ("transformer", "quality", "decode"):
            continue
        lines.append(
            f"| {row['config']} | {row['batch']} | {row['audio_features_ms']:.1f} | {row['transformer_step_ms']:.1f} "
            f"| {row['vae_decode_ms']:.1f} | {row['colour_match_ms']:.1f} | {row['frames_to_host_ms']:.1f} "
            f"| {row['reencode_ms']:.1f} | {row['chunk_ms']:.1f} | {row['useful_fps']:.0f} "
            f"| {row['first_chunk_latency_ms']:.1f} | {engine_cells(row)} | {row['peak_gpu_mem_gib']:.1f} |"
        )
    for row in report["rows"]:
        if row["config"] in ("transformer", "quality", "decode") and "error" not in row:
            values = ", ".join(f"{key} {value:.4g}" for key, value in row.items() if key not in ("config", "batch"))
            lines += ["", f"{row['config']}: {values}"]
    lines += ["", "Optimisations (prediction; the measured effect is in the table and the notes below):", ""]
    lines += [f"- {name}: {text}" for name, text in PREDICTIONS.items()]
    if report.get("notes"):
        lines += ["", *report["notes"]]
    return "\n".join(lines) + "\n"


def engine_cells(row: dict) -> str:
    """The engine's own end-to-end columns, blank for the stage-only configs."""
    if "engine_chunk_ms" not in row:
        return "| |"
    return f"{row['engine_chunk_ms']:.1f} | {row['engine_useful_fps']:.0f} | {row['engine_first_chunk_ms']:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("lite", "pro"), default="lite")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="1,8", help="comma-separated session batch sizes (compiled runs)")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument(
        "--configs", default="eager,compiled,engine", help="eager (b1), compiled, graphs (+ CUDA graphs), engine"
    )
    parser.add_argument("--layers", type=int, default=4, help="blocks of the transformer config's model")
    parser.add_argument("--variants", default="bf16-gelu-apart,bf16", help="the transformer config's STEP_VARIANTS")
    parser.add_argument("--profile", default="bf16-gelu-apart,bf16", help="variants the transformer config profiles")
    parser.add_argument(
        "--padded", action="store_true", help="engine: each of --batches compiled on its own (padded batching)"
    )
    parser.add_argument(
        "--deadline",
        type=float,
        default=float("inf"),
        help="seconds after which configs and variants not yet begun are skipped",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny random models: checks the script, not the speed")
    parser.add_argument("--json", type=Path, default=Path("bench/out/flashhead_speed.json"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()

    deadline = time.perf_counter() + args.deadline
    device = torch.device(args.device)
    dtype = compute_dtype(device)
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
        "new_frames": ChunkLayout.for_stride(VARIANT_SHAPES[args.variant]["vae_stride"][0]).new_frames,
    }
    clock = Clock(device)

    def record(row: dict) -> None:
        """Keep a row: in the report, printed, and in the JSON at once (a run cut short keeps what it measured)."""
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))

    for config in args.configs.split(","):
        if time.perf_counter() > deadline:
            record({"config": config, "batch": 0, "error": "skipped: past the --deadline"})
            continue
        if config == "transformer":
            kernels = args.json.with_name(args.json.stem + "_kernels.json")
            names, profiled = args.variants.split(","), [name for name in args.profile.split(",") if name]
            steps = transformer_steps(
                args.variant, args.tiny, args.layers, batches, clock, dtype, names, profiled, deadline, kernels
            )
            record({"config": config, "batch": 0, **steps})
            continue
        if config == "quality":
            record({"config": config, "batch": 2, **fp8_quality(args.variant, args.tiny, device, dtype, args.size)})
            continue
        pipeline = build_pipeline(args.variant, args.tiny, device, dtype, args.size)
        if config == "decode":
            record({"config": config, "batch": 0, **decode_search(pipeline, batches, clock)})
            continue
        engine = batched(FlashHeadEngine(pipeline, args.variant), sessions=1) if config.startswith("engine") else None
        if engine is not None:
            on_gpu = device.type == "cuda"
            fp8 = FlashHeadSettings(fp8="on" if config == "engine-fp8" else "off").wants_fp8(fp8_supported(device))
            optimise_behind(engine, on_gpu, sizes=tuple(batches) if args.padded else None, fp8=on_gpu and fp8)
        elif config != "eager":
            pipeline.optimise(compile_models=False)
            if device.type == "cuda":
                mode = "reduce-overhead" if config == "graphs" else None
                pipeline.denoiser = torch.compile(pipeline.transformer, dynamic=False, mode=mode)
                if args.variant == "lite":
                    pipeline.codec.decoder = torch.compile(pipeline.codec.vae.decode, dynamic=False)
                pipeline.colour_match = torch.compile(pipeline.colour_match, dynamic=False)
        for batch in [1] if config == "eager" else batches:
            try:
                if engine is None:
                    row = {"config": config, "batch": batch, **measure(pipeline, batch, args.chunks, clock)}
                else:
                    # Stage times on the engine's GPU thread, where its CUDA graphs live.
                    stages = engine.call(measure, pipeline, batch, args.chunks, clock)
                    row = {"config": config, "batch": batch, **stages, **measure_engine(engine, batch, args.chunks)}
            except Exception as error:  # one failed configuration must not lose the others' numbers
                row = {"config": config, "batch": batch, "error": f"{type(error).__name__}: {error}"}
            record(row)
        del pipeline, engine
        if device.type == "cuda":
            torch.cuda.empty_cache()
    section = render_section(report)
    print(section)
    write_section(SECTION, section, args.results)


if __name__ == "__main__":
    main()
