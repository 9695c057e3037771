"""FlashHead Lite served by Ray Serve replicas, one per GPU: two replicas against one, and against no Ray at all.

The simulated visitors of bench/visitors.py (Poisson arrivals, 8 to 15 s of speech each, handed over
sentence by sentence) go through the app's waiting line and engine interface; the engine is either in
this process ("in-process", the reference) or placed on `ServedReplicas`, whose sessions live on 1 or 2 replicas
of a Ray Serve deployment built by the app's own serving code (avatar/serving), on a local Ray instance
holding this host's GPUs. Full-size random weights, so nothing to download.

Per phase: a chunk's trip for one session on an idle engine (one step: chunk sent, frames back; the
served minus the in-process time is what Ray adds), then per load: useful frames/s over all replicas,
first-chunk p95, stalls (real-time playback from the first frames would have waited), refusals.

One command on a host with two GPUs (prints progress; writes ray_visitors.json and RESULTS.md under --out
after every row):
    python bench/ray_visitors.py --out $OUT
Under a time limit per command, run the phases apart and join the tables:
    python bench/ray_visitors.py --out $OUT --replicas 0
    python bench/ray_visitors.py --out $OUT --replicas 1 --merge $OUT/ray_visitors.json
    python bench/ray_visitors.py --out $OUT --replicas 2 --merge $OUT/ray_visitors.json
Steps padded up to sizes compiled one by one (about two minutes each) rather than any size: --sizes 1,8.
Ray's cost alone, with a stand-in engine that draws nothing (any machine, a minute):
    python bench/ray_visitors.py --stand-in --out $OUT --replicas 0,1 --levels ""
Quick check of the script on a CPU (tiny models, CPU replicas; checks the plumbing, not the speed):
    python bench/ray_visitors.py --tiny --out /tmp/ray_visitors --levels 2 --seconds 6 --speech 2,3 --trips 3
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import shlex
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import ray
import torch
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.config import FPS, PACKAGE_DIR, SAMPLES_PER_FRAME  # noqa: E402
from avatar.engines.base import Engine, FaceCrop, SpeechChunk  # noqa: E402
from avatar.engines.flashhead.engine import FlashHeadEngine, batched, compute_dtype, optimise_behind  # noqa: E402
from avatar.engines.flashhead.settings import batch_sizes, default_sessions  # noqa: E402
from avatar.engines.loaded import LoadedEngine  # noqa: E402
from avatar.engines.placement import Unbatched  # noqa: E402
from avatar.engines.scheduler import BatchScheduler  # noqa: E402
from avatar.engines.spec import EngineSettings, EngineSpec, Progress  # noqa: E402
from avatar.serving.cluster import RayCluster, ServingSettings, replica_runtime_env  # noqa: E402
from avatar.waiting_line import WaitingLine  # noqa: E402
from bench.flashhead_speed import bench_face, build_pipeline  # noqa: E402
from bench.results import save_run  # noqa: E402
from bench.visitors import MAX_WAITING, Plan, Visit, percentile, plan_visitors, visit  # noqa: E402

SECTION = "Engine replicas on several GPUs (Ray Serve)"
GOAL_SPEEDUP = 1.8
BENCH_DIR = Path(__file__).resolve().parent


@dataclasses.dataclass(frozen=True)
class RandomWeights(EngineSettings):
    """FlashHead with random weights of the published sizes (or tiny ones) and its warmed batch sizes."""

    variant: str = "lite"
    tiny: bool = False
    size: int = 512
    batch_sizes: tuple[int, ...] | None = None


def read_random_weights(
    variant: str, tiny: bool, size: int, batch_sizes: tuple[int, ...] | None, sessions: int
) -> RandomWeights:
    """The settings, read where the engine is built: sessions by that host's GPU unless asked for."""
    return RandomWeights(sessions or default_sessions(), variant, tiny, size, batch_sizes)


def build_random_flashhead(
    settings: RandomWeights, device: torch.device, progress: Progress | None
) -> BatchScheduler[FlashHeadEngine]:
    """The engine behind its scheduler as FlashHead's spec builds it, from random weights instead of files."""
    dtype = compute_dtype(device)
    pipeline = build_pipeline(settings.variant, settings.tiny, device, dtype, settings.size)
    scheduler = batched(FlashHeadEngine(pipeline, settings.variant), settings.sessions)
    optimise_behind(scheduler, compiled=device.type == "cuda", sizes=settings.batch_sizes, progress=progress)
    return scheduler


