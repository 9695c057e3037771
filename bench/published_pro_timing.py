"""The published FlashHead Pro pipeline's time per chunk at batch 1 on this GPU: the baseline for Pro speed ratios.

Times, with random weights in bf16 (speed does not depend on weight values), each stage of one 33-frame chunk
as the published pipeline runs it, as the median of several runs after warm-up calls:
- transformer: the published `WanModelAudioProject` (imported from `--reference`, the folder holding
  published_flash_head_model.py and its xfuser stand-in) at Pro's sizes, `torch.compile`d as published
  (plain `torch.compile(model)`); one of the 4 sampling steps on latents 16 x 9 x 64 x 64 with the reference
  latents beside them and the audio context (1, 33, 5, 12, 768). Its eager step is timed too, for comparison.
- VAE decode: diffusers' AutoencoderKLWan (base_dim 96, z_dim 16), `torch.compile(vae.decode)` as published,
  recompiles, graph breaks and eager fallbacks included (that is the published behaviour); eager for comparison.
- motion re-encode: the chunk's last 5 frames (Pro's motion context) through `torch.compile(vae.encode)`.
- audio: transformers' Wav2Vec2Model (base layout) over the rolling 8 s context, all hidden states.
chunk_ms = 4 steps + decode + re-encode + audio; useful_fps = 28 new frames / chunk. The colour match and the
host copy are left out (a few ms). Each stage also reports its first call (compile included) and the graphs and
graph breaks dynamo made for it. Prints JSON and writes it to --json (default $OUT/published_pro_timing.json)
after every stage, so a run cut short still leaves what it measured.

    python3 bench/published_pro_timing.py --reference REF

and a quick check of the script on a CPU, with tiny models:  python bench/published_pro_timing.py --reference REF --tiny
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from torch._dynamo.utils import counters
from transformers import Wav2Vec2Config, Wav2Vec2Model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.engines.flashhead.pipeline import ChunkLayout  # noqa: E402
from bench.flashhead_speed import FULL, VARIANT_SHAPES  # noqa: E402

STAGES = ("dit", "decode", "encode", "audio")
STEPS = 4
AUDIO_SECONDS = 8
PRO = {**FULL, **VARIANT_SHAPES["pro"], "has_image_input": False}
# 33 frames a chunk: Pro's motion context (5 frames) and 28 new ones.
LAYOUT = ChunkLayout.for_stride(PRO["vae_stride"][0])
# The published audio adapter projects to 1536 wide tokens, so the tiny model keeps that width.
TINY_PRO = {**PRO, "ffn_dim": 64, "text_dim": 16, "freq_dim": 32, "num_layers": 1}
WAN = {"base_dim": 96, "z_dim": 16}
TINY_WAN = {"base_dim": 4, "z_dim": 16, "dim_mult": [1, 1, 1], "num_res_blocks": 0, "temperal_downsample": [True, True]}
TINY_WAV2VEC2 = {"intermediate_size": 64, "conv_dim": (32,) * 7}


class Sizes:
    """The shapes of one Pro chunk: full (512 x 512) or tiny (a check of the script on a CPU)."""

    def __init__(self, tiny: bool) -> None:
        self.latent = 4 if tiny else 64  # latent height and width
        self.pixels = 4 * self.latent if tiny else 8 * self.latent  # the tiny VAE has 2 spatial stages, not 3
        self.latent_frames = 9
        self.frames = 33
        self.audio_samples = AUDIO_SECONDS * 16000


class Timer:
    """Medians of synchronised wall times, after warm-up calls (which absorb compiles and recompiles)."""

    def __init__(self, device: torch.device, runs: int, warm: int) -> None:
        self.device, self.runs, self.warm = device, runs, warm

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def once_ms(self, fn: Callable[[], object]) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return (time.perf_counter() - start) * 1000

    def stage(self, fn: Callable[[], object]) -> dict[str, float]:
        """First call (compile included), then the median of `runs` calls after `warm` more; dynamo's counts."""
        graphs, breaks = counters["stats"]["unique_graphs"], sum(counters["graph_break"].values())
        first = self.once_ms(fn)
        for _ in range(self.warm):
            fn()
        median = statistics.median(self.once_ms(fn) for _ in range(self.runs))
        return {
            "ms": median,
            "first_call_s": first / 1000,
            "graphs": counters["stats"]["unique_graphs"] - graphs,
            "graph_breaks": sum(counters["graph_break"].values()) - breaks,
        }

    def eager(self, fn: Callable[[], object]) -> float:
        for _ in range(self.warm):
            fn()
        return statistics.median(self.once_ms(fn) for _ in range(self.runs))


def published_transformer(reference: Path) -> type[torch.nn.Module]:
    """`WanModelAudioProject` from the published model file in `reference` (its xfuser stand-in beside it)."""
    if not (reference / "published_flash_head_model.py").is_file():
        raise SystemExit(f"--reference {reference}: no published_flash_head_model.py there")
    sys.path.insert(0, str(reference.resolve()))
    from published_flash_head_model import WanModelAudioProject

    return WanModelAudioProject


