"""ZeroGPU rehearsal: the app's FlashHead runs under the real `spaces` package, on a machine with a GPU.

ZeroGPU itself exists only on Hugging Face. This runs its client, the `spaces` package, for real:
its torch patching while the app loads, its packing of the weights at launch, its forked GPU worker,
its pickled arguments and streamed results, its stop on cancel, and its ahead-of-time compilation.
Only the Space's device API, which lends a GPU to each call, is played by a small server on loopback
that always lends this machine's GPU. The engine is loaded the way app.py loads it on ZeroGPU
(registry, main thread), from full-size random weights written in the published layout, so no download
is needed: loaded uncompiled, then its transformer compiled ahead of time in one GPU call before launch
(avatar/engines/flashhead/ahead.py); with --uncompiled it stays uncompiled, as before that existed.

Measures, for a run of --seconds of speech: time to the first frames and to the last, for a cold
worker (fork, CUDA start, weights moved to the GPU, the compiled package loaded) and a warm one; a
cancel; and that the embedded animator books no GPU. Needs CUDA:
    python bench/zerogpu_rehearsal.py [--tiny] [--seconds 10] [--uncompiled] [--merge earlier.json]
Prints a table, writes JSON (--json) and rewrites the "## ZeroGPU rehearsal" section of bench/RESULTS.md;
--merge adds the rows of earlier runs' JSON (an --uncompiled one, say) to the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version as package_version
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECTION = "ZeroGPU rehearsal"
COMPILED = "compiled ahead of time"


class DeviceApi(ThreadingHTTPServer):
    """The Space's device API as `spaces` calls it: every booking gets this machine's GPU at once."""

    def __init__(self, gpu_uuid: str) -> None:
        super().__init__(("127.0.0.1", 0), _DeviceApiHandler)
        self.gpu_uuid = gpu_uuid
        self.bookings: list[int] = []
        self.releases: list[bool] = []
        self.reported = False
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _DeviceApiHandler(BaseHTTPRequestHandler):
    server: DeviceApi

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        request = urlparse(self.path)
        query = {key: values[0] for key, values in parse_qs(request.query).items()}
        body = b""
        if request.path == "/schedule":
            self.server.bookings.append(int(query.get("durationSeconds", 0)))
            token = uuid.uuid4().hex
            body = json.dumps({"idle": True, "nvidiaIndex": 0, "nvidiaUUID": self.server.gpu_uuid, "allowToken": token})
            body = body.encode()
        elif request.path == "/release":
            self.server.releases.append(query.get("fail") == "True")
        elif request.path == "/startup-report":
            self.server.reported = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def first_gpu_uuid() -> str:
    """The GPU's UUID from nvidia-smi: asking torch would start CUDA before `spaces` is imported."""
    query = ["nvidia-smi", "--query-gpu=uuid", "--format=csv,noheader"]
    return subprocess.run(query, capture_output=True, text=True).stdout.split()[0]