class StandInEngine(Engine):
    """Draws nothing: each step hands back the same frames at once, so a chunk's trip is all that is timed."""

    device = torch.device("cpu")
    chunk_frames = 24

    def __init__(self, size: int) -> None:
        self.frames = np.zeros((self.chunk_frames, size, size, 3), np.uint8)

    def open(self, face: FaceCrop) -> None:
        return None

    def draw_one(self, state: None, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        yield self.frames[: chunk.frames]


def stand_in_spec(size: int) -> EngineSpec[EngineSettings]:
    return EngineSpec(
        key="stand-in",
        title="stand-in engine",
        note="draws nothing",
        name="the stand-in engine",
        needs_cuda=False,
        read_settings=EngineSettings,
        build=lambda settings, device, progress: Unbatched(StandInEngine(size)),
    )


def random_flashhead_spec(args: argparse.Namespace) -> EngineSpec[RandomWeights]:
    sizes = batch_sizes(args.sizes) if args.sizes else None
    size = args.size or (64 if args.tiny else 512)
    return EngineSpec(
        key=f"flashhead-{args.variant}",
        title=f"FlashHead {args.variant.capitalize()}",
        note=f"{'tiny' if args.tiny else 'full-size'} random weights",
        name=f"FlashHead {args.variant.capitalize()}",
        needs_cuda=not args.tiny,
        read_settings=functools.partial(read_random_weights, args.variant, args.tiny, size, sizes, args.sessions),
        build=build_random_flashhead,
    )


def trips(engine: LoadedEngine, face_size: int, count: int) -> dict:
    """One session's steps on an otherwise idle engine: the time from sending a chunk to holding its frames."""
    state = engine.open(bench_face(face_size, seed=7))
    frames = engine.chunk_frames or FPS
    rng = np.random.default_rng(7)
    seconds, first_piece, sizes = [], [], []
    for index in range(count + 1):  # the first step of a session is different (no motion frames yet)
        chunk = SpeechChunk(rng.uniform(-0.3, 0.3, frames * SAMPLES_PER_FRAME).astype(np.float32), frames)
        start = time.perf_counter()
        arrivals, pieces = [], []
        for piece in engine.step(state, chunk):
            arrivals.append(time.perf_counter() - start)
            pieces.append(piece)
        if index:
            seconds.append(arrivals[-1])
            first_piece.append(arrivals[0])
            sizes.append(sum(piece.nbytes for piece in pieces))
    return {
        "steps": count,
        "frames_per_step": frames,
        "mb_per_step": float(np.mean(sizes)) / 1e6,
        "step_p50_ms": percentile(seconds, 50) * 1e3,
        "step_p95_ms": percentile(seconds, 95) * 1e3,
        "first_piece_p50_ms": percentile(first_piece, 50) * 1e3,
    }


def visitors(engine: LoadedEngine, slots: int, load: float, plans: list[Plan], face_size: int, drain: float) -> dict:
    """The planned visitors through a waiting line of `slots` running places and the engine; their numbers."""
    line = WaitingLine(MAX_WAITING, {engine.key: slots})
    visits = [Visit(p.number, p.arrival, sum(p.sentences)) for p in plans]
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=visit, args=(engine, line, plan, record, t0, face_size), daemon=True)
        for plan, record in zip(plans, visits, strict=True)
    ]
    for thread in threads:
        thread.start()
    deadline, reported = (plans[-1].arrival if plans else 0) + drain, 0.0
    while any(t.is_alive() for t in threads) and time.perf_counter() - t0 < deadline:
        time.sleep(0.5)
        if time.perf_counter() - t0 - reported >= 10:
            reported = time.perf_counter() - t0
            done = sum(not t.is_alive() for t in threads)
            print(f"  load {load:g}: {reported:.0f} s, {done}/{len(plans)} visitors done, {line.waiting()} waiting",
                  flush=True)
    served = [v for v in visits if v.pieces]
    firsts = [v.first_chunk_s() for v in served]
    times = [t for v in served for t, _ in v.pieces]
    wall = (max(times) - min(v.first_sentence for v in served)) if served else 0.0
    return {
        "load": load,
        "slots": slots,
        "visitors": len(visits),
        "served": len(served),
        "refused": sum(v.refused for v in visits),
        "failed": sum(bool(v.error) for v in visits),
        "errors": sorted({v.error for v in visits if v.error})[:3],
        "unfinished": sum(t.is_alive() for t in threads),
        "first_chunk_p50_s": percentile(firsts, 50),
        "first_chunk_p95_s": percentile(firsts, 95),
        "stalled": sum(v.worst_lateness_s() > 0 for v in served),
        "longest_wait_s": max((v.worst_lateness_s() for v in served), default=0.0),
        "useful_fps": sum(v.frames for v in served) / wall if wall else 0.0,
        "demand_fps": sum(v.speech_s for v in visits) * FPS / max(1e-9, wall),
    }


