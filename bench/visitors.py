"""Many visitors at once on one GPU: FlashHead's batching scheduler against today's one visitor at a time.

Simulated visitors arrive at random (Poisson) over a minute, each with 8 to 15 s of speech that a voice
hands over sentence by sentence, and each goes through the waiting line and the engine as the app drives
them (the line's place, then `engine.start(face)`, `push` per sentence and `finish`: the engine stage of a
run, without page or encoder). A load of N means N visitors speaking at once on average: arrivals at N
per mean speech length. Each load's same arrivals are served twice: "batched" (the engine's sessions run
at once, its scheduler batching their chunks) and "one at a time" (one running slot, as before).

Per visitor: first-chunk latency (its first sentence handed to the engine -> its first frames), its wait
in line, and whether real-time playback from its first frames would ever have caught up with the drawing
(a stall; by how long at worst). Per run: useful frames/s, the steps' batch sizes, GPU busy time, peak
GPU memory. Full-size random weights (speed does not depend on their values), so nothing to download.

One command on a GPU (prints progress; writes visitors.json and RESULTS.md, the section, under --out,
after every run; each run takes the arrivals' minute and its drain, after a warm-up of a few minutes):
    python bench/visitors.py --out $OUT
Under a time limit per command, the loads can be split and the tables joined:
    python bench/visitors.py --out $OUT --levels 16,24
    python bench/visitors.py --out $OUT --levels 1,4,8 --merge earlier/visitors.json
Steps padded up to sizes compiled one by one (AVATAR_FLASHHEAD_BATCHING=padded) rather than one compile for any
size: --sizes 1,8.
Quick check of the script on a CPU (tiny models; checks the plumbing, not the speed):
    python bench/visitors.py --tiny --out /tmp/visitors --levels 1,3 --seconds 8 --speech 2,4
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.config import FPS, SAMPLES_PER_FRAME  # noqa: E402
from avatar.engines.flashhead.engine import (  # noqa: E402
    LARGEST_STEP,
    FlashHeadEngine,
    batched,
    compute_dtype,
    optimise_behind,
)
from avatar.engines.flashhead.settings import batch_sizes, default_sessions  # noqa: E402
from avatar.engines.flashhead.spec import LITE, PRO  # noqa: E402
from avatar.engines.loaded import LoadedEngine  # noqa: E402
from avatar.errors import UserFacingError  # noqa: E402
from avatar.speech.utterance import Utterance  # noqa: E402
from avatar.waiting_line import WaitingLine  # noqa: E402
from bench.flashhead_speed import bench_face, build_pipeline  # noqa: E402
from bench.results import write_section  # noqa: E402

SECTION = "Many visitors at once (FlashHead batching)"
SERVICES = ("batched", "one-at-a-time")
# The app's waiting line lets this many wait (AVATAR_MAX_WAITING's default); more are turned away.
MAX_WAITING = 16
# A voice makes each sentence in this long plus its length over this speed (edge-tts: a round trip, then
# several times faster than real time); the engine gets each sentence as soon as it is made.
VOICE_SECONDS_PER_SENTENCE = 0.2
VOICE_SPEED = 10.0
SENTENCE_SECONDS = (1.5, 4.0)
GOALS = {"visitors": 16, "p95_first_chunk_s": 1.0, "stalled": 0, "useful_fps": 400}
# Written before the GPU run of the engine that compiles once for any batch size and lets first chunks share a
# forward with later ones, from the H200 runs of the padded engine (a step of b sessions ~ 20 + 54 b ms; padded
# to 8 it drew 330 fps at load 16 with 4.9 sessions a step, 97% busy); kept in the section to compare with.
PREDICTIONS = {
    "warm-up": "1 and 8 compiled (~70-100 s each: first and later chunks are now one graph, not two), 2-7 only "
    "recorded (a few s each): ~3-4 min in all",
    "load 8": "batched: first chunk p95 ~0.3 s (steps shorter than padded ones), no stall",
    "load 16": "batched: first chunk p95 ~0.4-0.6 s; steps of ~5 cost ~290 ms instead of 456 padded, so ~410 "
    "fps drawable against ~400-440 asked at the peak: no line, and few or no stalls (0-10 of 60, under 0.5 s)",
    "load 24": "asked ~600 fps: the line fills and some are refused; drawn ~420 fps (steps of 8, dynamic kernels "
    "within 5% of the fixed-size ones)",
    "peak memory": "~10-11 GiB allocated, a few GiB more reserved for 8 sizes' graph pools",
}


@dataclass(frozen=True)
class Plan:
    """One visitor: when they arrive (s from the run's start), their face, and their sentences' lengths (s)."""

    number: int
    arrival: float
    sentences: tuple[float, ...]


@dataclass
class Visit:
    """What one visitor saw; times in seconds from the run's start."""

    number: int
    arrival: float
    speech_s: float
    refused: bool = False
    admitted: float | None = None
    first_sentence: float | None = None
    pieces: list[tuple[float, int]] = field(default_factory=list)
    error: str = ""

    @property
    def frames(self) -> int:
        return sum(count for _, count in self.pieces)

    def first_chunk_s(self) -> float | None:
        return None if not self.pieces else self.pieces[0][0] - self.first_sentence

    def line_wait_s(self) -> float | None:
        return None if self.admitted is None else self.admitted - self.arrival

    def first_picture_s(self) -> float | None:
        """From arriving to the first frames: the wait in line, the first sentence's voice, the first chunk."""
        return None if not self.pieces else self.pieces[0][0] - self.arrival

    def worst_lateness_s(self) -> float:
        """How long the viewer would have waited at worst: playback runs from the first frames at 25 fps, and each
        piece's first frame is due at its place in that timeline (<= 0: every frame was there in time)."""
        if not self.pieces:
            return 0.0
        start, worst, shown = self.pieces[0][0], 0.0, 0
        for ready, count in self.pieces:
            worst = max(worst, ready - (start + shown / FPS))
            shown += count
        return worst


def plan_visitors(load: float, seconds: float, speech: tuple[float, float], seed: int) -> list[Plan]:
    """Poisson arrivals over `seconds` at `load` visitors speaking at once on average (Little's law)."""
    rng = np.random.default_rng(seed)
    rate = load / (sum(speech) / 2)
    plans, now = [], rng.exponential(1 / rate)
    while now < seconds:
        total, sentences = rng.uniform(*speech), []
        while sum(sentences) < total - 1e-6:
            sentences.append(min(rng.uniform(*SENTENCE_SECONDS), total - sum(sentences)))
        plans.append(Plan(len(plans), float(now), tuple(sentences)))
        now += rng.exponential(1 / rate)
    return plans


def sentences_of(plan: Plan) -> list[tuple[float, Utterance]]:
    """Each sentence's audio and when the voice has made it (s after admission)."""
    rng = np.random.default_rng(plan.number)
    made, out = 0.0, []
    for seconds in plan.sentences:
        made += VOICE_SECONDS_PER_SENTENCE + seconds / VOICE_SPEED
        audio = rng.uniform(-0.3, 0.3, int(seconds * FPS) * SAMPLES_PER_FRAME).astype(np.float32)
        out.append((made, Utterance(text="visitor", audio=audio, sample_rate=16_000)))
    return out


def visit(engine: LoadedEngine, line: WaitingLine, plan: Plan, visit: Visit, t0: float, face_size: int) -> None:
    """One visitor, as the app serves them: a place in line, then the run's engine stage, sentence by sentence
    as the voice makes them."""

    def now() -> float:
        return time.perf_counter() - t0

    time.sleep(max(0.0, plan.arrival - now()))
    speech = sentences_of(plan)
    face = bench_face(face_size, seed=plan.number)
    try:
        with line.place(engine.key) as place:
            for _ in place.wait():
                pass
            visit.admitted = now()
            talking = engine.start(face)
            for made, utterance in speech:
                time.sleep(max(0.0, visit.admitted + made - now()))
                if visit.first_sentence is None:
                    visit.first_sentence = now()
                for frames in talking.push(utterance):
                    visit.pieces.append((now(), len(frames)))
            for frames in talking.finish():
                visit.pieces.append((now(), len(frames)))
    except UserFacingError as error:  # before admission, the line was full; after, the engine failed the run
        visit.refused = visit.admitted is None
        visit.error = "" if visit.refused else str(error)
    except Exception as error:  # a failed visitor is counted, and must not stop the run
        visit.error = f"{type(error).__name__}: {error}"


class StepLog:
    """Every step the scheduler draws: when, how long, how many sessions (wraps the engine's draw)."""

    def __init__(self, engine: FlashHeadEngine) -> None:
        self.steps: list[tuple[float, float, int]] = []
        draw = engine.draw

        def logged(states, chunks):
            start = time.perf_counter()
            yield from draw(states, chunks)
            self.steps.append((start, time.perf_counter() - start, len(states)))

        engine.draw = logged


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def serve(
    engine: LoadedEngine, sessions: int, service: str, load: float, plans: list[Plan], log: StepLog, drain: float
) -> dict:
    """The planned visitors through the line and the engine (`sessions` at once); the run's numbers."""
    slots = 1 if service == "one-at-a-time" else sessions
    line = WaitingLine(MAX_WAITING, {engine.key: slots})
    visits = [Visit(p.number, p.arrival, sum(p.sentences)) for p in plans]
    device = engine.engine.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    log.steps.clear()
    t0 = time.perf_counter()
    pairs = zip(plans, visits, strict=True)
    size = engine.engine.pipeline.size
    threads = [threading.Thread(target=visit, args=(engine, line, p, v, t0, size), daemon=True) for p, v in pairs]
    for thread in threads:
        thread.start()
    last_report = 0.0
    deadline = (plans[-1].arrival if plans else 0) + drain
    while any(t.is_alive() for t in threads) and time.perf_counter() - t0 < deadline:
        time.sleep(0.5)
        if time.perf_counter() - t0 - last_report >= 10:
            last_report = time.perf_counter() - t0
            done = sum(not t.is_alive() for t in threads)
            frames = sum(v.frames for v in visits)
            print(
                f"  {service} load {load:g}: {last_report:.0f} s, {done}/{len(plans)} visitors done, "
                f"{frames} frames, {line.waiting()} waiting",
                flush=True,
            )
    unfinished = sum(t.is_alive() for t in threads)
    return summarise(device, slots, service, load, visits, log, unfinished, t0)


def summarise(
    device: torch.device,
    slots: int,
    service: str,
    load: float,
    visits: list[Visit],
    log: StepLog,
    unfinished: int,
    t0: float,
) -> dict:
    served = [v for v in visits if v.pieces]
    firsts = [v.first_chunk_s() for v in served]
    waits = [v.line_wait_s() for v in visits if v.admitted is not None]
    pictures = [v.first_picture_s() for v in served]
    stalled = [v for v in served if v.worst_lateness_s() > 0]
    times = [t for v in served for t, _ in v.pieces]
    starts = [v.first_sentence for v in served]
    wall = (max(times) - min(starts)) if served else 0.0
    frames = sum(v.frames for v in served)
    busy = sum(duration for _, duration, _ in log.steps)
    sizes = [size for _, _, size in log.steps]
    memory = device.type == "cuda"
    moments = np.arange(0, max(times, default=0), 0.5)
    running = [sum(1 for v in served if v.admitted <= t < v.pieces[-1][0]) for t in moments]
    return {
        "service": service,
        "load": load,
        "sessions": slots,
        "visitors": len(visits),
        "served": len(served),
        "refused": sum(v.refused for v in visits),
        "failed": sum(bool(v.error) for v in visits),
        "errors": sorted({v.error for v in visits if v.error})[:3],
        "unfinished": unfinished,
        "mean_running": float(np.mean(running)) if running else 0.0,
        "first_chunk_p50_s": percentile(firsts, 50),
        "first_chunk_p95_s": percentile(firsts, 95),
        "first_chunk_max_s": max(firsts, default=None),
        "line_wait_p50_s": percentile(waits, 50),
        "line_wait_p95_s": percentile(waits, 95),
        "first_picture_p50_s": percentile(pictures, 50),
        "first_picture_p95_s": percentile(pictures, 95),
        "stalled": len(stalled),
        "longest_wait_s": max((v.worst_lateness_s() for v in served), default=0.0),
        "useful_fps": frames / wall if wall else 0.0,
        "demand_fps": sum(v.speech_s for v in visits) * FPS / max(1e-9, wall),
        "busy_fraction": busy / wall if wall else 0.0,
        "fps_while_busy": frames / busy if busy else 0.0,
        "steps": len(sizes),
        "mean_step_sessions": float(np.mean(sizes)) if sizes else 0.0,
        "step_sessions_histogram": {str(s): sizes.count(s) for s in sorted(set(sizes))},
        "peak_gpu_allocated_gib": torch.cuda.max_memory_allocated(device) / 2**30 if memory else 0.0,
        "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved(device) / 2**30 if memory else 0.0,
        "visits": [
            asdict(v) | {"first_chunk_s": v.first_chunk_s(), "worst_lateness_s": v.worst_lateness_s()} for v in visits
        ],
    }


def cell(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_section(report: dict) -> str:
    """The markdown section for bench/RESULTS.md."""
    lines = [
        *(
            ["**A check of the script on a CPU with tiny models, not the GPU's numbers.**", ""]
            if "tiny" in report["weights"]
            else []
        ),
        f"Command: `{report['command']}`  ",
        f"Device: {report['device']}; torch {report['torch']}; FlashHead {report['variant']} {report['size']}x"
        f"{report['size']}, {report['weights']}; engine sessions {report['sessions']}, steps of at most "
        f"{report['largest_step']} sessions at the warmed sizes {report['sizes']} (warm-up per size, s: "
        f"{report['warm_up_s']}); arrivals over {report['seconds']:g} s, speech {report['speech']} s a visitor in "
        f"sentences of {SENTENCE_SECONDS[0]}-{SENTENCE_SECONDS[1]} s, voice {VOICE_SECONDS_PER_SENTENCE} s + "
        f"1/{VOICE_SPEED:g} of each sentence; line of {MAX_WAITING} waiting.",
        "",
        "Load: visitors speaking at once on average (Poisson arrivals at load / mean speech seconds). First chunk: "
        "from a visitor's first sentence to its first frames. Stalled: visitors whose real-time playback (from their "
        "first frames) would have waited for a frame; longest wait: the worst such wait. Useful fps: frames drawn / "
        "wall time from the first sentence to the last frame; busy: share of that time the GPU thread was drawing.",
        "",
        "| service | load | visitors (served / refused / failed) | mean running | first chunk p50 / p95 / max s "
        "| line wait p50 / p95 s | arrival to first frames p50 / p95 s | stalled | longest wait s "
        "| useful fps (demand) | busy | steps (mean sessions) | peak GiB alloc / reserved |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(report["rows"], key=lambda r: (SERVICES.index(r["service"]), r["load"])):
        lines.append(
            f"| {row['service']} | {row['load']:g} | {row['visitors']} ({row['served']} / {row['refused']} / "
            f"{row['failed'] + row['unfinished']}) | {row['mean_running']:.1f} | {cell(row['first_chunk_p50_s'])} / "
            f"{cell(row['first_chunk_p95_s'])} / {cell(row['first_chunk_max_s'])} | {cell(row['line_wait_p50_s'])} / "
            f"{cell(row['line_wait_p95_s'])} | {cell(row['first_picture_p50_s'])} / "
            f"{cell(row['first_picture_p95_s'])} | {row['stalled']} | {row['longest_wait_s']:.2f} | "
            f"{row['useful_fps']:.0f} ({row['demand_fps']:.0f}) | {row['busy_fraction']:.0%} | {row['steps']} "
            f"({row['mean_step_sessions']:.1f}) | {row['peak_gpu_allocated_gib']:.1f} / "
            f"{row['peak_gpu_reserved_gib']:.1f} |"
        )
    lines += ["", verdict(report["rows"]), "", "Predictions, written before the first GPU run:", ""]
    lines += [f"- {name}: {text}" for name, text in PREDICTIONS.items()]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict]) -> str:
    """The goal at 16 visitors, and the highest load each service kept without stalls and within 1 s."""

    def met(row: dict) -> bool:
        return (
            row["served"]
            and not row["refused"]
            and not row["failed"]
            and not row["unfinished"]
            and row["stalled"] <= GOALS["stalled"]
            and row["first_chunk_p95_s"] <= GOALS["p95_first_chunk_s"]
        )

    parts = []
    for service in SERVICES:
        ran = sorted((r for r in rows if r["service"] == service), key=lambda r: r["load"])
        if not ran:
            continue
        held = ", ".join(f"{r['load']:g}" for r in ran if met(r)) or "none"
        broke = ", ".join(f"{r['load']:g}" for r in ran if not met(r)) or "none"
        parts.append(f"{service} held at loads {held}, not at {broke}")
        goal = [r for r in ran if r["load"] == GOALS["visitors"]]
        if goal and service == "batched":
            row = goal[0]
            reached = met(row) and row["useful_fps"] >= GOALS["useful_fps"]
            parts.append(
                f"goal at {GOALS['visitors']} (p95 first chunk <= {GOALS['p95_first_chunk_s']} s, no stall, >= "
                f"{GOALS['useful_fps']} useful fps): p95 {cell(row['first_chunk_p95_s'])} s, {row['stalled']} "
                f"stalled, {row['useful_fps']:.0f} fps: {'met' if reached else 'not met'}"
            )
    return "Held: every visitor served, none stalled, p95 first chunk <= 1 s. " + "; ".join(parts) + "."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for visitors.json and RESULTS.md")
    parser.add_argument("--levels", default="1,4,8,16,24", help="loads: visitors speaking at once on average")
    parser.add_argument("--services", default="batched,one-at-a-time", help=f"any of {', '.join(SERVICES)}")
    parser.add_argument("--seconds", type=float, default=60.0, help="arrivals over this long")
    parser.add_argument("--speech", default="8,15", help="seconds of speech a visitor, least,most")
    parser.add_argument("--sessions", type=int, default=None, help="engine sessions (default: by GPU size)")
    parser.add_argument("--largest-step", type=int, default=LARGEST_STEP)
    parser.add_argument("--sizes", default=None, help="pad steps to these sizes, e.g. 1,8 (default: any size)")
    parser.add_argument("--variant", choices=("lite", "pro"), default="lite")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=None, help="frame size (default 512, tiny 64)")
    parser.add_argument("--tiny", action="store_true", help="tiny random models: checks the script, not the speed")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds after the last arrival to let runs end")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], help="earlier visitors.json to add rows from")
    parser.add_argument("--results", type=Path, default=None, help="also write the section into this RESULTS.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = compute_dtype(device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    size = args.size or (64 if args.tiny else 512)
    sessions = args.sessions or (default_sessions() if device.type == "cuda" else 4)
    speech = tuple(float(s) for s in args.speech.split(","))
    args.out.mkdir(parents=True, exist_ok=True)

    print(
        f"building FlashHead {args.variant} ({'tiny' if args.tiny else 'full-size'}) on {device}, {sessions} sessions",
        flush=True,
    )
    start = time.perf_counter()
    pipeline = build_pipeline(args.variant, args.tiny, device, dtype, size)
    scheduler = batched(FlashHeadEngine(pipeline, args.variant), sessions, args.largest_step)
    sizes_asked = batch_sizes(args.sizes) if args.sizes else None
    warm = optimise_behind(
        scheduler,
        compiled=device.type == "cuda",
        sizes=sizes_asked,
        progress=lambda _, what: print(f"{time.perf_counter() - start:.0f} s: {what}", flush=True),
    )
    print(f"built and warmed in {time.perf_counter() - start:.0f} s: {warm}", flush=True)
    engine = (LITE if args.variant == "lite" else PRO).loaded(scheduler)
    log = StepLog(scheduler.engine)
    report = {
        "command": "python " + shlex.join(["bench/visitors.py", *sys.argv[1:]]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "variant": args.variant,
        "size": size,
        "weights": "tiny random models (script check only)" if args.tiny else "random full-size weights",
        "sessions": sessions,
        "largest_step": scheduler.batching.largest,
        "sizes": list(scheduler.engine.batch_sizes or []) or "any",
        "warm_up_s": {k: round(v, 1) for k, v in warm.items()},
        "seconds": args.seconds,
        "speech": args.speech,
        "rows": [row for path in args.merge for row in json.loads(path.read_text())["rows"]],
    }
    for load in [float(x) for x in args.levels.split(",")]:
        plans = plan_visitors(load, args.seconds, speech, seed=args.seed + int(load * 1000))
        speech_s = sum(sum(p.sentences) for p in plans)
        print(
            f"load {load:g}: {len(plans)} visitors, {speech_s:.0f} s of speech "
            f"({speech_s * FPS / args.seconds:.0f} frames/s asked over the arrivals)",
            flush=True,
        )
        for service in args.services.split(","):
            row = serve(engine, sessions, service, load, plans, log, args.drain)
            report["rows"] = [r for r in report["rows"] if (r["service"], r["load"]) != (service, load)] + [row]
            print(json.dumps({k: v for k, v in row.items() if k != "visits"}), flush=True)
            (args.out / "visitors.json").write_text(json.dumps(report, indent=1))
            section = render_section(report)
            (args.out / "RESULTS.md").write_text(f"## {SECTION}\n\n{section}")
            if args.results is not None:
                write_section(SECTION, section, args.results)
    print(render_section(report))


if __name__ == "__main__":
    main()