def write_weights(root: Path, tiny: bool) -> None:
    """FlashHead Lite's folders with random weights in the published layout (bf16, as the app runs it)."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from bench.flashhead_speed import random_models

    transformer, vae, wav2vec2 = random_models("lite", tiny)
    transformer.to(torch.bfloat16).save_pretrained(root / "Model_Lite")
    vae.save_pretrained(root / "VAE_LTX")
    wav2vec2.save_pretrained(root / "wav2vec2")
    Wav2Vec2FeatureExtractor().save_pretrained(root / "wav2vec2")


class LogLines(logging.Handler):
    """The lines a logger writes, kept for the report (what a Space's log would show)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname}: {record.getMessage()}")
        print(self.lines[-1], flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of speech in each run")
    parser.add_argument("--tiny", action="store_true", help="tiny random models: checks the script, not the speed")
    parser.add_argument(
        "--uncompiled", action="store_true", help="leave FlashHead uncompiled, as before it was compiled at start-up"
    )
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="earlier rehearsal JSON to add rows from")
    parser.add_argument("--json", type=Path, default=Path("bench/out/zerogpu_rehearsal.json"))
    parser.add_argument("--results", type=Path, default=Path("bench/RESULTS.md"))
    args = parser.parse_args()
    earlier = [json.loads(path.read_text()) for path in args.merge]

    api = DeviceApi(first_gpu_uuid())
    work = Path(tempfile.mkdtemp(prefix="zerogpu-"))
    os.environ.update(
        SPACES_ZERO_GPU="true", SPACES_ZERO_DEVICE_API_URL=api.url, ZEROGPU_OFFLOAD_DIR=str(work / "offload")
    )
    # As in app.py: `spaces` is imported (and patches torch) before anything else touches CUDA.
    from avatar import zerogpu

    assert zerogpu.ACTIVE, "spaces did not switch to ZeroGPU mode"
    import gradio as gr
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.cpp_extension import CUDA_HOME

    from avatar.config import SAMPLE_FACES_DIR, Settings
    from avatar.engines.animate import draw_frames_on_gpu, raising_messages
    from avatar.engines.flashhead.engine import load_batched
    from avatar.engines.flashhead.settings import FlashHeadSettings
    from avatar.engines.flashhead.spec import LITE
    from avatar.engines.handles import handle_of
    from avatar.engines.registry import EngineRegistry
    from avatar.speech.utterance import Utterance
    from bench.flashhead_speed import face_from_crop
    from bench.results import write_section

    # AOTInductor builds the compiled package with a C++ compiler, against the CUDA toolkit's headers.
    cxx = shutil.which("g++") or shutil.which("c++")
    # `spaces` hands the compiled weights back from the GPU worker in shared memory.
    shm = f"{shutil.disk_usage('/dev/shm').free / 2**30:.1f} GiB" if Path("/dev/shm").is_dir() else "none"
    toolchain = f"CUDA toolkit {CUDA_HOME or 'not found'}, C++ compiler {cxx or 'not found'}, /dev/shm free {shm}"
    print(f"AOTInductor's toolchain: {toolchain}", flush=True)

    started = time.perf_counter()
    write_weights(work / "weights", args.tiny)
    written = time.perf_counter() - started
    size = 64 if args.tiny else 512
    key = "flashhead-lite"
    os.environ.update(
        AVATAR_FLASHHEAD_WEIGHTS=str(work / "weights"),
        AVATAR_WAV2VEC2_WEIGHTS=str(work / "weights" / "wav2vec2"),
        AVATAR_FLASHHEAD_SIZE=str(size),
    )
    registry = EngineRegistry(Settings(engine=key, crop_size=size))
    compile_log = LogLines("avatar.engines.flashhead.ahead")
    started = time.perf_counter()
    if args.uncompiled:
        settings = FlashHeadSettings.from_env("lite")
        engine = LITE.loaded(load_batched(settings, torch.device("cuda"), compile_models=False))
    else:
        engine = registry.get(key)  # as app.py: loaded, then compiled ahead of time in one GPU call
    loaded = time.perf_counter() - started
    # `spaces.aoti_apply` replaces the transformer's forward by the compiled package.
    compiled = "forward" in vars(engine.engine.pipeline.transformer)
    animator = registry.get(registry.fallback)
    registry.seal()
    # spaces packs the weights and reports to the device API when the first Blocks is launched.
    started = time.perf_counter()
    with gr.Blocks() as page:
        gr.Markdown("ZeroGPU rehearsal")
    page.launch(prevent_thread_lock=True, quiet=True)
    packed = time.perf_counter() - started

    crop = np.asarray(Image.open(SAMPLE_FACES_DIR / "astronaut.png").convert("RGB").resize((size, size)))
    face = face_from_crop(crop)
    rng = np.random.default_rng(0)
    sentences = [args.seconds * share for share in (0.2, 0.5, 0.3)]
    utterances = [
        Utterance("sentence", (0.3 * rng.standard_normal(int(s * 16_000))).astype(np.float32), 16_000)
        for s in sentences
    ]
    wanted = math.ceil(sum(len(u.audio) for u in utterances) / 640)

    def timed_run(stop_after: int | None = None) -> dict:
        start = time.perf_counter()
        # As a run does on ZeroGPU (avatar/engines/animate.py): the whole speech in one GPU booking.
        chunks = raising_messages(draw_frames_on_gpu(handle_of(engine), face, utterances))
        first, frames = 0.0, []
        for chunk in chunks:
            first = first or time.perf_counter() - start
            frames.append(chunk)
            if stop_after is not None and len(frames) >= stop_after:
                stop = time.perf_counter()
                chunks.close()
                return {"first_s": first, "stopped_in_s": time.perf_counter() - stop, "frames": sum(map(len, frames))}
        video = np.concatenate(frames)
        total = time.perf_counter() - start
        return {
            "first_s": first,
            "total_s": total,
            "frames": len(video),
            "fps": len(video) / total,
            "moving": float(np.abs(np.diff(video.astype(np.int16), axis=0)).mean()),
        }

    rows = {}
    rows["cold worker"] = timed_run()
    rows["warm worker"] = timed_run()
    rows["cancelled after 1 chunk"] = timed_run(stop_after=1)
    rows["warm worker after a cancel"] = timed_run()
    report = {
        "command": "python " + shlex.join(["bench/zerogpu_rehearsal.py", *sys.argv[1:]]),
        "gpu": subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        ).stdout.strip(),
        "torch": torch.__version__,
        "gradio": gr.__version__,
        "spaces": package_version("spaces"),
        "weights": "tiny random" if args.tiny else "full-size random",
        "transformer": COMPILED if compiled else "uncompiled",
        "compile_log": compile_log.lines,
        "toolchain": toolchain,
        "speech_seconds": sum(u.duration for u in utterances),
        "frames_wanted": wanted,
        "write_weights_s": written,
        "load_s": loaded,
        "launch_and_pack_s": packed,
        "startup_reported": api.reported,
        "bookings_s": api.bookings,
        "failed_releases": sum(api.releases),
        "animator_on": animator.info.device,
        "animator_uses_gpu": animator.uses_gpu,
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1))
    section = render_section(report, earlier)
    print(section)
    write_section(SECTION, section, args.results)
    page.close()
    # spaces' GPU worker turns SIGTERM into closing its queue, so multiprocessing's join at exit
    # could wait for it forever; a Space's container is killed instead. The results are written.
    os._exit(0)