def phase(args: argparse.Namespace, spec: EngineSpec, replicas: int, report: dict, save) -> None:
    """One engine placement: in this process (0 replicas) or on `replicas` Ray Serve replicas."""
    print(f"{replicas or 'no'} replicas: building {spec.label}", flush=True)
    start = time.perf_counter()
    if replicas:
        cluster = RayCluster.join("")  # the local instance started in main(), holding this host's GPUs
        cluster.settings = ServingSettings(replicas=replicas, replica_cpus=args.replica_cpus)
        engine = cluster.serve(spec)
        slots = engine.placement.sessions
    else:
        device = torch.device("cuda" if spec.needs_cuda else "cpu")
        settings = spec.read_settings()
        engine = spec.load(device, settings, lambda fraction, what: print(f"  {what}", flush=True))
        slots = settings.sessions
    built = time.perf_counter() - start
    print(f"  built and warmed in {built:.0f} s; {slots} sessions at once; {engine.info.device}", flush=True)
    face_size = args.size or (64 if args.tiny else 512)
    trip = trips(engine, face_size, args.trips)
    print(f"  a chunk's trip: {json.dumps(trip)}", flush=True)
    report["trips"][str(replicas)] = trip | {"build_s": built, "sessions": slots}
    save()
    speech = tuple(float(s) for s in args.speech.split(","))
    for load in [float(x) for x in args.levels.split(",") if x]:
        plans = plan_visitors(load, args.seconds, speech, seed=args.seed + int(load * 1000))
        print(f"  load {load:g}: {len(plans)} visitors", flush=True)
        row = visitors(engine, slots, load, plans, face_size, args.drain) | {"replicas": replicas}
        report["rows"] = [r for r in report["rows"] if (r["replicas"], r["load"]) != (replicas, load)] + [row]
        print("  " + json.dumps(row), flush=True)
        save()
    if replicas:
        serve.delete(f"avatar-{spec.key}")  # frees the GPUs for the next phase