def time_transformer(out: dict, reference: Path, sizes: Sizes, tiny: bool, timer: Timer, device, dtype) -> None:
    model_class = published_transformer(reference)
    with torch.device(device):
        model = model_class(**(TINY_PRO if tiny else PRO)).to(dtype).eval().requires_grad_(False)
    latents = (1, PRO["out_dim"], sizes.latent_frames, sizes.latent, sizes.latent)
    x = torch.randn(latents, device=device, dtype=dtype)
    y = torch.randn(latents, device=device, dtype=dtype)
    context = torch.randn(1, sizes.frames, 5, 12, 768, device=device, dtype=dtype)
    timestep = torch.tensor([999.0], device=device)
    out["dit_step_eager_ms"] = timer.eager(lambda: model(x=x, timestep=timestep, context=context, y=y))
    graph = torch.compile(model)
    stage = timer.stage(lambda: graph(x=x, timestep=timestep, context=context, y=y))
    out["dit_step_compiled_ms"] = stage.pop("ms")
    out["dit_compile"] = stage


def wan_vae(tiny: bool, device, dtype) -> AutoencoderKLWan:
    with torch.device(device):
        return AutoencoderKLWan(**(TINY_WAN if tiny else WAN)).to(dtype).eval().requires_grad_(False)


def time_decode(out: dict, sizes: Sizes, tiny: bool, timer: Timer, device, dtype, save: Callable[[], None]) -> None:
    """The eager decode, saved at once (the compiled one's first call can take minutes), then the compiled one."""
    vae = wan_vae(tiny, device, dtype)
    latents = torch.randn(1, WAN["z_dim"], sizes.latent_frames, sizes.latent, sizes.latent, device=device, dtype=dtype)
    out["vae_decode_eager_ms"] = timer.eager(lambda: vae.decode(latents))
    save()
    decode = torch.compile(vae.decode)
    stage = timer.stage(lambda: decode(latents))
    out["vae_decode_compiled_ms"] = stage.pop("ms")
    out["vae_decode_compile"] = stage


def time_encode(out: dict, sizes: Sizes, tiny: bool, timer: Timer, device, dtype) -> None:
    vae = wan_vae(tiny, device, dtype)
    frames = torch.randn(1, 3, LAYOUT.motion_frames, sizes.pixels, sizes.pixels, device=device, dtype=dtype)
    encode = torch.compile(vae.encode)
    stage = timer.stage(lambda: encode(frames))
    out["vae_encode_motion_compiled_ms"] = stage.pop("ms")
    out["vae_encode_motion_compile"] = stage


def time_audio(out: dict, sizes: Sizes, tiny: bool, timer: Timer, device) -> None:
    with torch.device(device):
        wav2vec2 = Wav2Vec2Model(Wav2Vec2Config(**(TINY_WAV2VEC2 if tiny else {}))).eval().requires_grad_(False)
    audio = torch.randn(1, sizes.audio_samples, device=device)
    out["wav2vec2_8s_ms"] = timer.eager(lambda: wav2vec2(audio, output_hidden_states=True))


def chunk_totals(out: dict) -> None:
    """chunk_ms and useful_fps, once every stage has a time."""
    parts = ("dit_step_compiled_ms", "vae_decode_compiled_ms", "vae_encode_motion_compiled_ms", "wav2vec2_8s_ms")
    if all(part in out for part in parts):
        chunk = STEPS * out[parts[0]] + sum(out[part] for part in parts[1:])
        out["chunk_ms"] = chunk
        out["useful_fps"] = LAYOUT.new_frames / (chunk / 1000)


def write(out: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True, help="folder with published_flash_head_model.py")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)}")
    parser.add_argument("--runs", type=int, default=10, help="timed calls per stage (the median is kept)")
    parser.add_argument("--warm", type=int, default=3, help="untimed calls per stage after the first")
    parser.add_argument("--tiny", action="store_true", help="tiny models, float32: checks the script, not the speed")
    parser.add_argument(
        "--json", type=Path, default=Path(os.environ.get("OUT", "bench/out")) / "published_pro_timing.json"
    )
    args = parser.parse_args()
    stages = args.stages.split(",")
    if unknown := sorted(set(stages) - set(STAGES)):
        parser.error(f"unknown stages {unknown}; choose from {', '.join(STAGES)}")

    device = torch.device(args.device)
    dtype = torch.float32 if args.tiny else torch.bfloat16
    sizes = Sizes(args.tiny)
    timer = Timer(device, args.runs, args.warm)
    out: dict = {
        "what": "published FlashHead Pro, one 33-frame chunk at batch 1 (28 new frames), 4 steps",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "diffusers": importlib.metadata.version("diffusers"),
        "dtype": str(dtype).removeprefix("torch."),
        "tiny": args.tiny,
        "size": sizes.pixels,
        "runs": args.runs,
    }
    started = time.perf_counter()

    def save() -> None:
        chunk_totals(out)
        write(out, args.json)
        print(f"[{time.perf_counter() - started:.0f} s] {json.dumps(out)}", flush=True)

    with torch.no_grad():
        for stage in stages:
            print(f"[{time.perf_counter() - started:.0f} s] timing {stage}", flush=True)
            if stage == "dit":
                time_transformer(out, args.reference, sizes, args.tiny, timer, device, dtype)
            elif stage == "decode":
                time_decode(out, sizes, args.tiny, timer, device, dtype, save)
            elif stage == "encode":
                time_encode(out, sizes, args.tiny, timer, device, dtype)
            else:
                time_audio(out, sizes, args.tiny, timer, device)
            save()


if __name__ == "__main__":
    main()