def render_section(report: dict, earlier: list[dict]) -> str:
    compiled = report["transformer"] == COMPILED
    lines = [
        f"`{report['command']}` on {report['gpu']}, torch {report['torch']}, gradio {report['gradio']}, "
        f"spaces {report['spaces']}; FlashHead Lite with {report['weights']} weights, "
        f"transformer {report['transformer']}, {report['speech_seconds']:.1f} s of speech a run "
        f"({report['frames_wanted']} frames).",
        "",
        "The real `spaces` client ran: torch patched at import, weights placed on `cuda` in the main thread, "
        + (
            "the transformer compiled ahead of time in a GPU call before launch (`spaces.aoti_compile`) and "
            "applied in the main process, "
            if compiled
            else ""
        )
        + "packed at launch, moved to the GPU in its forked worker; arguments and frames went by "
        "pickle. Only the Space's device API was a stand-in on loopback that lends this GPU at once, so "
        "ZeroGPU's queueing and its GPU slice (half an H200) are not part of these times.",
        "",
        "| transformer | run | first frames (s) | all frames (s) | frames | frames/s | mean change between frames |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in (report, *earlier):
        lines += [table_row(run.get("transformer", "uncompiled"), name, row) for name, row in run["rows"].items()]
    lines += [
        "",
        f"- Start-up: weights loaded{' and the transformer compiled' if compiled else ''} in {report['load_s']:.1f} s, "
        "launch with packing "
        f"{report['launch_and_pack_s']:.1f} s; start-up reported to the device API: {report['startup_reported']}.",
        *[f"- Start-up log: {line}" for line in report["compile_log"]],
        f"- AOTInductor's toolchain on this machine: {report['toolchain']}.",
        f"- GPU bookings asked (s): {report['bookings_s']}; failed releases: {report['failed_releases']}.",
        f"- The embedded animator was placed on the {report['animator_on']} (uses the GPU: "
        f"{report['animator_uses_gpu']}), although torch, patched by `spaces`, reports a GPU in the main process.",
    ]
    return "\n".join(lines)


def table_row(transformer: str, name: str, row: dict) -> str:
    if "total_s" in row:
        return (
            f"| {transformer} | {name} | {row['first_s']:.2f} | {row['total_s']:.2f} | {row['frames']} "
            f"| {row['fps']:.0f} | {row['moving']:.2f} |"
        )
    return (
        f"| {transformer} | {name} | {row['first_s']:.2f} | stopped {row['stopped_in_s']:.2f} s after close "
        f"| {row['frames']} | | |"
    )


if __name__ == "__main__":
    main()