def cell(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_section(report: dict) -> str:
    """The markdown section: the trips, the visitors per placement and load, and the two-against-one verdict."""
    lines = [
        f"Command: `{report['command']}`  ",
        f"Device: {report['device']}; torch {report['torch']}; ray {report['ray']}; {report['engine']}; arrivals "
        f"over {report['seconds']:g} s, speech {report['speech']} s a visitor; line of {MAX_WAITING} waiting. "
        "Replicas: one GPU each, on a local Ray instance; 0 = the engine in the benchmark's own process.",
        "",
        "A chunk's trip, one session on an idle engine (chunk sent -> all its frames here):",
        "",
        "| replicas | sessions | frames / MB a step | step p50 / p95 ms | first piece p50 ms | Ray adds (p50) ms |",
        "|---|---|---|---|---|---|",
    ]
    local = report["trips"].get("0")
    for replicas, trip in sorted(report["trips"].items()):
        added = "" if local is None or replicas == "0" else f"{trip['step_p50_ms'] - local['step_p50_ms']:.1f}"
        lines.append(
            f"| {replicas} | {trip['sessions']} | {trip['frames_per_step']} / {trip['mb_per_step']:.1f} | "
            f"{trip['step_p50_ms']:.1f} / {trip['step_p95_ms']:.1f} | {trip['first_piece_p50_ms']:.1f} | {added} |"
        )
    lines += [
        "",
        "Visitors: first chunk = a visitor's first sentence handed over -> its first frames; stalled = visitors whose "
        "real-time playback from their first frames would have waited for a frame; useful fps = frames drawn over "
        "all replicas / wall time.",
        "",
        "| replicas | load | running slots | visitors (served / refused / failed or unfinished) "
        "| first chunk p50 / p95 s | stalled | longest wait s | useful fps (demand) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(report["rows"], key=lambda r: (r["load"], r["replicas"])):
        lines.append(
            f"| {row['replicas']} | {row['load']:g} | {row['slots']} | {row['visitors']} ({row['served']} / "
            f"{row['refused']} / {row['failed'] + row['unfinished']}) | {cell(row['first_chunk_p50_s'])} / "
            f"{cell(row['first_chunk_p95_s'])} | {row['stalled']} | {row['longest_wait_s']:.2f} | "
            f"{row['useful_fps']:.0f} ({row['demand_fps']:.0f}) |"
        )
    return "\n".join(lines + ["", verdict(report["rows"])]) + "\n"


def verdict(rows: list[dict]) -> str:
    """Two replicas' useful frames/s over one replica's, at each load both ran."""
    by = {(r["replicas"], r["load"]): r for r in rows}
    parts = [
        f"load {load:g}: {by[2, load]['useful_fps'] / by[1, load]['useful_fps']:.2f}x"
        for load in sorted({load for _, load in by})
        if (1, load) in by and (2, load) in by and by[1, load]["useful_fps"]
    ]
    if not parts:
        return "Two replicas against one: not both measured yet."
    return (
        f"Two replicas against one, useful frames/s (goal >= {GOAL_SPEEDUP}x where one replica is saturated): "
        + "; ".join(parts) + "."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for ray_visitors.json and RESULTS.md")
    parser.add_argument("--replicas", default="0,1,2", help="placements to measure: 0 = in-process, n = n replicas")
    parser.add_argument("--levels", default="16,32", help="loads: visitors speaking at once on average")
    parser.add_argument("--seconds", type=float, default=60.0, help="arrivals over this long")
    parser.add_argument("--speech", default="8,15", help="seconds of speech a visitor, least,most")
    parser.add_argument("--trips", type=int, default=20, help="steps timed for a chunk's trip")
    parser.add_argument("--sessions", type=int, default=0, help="sessions per engine (default: by its GPU's size)")
    parser.add_argument("--sizes", default=None, help="pad steps to these sizes, e.g. 1,8 (default: any size)")
    parser.add_argument("--variant", choices=("lite", "pro"), default="lite")
    parser.add_argument("--size", type=int, default=None, help="frame size (default 512, tiny 64)")
    parser.add_argument("--replica-cpus", type=float, default=1.0, help="CPU cores Ray reserves per replica")
    parser.add_argument("--tiny", action="store_true", help="tiny random models on CPUs: checks the script only")
    parser.add_argument("--stand-in", action="store_true", help="an engine that draws nothing: Ray's cost alone")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds after the last arrival to let runs end")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="earlier ray_visitors.json to add to")
    parser.add_argument("--results", type=Path, default=None, help="also write the section into this RESULTS.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    spec = stand_in_spec(args.size or 512) if args.stand_in else random_flashhead_spec(args)
    earlier = [json.loads(path.read_text()) for path in args.merge]
    report = {
        "command": "python " + shlex.join(["bench/ray_visitors.py", *sys.argv[1:]]),
        "device": f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        if torch.cuda.is_available() else platform.processor() or "cpu",
        "torch": torch.__version__,
        "ray": ray.__version__,
        "engine": spec.label,
        "seconds": args.seconds,
        "speech": args.speech,
        "trips": {key: trip for old in earlier for key, trip in old["trips"].items()},
        "rows": [row for old in earlier for row in old["rows"]],
    }

    def save() -> None:
        save_run(args.out, "ray_visitors", report, SECTION, render_section(report), args.results)

    placements = [int(n) for n in args.replicas.split(",")]
    if any(placements):
        # The app's runtime environment, plus bench/ (the replicas build this file's random-weight engine).
        runtime_env = replica_runtime_env()
        runtime_env["py_modules"] = [str(PACKAGE_DIR), str(BENCH_DIR)]
        ray.init(address="local", include_dashboard=False, runtime_env=runtime_env)
    for replicas in placements:
        phase(args, spec, replicas, report, save)
    print(render_section(report))
    if ray.is_initialized():
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
