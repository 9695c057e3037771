"""The app itself under many visitors: the real server, its encoders and live streams, read as the page reads them.

bench/visitors.py times FlashHead's scheduler and the waiting line alone: no page request, no Gradio queue, no
encoder, no live stream. This starts the real `app.py` (a subprocess, as bench/page_driver.AppServer does) and
sends simulated visitors at it through the public API. Each arrives at random (Poisson; a load of N means N
speaking at once on average), presses Generate with a photo and a recorded WAV (`/run` with
speech_from="recording": no voice model needed), and reads its run's live stream exactly as ui/live_player.js
does, with one HTTP GET of live/<token> as it grows, parsing the fragmented MP4's boxes as they arrive
(each fragment's media time is its `tfdt` base decode time plus its samples' durations).

Per visitor, at the client: Generate -> the first fragment holding a frame; whether playback in real time from
that frame would ever stall, and for how long (the fragments' media times against their arrival); served,
refused (with its sentence) or failed. Per load: the engine's busy share (its draws, logged in the server) and
nvidia-smi's, useful frames/s, CPU cores of the server's process tree (the ffmpeg encoders apart from the Python
server) and its memory. The server logs, per stream, when frames reached its encoder and when bytes left it, so
each visitor's first picture and stalls split into the engine, the encoder and the stream's reads: that names
where it breaks. The same arrivals then go through bench/visitors.py's engine-only service in the same server
process, on the same compiled engine (no second compile), so the product's own overhead is a number.

On a GPU machine (FlashHead Lite at full size from random weights in the published layout, written first):
    python bench/app_visitors.py --out $OUT --recordings R --landmarks L.pkl
`--recordings` (WAVs) and `--landmarks` (MediaPipe's answers for the photos the server will see, replayed there
with the time they took, for a machine without MediaPipe) are made here first with `--prepare`, which needs
the offline voice and MediaPipe. Tiny, on a CPU (the default engine, one or two visitors; tests/ runs it):
    python bench/app_visitors.py --tiny --out /tmp/app_visitors
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import pickle
import platform
import queue
import re
import shlex
import struct
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECTION = "Many visitors through the real app (server, encoders, live streams)"
PHOTO = ROOT / "assets" / "faces" / "astronaut.png"
# Loads in the order they are measured, the goals' first, so that a run cut short by its time limit has them.
LOADS = (12, 16, 24, 8, 4)
SPEECH_SECONDS = (5.0, 10.0)
RECORDINGS = 6
RECORDING_RATE = 16_000
ARRIVAL_SECONDS = 20.0
DRAIN_SECONDS = 25.0
SAMPLE_SECONDS = 0.5
# A stall shorter than this is not counted against the goals (the page's player starts 0.3 s ahead).
STALL_GOAL_S = 0.2
GOALS = {
    12: "p95 Generate -> first picture <= 1.5 s, no visitor stalled > 0.2 s",
    16: "everyone served, no visitor stalled > 0.2 s",
}
LIVE_SRC = re.compile(r'data-live-src="([^"]+)"')
ENCODER_NAMES = ("ffmpeg", "ffprobe")
# The A/B of the worker-thread pools: Gradio's handlers on a pool of their own, as launch(max_threads=64) gives.
OWN_THREADS = "Gradio's handlers on 64 threads of their own"
OWN_THREAD_TOKENS = 64
VOICE = "offline:joe"
# Written before the first GPU run, from bench/visitors.py's H200 runs (engine alone: ~394 useful frames/s at
# most, first chunk p95 0.91 s at load 16 with 4 of 60 stalled <= 0.04 s), docs/SCALING.md's 0.15-0.2 core per
# x264 stream (0.17-0.24 measured here on this 2-core CPU for 512x512), and this bench's tiny runs; kept in the
# section to compare with.
PREDICTIONS = {
    "start-up": "weights written ~15 s, engine loaded ~20 s and compiled ~4.5 min (1 and 8 sessions, then 2-7)",
    "GPU": "the same draws as the engine alone at the same load: busy ~75% at load 12, ~95% at 16, ~97% at 24 "
    "(~390 useful frames/s, the engine's ceiling); nvidia-smi near 100% from load 12 (it counts any kernel)",
    "encoders": "one ffmpeg per run at ~0.2 core (x264 veryfast, zerolatency, 512x512, 25 fps): ~2.5 cores at "
    "load 12, ~3.5 at 16, ~3.5 at 24 (16 running) of the host's 16; a fragment out ~0.2-0.3 s after its last "
    "frame went in (the 0.2 s fragment plus encoding); not the first to break",
    "Python server": "~0.1 core a visitor (frames copied to the encoder, Gradio's events, the streams): ~1.5-2 "
    "cores at 16. But Gradio's sync handlers and Starlette's stream reads share anyio's one pool of 40 worker "
    "threads, and every running run, every waiting visitor and every open stream holds one while it waits: "
    "~2 x running + waiting; past 40 (16 running + 8 waiting), stream reads queue for a thread",
    "load 12": "app: first picture p50 ~0.9 s, p95 ~1.6 s (the engine's arrival -> first frames p95 ~1.2 s, "
    "plus ~0.3-0.4 s: upload, face step, the first 0.2 s fragment, the SSE round trip and the GET); no stall "
    "> 0.2 s; the goal (p95 <= 1.5 s) missed or met by a hair",
    "load 16": "everyone served; first picture p95 ~2.5-3.5 s (line waits at the peaks, as the engine alone); "
    "stalls: a few, and some > 0.2 s where the pool of 40 threads runs dry (16 running + waiting + 16 streams): "
    "the goal at risk. The same load with Gradio's handlers on 64 threads of their own: reads no longer wait "
    "for a thread, and the stalls left are the GPU's",
    "load 24": "line full: some refused with 'The demo is busy...'; the pool of 40 threads far over its limit "
    "(16 running + 16 waiting + 16 streams): reads of up to seconds, many stalls > 0.2 s",
    "where it breaks": "first the Python server's shared pool of 40 worker threads (stream reads waiting behind "
    "run handlers), then the GPU; encoders, CPU and memory have room on 16 cores",
}


# --- the fragmented MP4, as the page's player receives it ---------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    """One moof + mdat pair: when its last byte arrived, where it ended, and each track's (start s, end s, samples)."""

    arrival: float
    end: int
    tracks: dict[int, tuple[float, float, int]]


def _boxes(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (type, payload) of each box in `data`, which holds whole boxes."""
    at = 0
    while at + 8 <= len(data):
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = len(data) - at
        yield kind, data[at + header : at + size]
        at += size


class FragmentedMp4:
    """A growing fragmented MP4 parsed as its bytes arrive: only box headers are kept, media payloads skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._consumed = 0
        self._skip = 0
        self._pending: dict[int, tuple[float, float, int]] | None = None
        self.timescales: dict[int, int] = {}
        self.handlers: dict[int, str] = {}
        self._default_durations: dict[int, int] = {}
        self.fragments: list[Fragment] = []
        self.bytes = 0

    def track(self, handler: str) -> int | None:
        """The id of the track of this handler type ("vide", "soun")."""
        return next((track for track, kind in self.handlers.items() if kind == handler), None)

    def feed(self, data: bytes, now: float) -> None:
        """More of the stream, arrived at `now` (monotonic seconds)."""
        self.bytes += len(data)
        self._buffer += data
        while True:
            if self._skip:
                taken = min(self._skip, len(self._buffer))
                del self._buffer[:taken]
                self._consumed += taken
                self._skip -= taken
                if self._skip:
                    return
                self._fragment_done(now)
                continue
            if len(self._buffer) < 8:
                return
            size, kind = struct.unpack_from(">I4s", self._buffer)
            header = 8
            if size == 1:
                if len(self._buffer) < 16:
                    return
                size, header = struct.unpack_from(">Q", self._buffer, 8)[0], 16
            if kind == b"mdat":
                del self._buffer[:header]
                self._consumed += header
                self._skip = size - header
                if not self._skip:
                    self._fragment_done(now)
                continue
            if len(self._buffer) < size:
                return
            body = bytes(self._buffer[header:size])
            del self._buffer[:size]
            self._consumed += size
            if kind == b"moov":
                self._read_moov(body)
            elif kind == b"moof":
                self._pending = self._read_moof(body)

    def _fragment_done(self, now: float) -> None:
        if self._pending is not None:
            self.fragments.append(Fragment(now, self._consumed, self._pending))
            self._pending = None

    def _read_moov(self, body: bytes) -> None:
        for kind, payload in _boxes(body):
            if kind == b"trak":
                self._read_trak(payload)
            elif kind == b"mvex":
                for inner, trex in _boxes(payload):
                    if inner == b"trex":
                        track, _, duration = struct.unpack_from(">III", trex, 4)
                        self._default_durations[track] = duration

    def _read_trak(self, body: bytes) -> None:
        track = timescale = 0
        handler = ""
        for kind, payload in _boxes(body):
            if kind == b"tkhd":
                track = struct.unpack_from(">I", payload, 20 if payload[0] == 1 else 12)[0]
            elif kind == b"mdia":
                for inner, data in _boxes(payload):
                    if inner == b"mdhd":
                        timescale = struct.unpack_from(">I", data, 20 if data[0] == 1 else 12)[0]
                    elif inner == b"hdlr":
                        handler = data[8:12].decode("latin-1")
        self.timescales[track] = timescale
        self.handlers[track] = handler

    def _read_moof(self, body: bytes) -> dict[int, tuple[float, float, int]]:
        tracks = {}
        for kind, payload in _boxes(body):
            if kind == b"traf":
                track, start, duration, samples = self._read_traf(payload)
                scale = self.timescales.get(track) or 1
                tracks[track] = (start / scale, (start + duration) / scale, samples)
        return tracks

    def _read_traf(self, body: bytes) -> tuple[int, int, int, int]:
        """(track id, base decode time, summed sample durations, samples) of one track fragment."""
        track = start = duration = samples = 0
        default = 0
        for kind, payload in _boxes(body):
            flags = int.from_bytes(payload[1:4], "big")
            if kind == b"tfhd":
                track = struct.unpack_from(">I", payload, 4)[0]
                at = 8 + (8 if flags & 0x1 else 0) + (4 if flags & 0x2 else 0)
                default = struct.unpack_from(">I", payload, at)[0] if flags & 0x8 else self._default_durations.get(
                    track, 0
                )
            elif kind == b"tfdt":
                start = struct.unpack_from(">Q" if payload[0] == 1 else ">I", payload, 4)[0]
            elif kind == b"trun":
                count = struct.unpack_from(">I", payload, 4)[0]
                at = 8 + (4 if flags & 0x1 else 0) + (4 if flags & 0x4 else 0)
                fields = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
                for index in range(count):
                    duration += struct.unpack_from(">I", payload, at + index * fields)[0] if flags & 0x100 else default
                samples += count
        return track, start, duration, samples


@dataclass(frozen=True)
class Playback:
    """Real-time playback of a stream from the arrival of its first frame: when that was and where it stalled."""

    first_frame: float | None
    first_index: int
    stalls: tuple[float, ...]
    frames: int
    media_seconds: float

    @property
    def longest_stall(self) -> float:
        return max(self.stalls, default=0.0)


def playback(stream: FragmentedMp4) -> Playback:
    """Play from the first fragment holding a video frame, in real time; stall whenever the position reaches the
    end of what has arrived in every track (a Media Source buffer plays only where audio and video both are),
    until a fragment moves that end on."""
    video = stream.track("vide")
    counts = [f.tracks.get(video, (0.0, 0.0, 0))[2] for f in stream.fragments]
    first = next((index for index, count in enumerate(counts) if count), None)
    if first is None:
        return Playback(None, -1, (), 0, 0.0)
    ends: dict[int, float] = {}

    def buffered() -> float:
        return min(ends.get(track, -math.inf) for track in stream.handlers)

    def take(fragment: Fragment) -> None:
        for track, (_, end, count) in fragment.tracks.items():
            if count:
                ends[track] = max(ends.get(track, -math.inf), end)

    for fragment in stream.fragments[:first]:
        take(fragment)
    position, clock = stream.fragments[first].tracks[video][0], stream.fragments[first].arrival
    stalled_since: float | None = None
    stalls = []
    for index, fragment in enumerate(stream.fragments[first:]):
        if index and stalled_since is None:
            ahead, elapsed = buffered() - position, fragment.arrival - clock
            if elapsed > ahead:
                position, stalled_since = position + ahead, clock + ahead
            else:
                position += elapsed
        clock = fragment.arrival
        take(fragment)
        if stalled_since is None and buffered() <= position + 1e-6:
            stalled_since = clock
        elif stalled_since is not None and buffered() > position + 1e-6:
            stalls.append(clock - stalled_since)
            stalled_since = None
    media = max((f.tracks[video][1] for f in stream.fragments if video in f.tracks), default=0.0)
    return Playback(stream.fragments[first].arrival, first, tuple(stalls), sum(counts), media)


# --- visitors, at the client --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recording:
    """A WAV a visitor sends as their speech, its length, and where the app will cut it into pieces (s)."""

    path: Path
    seconds: float
    pieces: tuple[float, ...]


@dataclass(frozen=True)
class Plan:
    """One visitor: when they arrive (s from the load's start) and which recording they send."""

    number: int
    arrival: float
    recording: int


def plan_visitors(load: float, seconds: float, recordings: list[Recording], seed: int) -> list[Plan]:
    """Poisson arrivals over `seconds` at `load` visitors speaking at once on average (Little's law); one at
    least, so that a tiny run always has a visitor."""
    rng = np.random.default_rng(seed)
    mean = float(np.mean([r.seconds for r in recordings]))
    plans, now = [], rng.exponential(mean / load)
    while now < seconds:
        plans.append(Plan(len(plans), float(now), int(rng.integers(len(recordings)))))
        now += rng.exponential(mean / load)
    return plans or [Plan(0, 0.0, 0)]


@dataclass
class Visit:
    """What one visitor saw, in monotonic seconds."""

    number: int
    arrival: float
    speech_s: float
    submitted: float = 0.0
    started: float | None = None
    finished: float | None = None
    token: str = ""
    status: str = ""
    downloaded: bool = False
    error: str = ""
    stream: FragmentedMp4 = field(default_factory=FragmentedMp4)
    stream_opened: float | None = None
    late: float = 0.0
    job: object | None = None

    @property
    def outcome(self) -> str:
        if self.stream.fragments and self.downloaded and not self.error:
            return "served"
        if self.status.startswith("⚠️") and not self.stream.fragments:
            return "refused"
        return "failed"


def read_stream(url: str, visit: Visit) -> None:
    """GET the live stream once and take its bytes as they come, as ui/live_player.js's fetch does."""
    import httpx

    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(60.0, connect=10.0)) as response:
            visit.stream_opened = time.monotonic()
            if response.status_code != 200:
                visit.error = f"live stream answered {response.status_code}"
                return
            for data in response.iter_raw():
                visit.stream.feed(data, time.monotonic())
    except Exception as error:  # a benchmark counts a broken stream rather than stopping
        visit.error = f"live stream: {type(error).__name__}: {error}"


def visit_app(base: str, clients: queue.Queue, plan: Plan, recording: Recording, visit: Visit, t0: float,
              engine: str) -> None:
    """One visitor: arrive, press Generate (upload the photo and the recording, /run), read the live stream the
    page is given, and wait for the end."""
    from gradio_client import handle_file

    time.sleep(max(0.0, t0 + plan.arrival - time.monotonic()))
    client = clients.get()
    reader: threading.Thread | None = None
    visit.submitted = time.monotonic()
    visit.late = visit.submitted - (t0 + plan.arrival)
    try:
        job = client.submit(
            handle_file(str(PHOTO)), "", VOICE, engine, "recording", handle_file(str(recording.path)), api_name="/run"
        )
        visit.job = job
        for update in job:
            video, download, status = update[0], update[1], update[-1]
            if reader is None and isinstance(video, str) and (found := LIVE_SRC.search(video)):
                visit.started = time.monotonic()
                visit.token = found.group(1).rsplit("/", 1)[-1]
                reader = threading.Thread(target=read_stream, args=(base + found.group(1), visit), daemon=True)
                reader.start()
            if isinstance(status, str) and status:
                visit.status = status
            if download and not (isinstance(download, dict) and download.get("__type__") == "update"):
                visit.downloaded = True
        visit.finished = time.monotonic()
        if reader is not None:
            reader.join(timeout=60)
    except Exception as error:  # counted as failed, and must not stop the others
        visit.error = f"{type(error).__name__}: {error}"[:300]
    finally:
        clients.put(client)


# --- resources of the server's process tree, and the GPU ----------------------------------------------------


TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def processes() -> dict[int, tuple[int, str, float, float, int]]:
    """Every process from /proc: pid -> (parent, name, CPU seconds, CPU seconds of reaped children, RSS bytes)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        own = (int(fields[11]) + int(fields[12])) / TICK
        reaped = (int(fields[13]) + int(fields[14])) / TICK
        table[int(entry.name)] = (int(fields[1]), name, own, reaped, int(fields[21]) * PAGE)
    return table


class Resources:
    """Samples every SAMPLE_SECONDS: CPU seconds so far of the Python server and of its ffmpeg children (those
    running and those it has reaped: /proc's cutime), their memory, this client's CPU, and nvidia-smi."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[dict] = []
        self.gpu: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._smi = self._start_smi()
        threading.Thread(target=self._sample, name="resources", daemon=True).start()

    def _start_smi(self) -> subprocess.Popen | None:
        try:
            smi = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                 f"--loop-ms={int(SAMPLE_SECONDS * 1000)}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
        except OSError:
            return None
        threading.Thread(target=self._read_smi, args=(smi,), name="nvidia-smi", daemon=True).start()
        return smi

    def _read_smi(self, smi: subprocess.Popen) -> None:
        for line in smi.stdout:
            try:
                busy, memory = (float(part) for part in line.split(","))
            except ValueError:
                continue
            self.gpu.append((time.monotonic(), busy, memory))

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            table = processes()
            if self.pid not in table:
                return
            children: dict[int, list[int]] = {}
            for pid, (parent, *_) in table.items():
                children.setdefault(parent, []).append(pid)
            _, _, python, reaped, python_rss = table[self.pid]
            encoders, others, encoder_rss, others_rss, count = reaped, 0.0, 0, 0, 0
            todo = list(children.get(self.pid, []))
            while todo:
                pid = todo.pop()
                todo += children.get(pid, [])
                parent, name, own, gone, rss = table[pid]
                if name.startswith(ENCODER_NAMES):
                    encoders, encoder_rss, count = encoders + own, encoder_rss + rss, count + 1
                else:
                    others, others_rss = others + own + gone, others_rss + rss
            mine = os.times()
            self.samples.append({
                "t": time.monotonic(),
                "python": python,
                # With the children the server has waited for (cutime): its encoders and ffprobe/ffmpeg calls.
                "encoders": encoders,
                "others": others,
                "encoders_running": count,
                "python_rss": python_rss,
                "encoder_rss": encoder_rss,
                "others_rss": others_rss,
                "client": mine.user + mine.system,
            })

    def window(self, start: float, end: float) -> dict:
        """CPU cores (CPU seconds over wall seconds) and peak memory between `start` and `end`; GPU utilisation."""
        inside = [s for s in self.samples if start - SAMPLE_SECONDS <= s["t"] <= end + SAMPLE_SECONDS]
        gpu = [g for g in self.gpu if start <= g[0] <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        wall = last["t"] - first["t"]

        def cores(key: str) -> float:
            return (last[key] - first[key]) / wall

        def peak_cores(key: str, span: float = 2.0) -> float:
            best = 0.0
            for index, sample in enumerate(inside):
                later = next((s for s in inside[index:] if s["t"] - sample["t"] >= span), None)
                if later is not None:
                    best = max(best, (later[key] - sample[key]) / (later["t"] - sample["t"]))
            return best

        return {
            "wall_s": wall,
            "cores_python": cores("python"),
            "cores_encoders": cores("encoders"),
            "cores_others": cores("others"),
            "cores_all": cores("python") + cores("encoders") + cores("others"),
            "peak_cores_python": peak_cores("python"),
            "peak_cores_encoders": peak_cores("encoders"),
            "cpu_s_python": last["python"] - first["python"],
            "cpu_s_encoders": last["encoders"] - first["encoders"],
            "cores_client": cores("client"),
            "encoders_running_max": max(s["encoders_running"] for s in inside),
            "rss_python_gib_max": max(s["python_rss"] for s in inside) / 2**30,
            "rss_tree_gib_max": max(s["python_rss"] + s["encoder_rss"] + s["others_rss"] for s in inside) / 2**30,
            "gpu_util_mean": float(np.mean([g[1] for g in gpu])) if gpu else None,
            "gpu_memory_gib_max": max(g[2] for g in gpu) / 1024 if gpu else None,
        }

    def close(self) -> None:
        self._stop.set()
        if self._smi is not None:
            self._smi.terminate()


# --- inside the server process -------------------------------------------------------------------------------


class EventLog:
    """JSON lines, one per thing the server did that the bench times, written by one thread."""

    def __init__(self, path: Path) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._file = path.open("a", buffering=1)
        threading.Thread(target=self._write, name="bench-events", daemon=True).start()

    def __call__(self, kind: str, *values: object) -> None:
        self._lines.put(json.dumps([kind, time.monotonic(), *values]))

    def _write(self) -> None:
        while True:
            line = self._lines.get()
            self._file.write(line + "\n")


def read_events(path: Path, start: float, end: float) -> list[list]:
    """The server's events between `start` and `end` (monotonic seconds)."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:  # the line being written
            continue
        if start <= event[1] <= end:
            events.append(event)
    return events


def _log_worker_threads(log: EventLog) -> None:
    """Count the calls waiting for or holding one of anyio's worker threads, where Gradio runs sync handlers and
    Starlette reads sync streams: how many at once, and the default pool's tokens in use, every half second."""
    import anyio.to_thread

    state = {"in_flight": 0, "peak": 0, "borrowed": 0, "total": 0}
    run_sync = anyio.to_thread.run_sync

    async def counted(*args: object, **kwargs: object) -> object:
        _Bench.loop = asyncio.get_running_loop()
        state["in_flight"] += 1
        state["peak"] = max(state["peak"], state["in_flight"])
        limiter = anyio.to_thread.current_default_thread_limiter()
        state["borrowed"] = max(state["borrowed"], int(limiter.borrowed_tokens))
        state["total"] = int(limiter.total_tokens)
        try:
            return await run_sync(*args, **kwargs)
        finally:
            state["in_flight"] -= 1

    anyio.to_thread.run_sync = counted

    def report() -> None:
        while True:
            time.sleep(SAMPLE_SECONDS)
            own = getattr(_Bench.page, "limiter", None)
            log("threads", state["peak"], state["borrowed"], state["total"], own.borrowed_tokens if own else None)
            state["peak"], state["borrowed"] = state["in_flight"], 0

    threading.Thread(target=report, name="bench-threads", daemon=True).start()


def _log_streams(log: EventLog) -> None:
    """Each run's stream: opened, frames into its encoder (and accepted), bytes out of it."""
    from avatar.live_stream import Broadcast, LiveStreams
    from avatar.sinks.live import LiveSink

    open_stream, append, write = LiveStreams.open, Broadcast.append, LiveSink.write

    def opened(self: LiveStreams) -> Broadcast:
        broadcast = open_stream(self)
        log("open", broadcast.token)
        return broadcast

    def appended(self: Broadcast, data: bytes) -> None:
        append(self, data)
        log("bytes", self.token, len(data))

    def written(self: LiveSink, frames: np.ndarray, audio: np.ndarray, first_frame: int) -> None:
        arrived = time.monotonic()
        write(self, frames, audio, first_frame)
        log("frames", self.broadcast.token, first_frame, len(frames), arrived)

    LiveStreams.open, Broadcast.append, LiveSink.write = opened, appended, written


def _log_steps(log: EventLog, engine: object) -> None:
    """Each step the engine draws (FlashHead's batched draw): when, how long, how many faces."""
    draw = getattr(engine, "draw", None)
    if draw is None:
        return

    def logged(states, chunks):
        start = time.monotonic()
        yield from draw(states, chunks)
        log("step", time.monotonic() - start, len(states), start)

    engine.draw = logged


def replay_landmarks(path: Path) -> None:
    """MediaPipe's answers recorded by `record_landmarks`, given back for the same photos, each after the time it
    took there and under the landmarker's own lock; a photo never recorded is an error, not a guess."""
    from avatar import face_mesh

    entries = pickle.loads(path.read_bytes())

    def detect(cls: type, photo: np.ndarray, model_path: Path) -> list:
        fingerprint = _fingerprint(photo)
        fits = [e for e in entries if e["shape"] == photo.shape]
        best = min(fits, key=lambda e: float(np.abs(e["print"] - fingerprint).mean()), default=None)
        if best is None or float(np.abs(best["print"] - fingerprint).mean()) > 2.0:
            raise RuntimeError(f"no landmarks were recorded for a photo of shape {photo.shape}")
        with face_mesh._Landmarker._lock:
            time.sleep(best["seconds"])
        return best["faces"]

    face_mesh._Landmarker.detect = classmethod(detect)


def _fingerprint(photo: np.ndarray) -> np.ndarray:
    rows = np.linspace(0, photo.shape[0] - 1, 16).astype(int)
    columns = np.linspace(0, photo.shape[1] - 1, 16).astype(int)
    return photo[rows][:, columns].astype(np.float32)


def record_landmarks(path: Path, tiny: bool) -> None:
    """Run the face step on every photo the server will see (its sample faces at warm-up, the visitors' photo)
    with the real MediaPipe, keeping each answer and how long it took."""
    from avatar import face_mesh
    from avatar.studio import Studio

    entries = []
    detect = face_mesh._Landmarker.detect.__func__

    def recorded(cls: type, photo: np.ndarray, model_path: Path) -> list:
        start = time.perf_counter()
        faces = detect(cls, photo, model_path)
        entries.append({"shape": photo.shape, "print": _fingerprint(photo), "faces": faces,
                        "seconds": time.perf_counter() - start})
        return faces

    face_mesh._Landmarker.detect(np.zeros((64, 64, 3), np.uint8), face_mesh.FACE_LANDMARKER_MODEL)  # model loaded
    face_mesh._Landmarker.detect = classmethod(recorded)
    if tiny:
        os.environ.update(server_env(tiny, None))
    studio = Studio()
    studio.read_face(studio.sample_faces()[0])
    studio.read_face(PHOTO)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(entries))
    print(f"landmarks: {len(entries)} answers, {sum(e['seconds'] for e in entries):.2f} s of MediaPipe in all")


class _Bench:
    """What the control thread keeps between requests: the studio, the engine it draws with, its step log."""

    studio: object | None = None
    engine_only: tuple | None = None
    page: object | None = None
    loop: asyncio.AbstractEventLoop | None = None


def inside_server(control: str, landmarks: str = "", tiny: bool = False) -> None:
    """Run app.py with the bench's logs and its control thread (engine-only runs on the app's own engine)."""
    folder = Path(control)
    log = EventLog(folder / "events.jsonl")
    _log_worker_threads(log)
    if landmarks:
        replay_landmarks(Path(landmarks))
    _log_streams(log)
    from avatar import studio as studio_module

    init = studio_module.Studio.__init__

    def kept(self: object, *args: object, **kwargs: object) -> None:
        init(self, *args, **kwargs)
        _Bench.studio = self

    studio_module.Studio.__init__ = kept
    import gradio

    launch = gradio.Blocks.launch

    def launched(self: gradio.Blocks, *args: object, **kwargs: object) -> object:
        _Bench.page = self
        return launch(self, *args, **kwargs)

    gradio.Blocks.launch = launched
    threading.Thread(target=_control, args=(folder, log, tiny), name="bench-control", daemon=True).start()
    import app

    app.main()


def _control(folder: Path, log: EventLog, tiny: bool) -> None:
    """Load the preferred engine (as the app's warm-up does), say when it is ready, then serve requests."""
    while _Bench.studio is None:
        time.sleep(0.1)
    studio = _Bench.studio
    key = studio.engines.preferred()
    start = time.monotonic()
    try:
        engine = studio.engines.get(key)
    except Exception as error:  # written for the bench to report, then the bench stops
        _write_json(folder / "ready.json", {"error": f"{type(error).__name__}: {error}"})
        return
    _log_steps(log, engine.engine)
    _write_json(folder / "ready.json", {
        "engine": key, "seconds": time.monotonic() - start, "sessions": studio.engines.sessions(key),
        "device": engine.info.device,
    })
    while True:
        for request in sorted(folder.glob("request-*.json")):
            asked = json.loads(request.read_text())
            request.unlink()
            try:
                if asked.get("kind") == "gradio_threads":
                    answer = _gradio_threads(asked["tokens"])
                elif asked.get("kind") == "default_threads":
                    answer = _default_threads(asked["tokens"])
                else:
                    answer = _engine_only(studio, key, asked, tiny)
            except Exception as error:  # reported in the result, the server carries on
                answer = {"error": f"{type(error).__name__}: {error}"}
            _write_json(folder / request.name.replace("request", "result"), answer)
        time.sleep(0.2)


def _gradio_threads(tokens: int | None) -> dict:
    """Give Gradio's event handlers a pool of `tokens` worker threads of their own, as `launch(max_threads=...)`
    does for any number but 40 (None: back to sharing anyio's default pool with Starlette's stream reads)."""
    import anyio

    async def change() -> None:
        _Bench.page.limiter = None if tokens is None else anyio.CapacityLimiter(tokens)

    asyncio.run_coroutine_threadsafe(change(), _Bench.loop).result(timeout=10)
    return {"gradio_threads": tokens}


def _default_threads(tokens: int) -> dict:
    """Resize anyio's default pool of worker threads (40): a small pool shows on a small machine what a full one
    does on a large one."""
    import anyio.to_thread

    async def change() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = tokens

    asyncio.run_coroutine_threadsafe(change(), _Bench.loop).result(timeout=10)
    return {"default_threads": tokens}


def _engine_only(studio: object, key: str, asked: dict, tiny: bool) -> dict:
    """bench/visitors.py's engine-only service for the same arrivals, on the app's engine (a tiny FlashHead on
    the CPU when the app runs another engine). A recording's pieces are all there at once: no voice to wait for."""
    from bench import visitors

    visitors.VOICE_SECONDS_PER_SENTENCE = 0.0
    visitors.VOICE_SPEED = math.inf
    if _Bench.engine_only is None:
        loaded = studio.engines.get(key)
        if getattr(loaded.engine, "pipeline", None) is not None:
            _Bench.engine_only = (loaded, studio.engines.sessions(key), visitors.StepLog(loaded.engine))
        else:
            import torch

            from avatar.engines.flashhead.engine import FlashHeadEngine, batched
            from avatar.engines.flashhead.spec import LITE
            from bench.flashhead_speed import build_pipeline

            pipeline = build_pipeline("lite", True, torch.device("cpu"), torch.float32, 64)
            scheduler = batched(FlashHeadEngine(pipeline, "lite"), 4)
            _Bench.engine_only = (LITE.loaded(scheduler), 4, visitors.StepLog(scheduler.engine))
    loaded, sessions, steps = _Bench.engine_only
    plans = [visitors.Plan(n, arrival, tuple(pieces)) for n, arrival, pieces in asked["plans"]]
    row = visitors.serve(loaded, sessions, "batched", asked["load"], plans, steps, asked["drain"])
    row["engine"] = "tiny FlashHead Lite on the CPU" if tiny else key
    return row


def _write_json(path: Path, value: object) -> None:
    partial = path.with_suffix(".part")
    partial.write_text(json.dumps(value))
    partial.replace(path)


# --- the bench ------------------------------------------------------------------------------------------------


def server_env(tiny: bool, weights: Path | None) -> dict[str, str]:
    """The app's settings for the bench: FlashHead Lite from `weights`, or (tiny) the default engine, small."""
    if tiny:
        return {
            "AVATAR_ENGINE": "default",
            "AVATAR_CROP_SIZE": os.environ.get("AVATAR_CROP_SIZE", "128"),
            "AVATAR_MAX_VIDEO_SIDE": os.environ.get("AVATAR_MAX_VIDEO_SIDE", "192"),
        }
    assert weights is not None
    return {
        "AVATAR_ENGINE": "flashhead-lite",
        "AVATAR_FLASHHEAD_WEIGHTS": str(weights),
        "AVATAR_WAV2VEC2_WEIGHTS": str(weights / "wav2vec2"),
    }


def make_recordings(folder: Path, seconds: list[float]) -> None:
    """Spoken WAVs (16 kHz mono) of each length, from the offline voice."""
    from scipy.signal import resample_poly

    from avatar.speech.offline_voice import OfflineVoice

    voice = OfflineVoice()
    text = (
        "Every photo has a story, and today this one gets to tell it out loud. "
        "Welcome to the demo: type anything you like, or record your own voice, and I will say it for you. "
        "The face you chose speaks your words as they stream into the page, a fraction of a second at a time. "
    )
    spoken = voice.speak(text)
    audio = resample_poly(spoken.audio.astype(np.float64), RECORDING_RATE, spoken.sample_rate)
    while len(audio) < max(seconds) * RECORDING_RATE:
        audio = np.concatenate([audio, audio])
    folder.mkdir(parents=True, exist_ok=True)
    for length in seconds:
        piece = audio[: int(length * RECORDING_RATE)].copy()
        fade = min(len(piece), RECORDING_RATE // 50)
        piece[-fade:] *= np.linspace(1, 0, fade)
        with wave.open(str(folder / f"speech-{length:.1f}s.wav"), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RECORDING_RATE)
            out.writeframes((np.clip(piece, -1, 1) * 32767).astype("<i2").tobytes())


def load_recordings(folder: Path) -> list[Recording]:
    """The WAVs with their lengths and the pieces the app will cut each into (its own decode and cutting)."""
    from avatar.config import Settings
    from avatar.speech.recording import load_recording, piece_bounds

    settings = Settings()
    recordings = []
    for path in sorted(folder.glob("*.wav")):
        heard = load_recording(path, settings.max_recording_seconds, settings.max_recording_bytes)
        bounds = piece_bounds(heard.audio, heard.sample_rate)
        pieces = tuple((stop - start) / heard.sample_rate for start, stop in bounds)
        recordings.append(Recording(path, heard.duration, pieces))
    return recordings


def write_weights(folder: Path) -> None:
    """FlashHead Lite at full size, random weights in the published layout (as the ZeroGPU rehearsal writes)."""
    from bench.zerogpu_rehearsal import write_weights as write

    write(folder, tiny=False)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def serve_load(server: object, clients: queue.Queue, plans: list[Plan], recordings: list[Recording], load: float,
               engine: str, drain: float) -> tuple[list[Visit], float, float]:
    """The planned visitors through the app; their visits and the load's start and end (monotonic s)."""
    visits = [Visit(p.number, p.arrival, recordings[p.recording].seconds) for p in plans]
    t0 = time.monotonic() + 0.5
    threads = [
        threading.Thread(
            target=visit_app, args=(server.url, clients, p, recordings[p.recording], v, t0, engine), daemon=True
        )
        for p, v in zip(plans, visits, strict=True)
    ]
    for thread in threads:
        thread.start()
    deadline = t0 + plans[-1].arrival + drain
    last_report = time.monotonic()
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.5)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            done = sum(not t.is_alive() for t in threads)
            frames = sum(playback(v.stream).frames for v in visits)
            print(f"  app load {load:g}: {last_report - t0:.0f} s, {done}/{len(plans)} visitors done, {frames} frames",
                  flush=True)
    end = time.monotonic()
    for visit in visits:
        if visit.finished is None and not visit.error and visit.submitted:
            visit.error = "unfinished when the load's time ran out"
            if visit.job is not None:
                visit.job.cancel()  # Stop, so that the next load starts on an idle server
    for thread in threads:
        thread.join(timeout=max(0.0, end + 15 - time.monotonic()))
    return visits, t0, end


def summarise_app(load: float, visits: list[Visit], events: list[list], resources: dict, t0: float) -> dict:
    """The load's numbers from the visitors' side, split by the server's own log of each stream."""
    plays = {v.number: playback(v.stream) for v in visits}
    served = [v for v in visits if v.outcome == "served"]
    pictures = [plays[v.number].first_frame - v.submitted for v in served if plays[v.number].first_frame]
    longest = {v.number: plays[v.number].longest_stall for v in served}
    frames = sum(plays[v.number].frames for v in served)
    arrivals = [f.arrival for v in served for f in v.stream.fragments]
    wall = (max(arrivals) - min(v.submitted for v in served)) if served else 0.0
    steps = [e for e in events if e[0] == "step"]
    busy = busy_seconds([(e[4], e[4] + e[2]) for e in steps])
    threads = [e for e in events if e[0] == "threads"]
    split = where_the_time_went(visits, plays, events)
    encoder_seconds = resources.get("cpu_s_encoders", 0.0)
    python_seconds = resources.get("cpu_s_python", 0.0)
    media = sum(plays[v.number].media_seconds for v in served)
    return {
        "load": load,
        "visitors": len(visits),
        "served": len(served),
        "refused": sum(v.outcome == "refused" for v in visits),
        "failed": sum(v.outcome == "failed" for v in visits),
        "refusals": sorted({v.status for v in visits if v.outcome == "refused"})[:2],
        "errors": sorted({v.error or v.status for v in visits if v.outcome == "failed"})[:3],
        "first_picture_p50_s": percentile(pictures, 50),
        "first_picture_p95_s": percentile(pictures, 95),
        "first_picture_max_s": max(pictures, default=None),
        "stalled_any": sum(1 for s in longest.values() if s > 0),
        "stalled_over_goal": sum(1 for s in longest.values() if s > STALL_GOAL_S),
        "longest_stall_s": max(longest.values(), default=0.0),
        "useful_fps": frames / wall if wall else 0.0,
        "demand_fps": sum(v.speech_s for v in visits) * 25 / wall if wall else 0.0,
        "busy_fraction": busy / wall if wall else 0.0,
        "mean_step_faces": float(np.mean([e[3] for e in steps])) if steps else 0.0,
        "generate_late_max_s": max((v.late for v in visits), default=0.0),
        "worker_threads_peak": max((e[2] for e in threads), default=0),
        "thread_tokens_peak": max((e[3] for e in threads), default=0),
        "thread_tokens_total": max((e[4] for e in threads), default=0),
        "own_pool_tokens_peak": max((e[5] for e in threads if e[5] is not None), default=None),
        "encoder_cores_per_stream": encoder_seconds / media if media else None,
        "python_cores_per_stream": python_seconds / media if media else None,
        **split,
        "resources": resources,
        "visits": [
            {
                "number": v.number, "arrival": v.arrival, "speech_s": v.speech_s, "outcome": v.outcome,
                "status": v.status[:200], "error": v.error, "token": v.token[:6],
                "submitted": v.submitted - t0, "started": None if v.started is None else v.started - t0,
                "first_picture_s": None if not plays[v.number].first_frame else plays[v.number].first_frame
                - v.submitted,
                "stalls": [round(s, 3) for s in plays[v.number].stalls],
                "frames": plays[v.number].frames, "fragments": len(v.stream.fragments), "bytes": v.stream.bytes,
            }
            for v in visits
        ],
    }


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """How long at least one of the spans was going on (draws of an engine without a scheduler overlap)."""
    total, reached = 0.0, -math.inf
    for start, end in sorted(spans):
        if end > reached:
            total += end - max(start, reached)
            reached = end
    return total


def where_the_time_went(visits: list[Visit], plays: dict[int, Playback], events: list[list]) -> dict:
    """Each served visitor's first picture split at the server's marks (stream opened, first frames into the
    encoder, their bytes out of it, at the client), and for every fragment the encoder's and the stream's delay:
    the engine, the encoder and the reads each get their share."""
    opened = {e[2]: e[1] for e in events if e[0] == "open"}
    frames: dict[str, list[tuple[int, int, float, float]]] = {}
    appended: dict[str, list[tuple[float, int]]] = {}
    for event in events:
        if event[0] == "frames":
            frames.setdefault(event[2], []).append((event[3], event[4], event[5], event[1]))
        elif event[0] == "bytes":
            total = appended.setdefault(event[2], [])
            total.append((event[1], (total[-1][1] if total else 0) + event[3]))
    to_open, to_frames, to_bytes, to_client, encoder, reads, lateness = [], [], [], [], [], [], []
    for visit in visits:
        play = plays[visit.number]
        token = next((t for t in opened if t.startswith(visit.token)), None) if visit.token else None
        if token is None or not play.first_frame or token not in frames or token not in appended:
            continue
        chunks, written = frames[token], appended[token]
        first_frames = chunks[0][2]
        video = visit.stream.track("vide")
        shown = 0
        for fragment in visit.stream.fragments:
            out = next((t for t, total in written if total >= fragment.end), None)
            count = fragment.tracks.get(video, (0, 0, 0))[2]
            if out is None or not count:
                continue
            shown += count
            last_in = next((arrived for first, n, arrived, _ in chunks if first + n >= shown), None)
            if last_in is not None:
                encoder.append(out - last_in)
            reads.append(fragment.arrival - out)
        first = visit.stream.fragments[play.first_index]
        first_out = next((t for t, total in written if total >= first.end), None)
        to_open.append(opened[token] - visit.submitted)
        to_frames.append(first_frames - opened[token])
        if first_out is not None:
            to_bytes.append(first_out - first_frames)
            to_client.append(play.first_frame - first_out)
        # How late each chunk reached the encoder against real time from the first one: the engine's own lateness.
        for first_frame, _, arrived, _ in chunks:
            lateness.append(arrived - (first_frames + first_frame / 25))
    return {
        "generate_to_open_p95_s": percentile(to_open, 95),
        "open_to_first_frames_p95_s": percentile(to_frames, 95),
        "first_frames_to_bytes_p95_s": percentile(to_bytes, 95),
        "bytes_to_client_p95_s": percentile(to_client, 95),
        "generate_to_open_p50_s": percentile(to_open, 50),
        "open_to_first_frames_p50_s": percentile(to_frames, 50),
        "first_frames_to_bytes_p50_s": percentile(to_bytes, 50),
        "bytes_to_client_p50_s": percentile(to_client, 50),
        "encoder_delay_p95_s": percentile(encoder, 95),
        "encoder_delay_max_s": max(encoder, default=None),
        "read_delay_p95_s": percentile(reads, 95),
        "read_delay_max_s": max(reads, default=None),
        "engine_lateness_max_s": max(lateness, default=None),
        "engine_late_chunks": sum(1 for x in lateness if x > STALL_GOAL_S),
    }


def ask(control: Path, number: int, asked: dict, timeout: float) -> dict:
    """A request to the server's control thread, and its answer."""
    _write_json(control / f"request-{number:03d}.json", asked)
    result = control / f"result-{number:03d}.json"
    deadline = time.monotonic() + timeout
    while not result.exists():
        if time.monotonic() > deadline:
            return {"error": "no answer in time"}
        time.sleep(0.5)
    return json.loads(result.read_text())


def engine_only(control: Path, number: int, load: float, plans: list[Plan], recordings: list[Recording],
                drain: float, timeout: float) -> dict:
    """The same arrivals through bench/visitors.py's service, run by the server on its own engine."""
    asked = {
        "load": load,
        "drain": drain,
        "plans": [[p.number, p.arrival, list(recordings[p.recording].pieces)] for p in plans],
    }
    row = ask(control, number, asked, timeout)
    row.pop("visits", None)
    return row | {"load": load}


def wait_ready(control: Path, server: object, timeout: float) -> dict:
    started = time.monotonic()
    while not (control / "ready.json").exists():
        if server.process.poll() is not None:
            raise RuntimeError(f"the app exited:\n{server.log_path.read_text()[-3000:]}")
        if time.monotonic() - started > timeout:
            raise RuntimeError("the engine was not ready in time")
        time.sleep(1)
    ready = json.loads((control / "ready.json").read_text())
    if "error" in ready:
        raise RuntimeError(f"the engine did not load: {ready['error']}")
    return ready


def client_pool(url: str, count: int) -> queue.Queue:
    """Gradio clients made before the clock starts, one per visitor at once (a browser tab each); a few at a time,
    and again when the server was too busy to answer (it may be compiling)."""
    from gradio_client import Client

    pool: queue.Queue = queue.Queue()
    gate = threading.Semaphore(4)

    def make() -> None:
        for attempt in range(5):
            try:
                with gate:
                    pool.put(Client(url, verbose=False, download_files=False))
                return
            except Exception:  # a timeout while the server is busy: wait and ask again
                time.sleep(2 + 2 * attempt)

    threads = [threading.Thread(target=make, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if pool.empty():
        raise RuntimeError("no Gradio client could be made")
    return pool


def steps(loads: list[float], own_threads_at: float | None) -> list[tuple[str, float]]:
    """What to measure, most wanted first (a command cut short by its time limit keeps those): the goals' loads
    (12 and 16) through the app, `own_threads_at` again with Gradio's handlers on worker threads of their own,
    the engine alone at the goals' loads, then each other load through the app and the engine alone."""
    goals = [load for load in loads if load in GOALS]
    order = [("app", load) for load in goals]
    if own_threads_at in goals:
        order.append(("app, own threads", own_threads_at))
    order += [("engine", load) for load in goals]
    for load in (load for load in loads if load not in GOALS):
        order.append(("app", load))
        if load == own_threads_at:
            order.append(("app, own threads", load))
        order.append(("engine", load))
    return order


def wanted(side: str, app_only: bool) -> bool:
    return not (app_only and side == "engine")


def measure(args: argparse.Namespace, report: dict, save: Callable[[], None]) -> None:
    from bench.page_driver import AppServer

    work = Path(tempfile.mkdtemp(prefix="app-visitors-"))
    control = work / "control"
    control.mkdir()
    started = time.monotonic()
    weights = None
    if not args.tiny:
        weights = work / "weights"
        write_weights(weights)
        report["write_weights_s"] = time.monotonic() - started
        print(f"{time.monotonic() - started:.0f} s: weights written", flush=True)
    recordings = load_recordings(args.recordings)
    report["recordings_s"] = [round(r.seconds, 2) for r in recordings]
    launcher = (
        f"import bench.app_visitors as b; b.inside_server({str(control)!r}, {str(args.landmarks or '')!r}, "
        f"{args.tiny!r})"
    )
    env = {**server_env(args.tiny, weights), "PYTHONUNBUFFERED": "1"}
    engine_key = env["AVATAR_ENGINE"]
    with AppServer(work / "app", env, startup_seconds=300, argv=["-c", launcher]) as server:
        print(f"{time.monotonic() - started:.0f} s: server up at {server.url}", flush=True)
        resources = Resources(server.process.pid)
        plans_by_load = {
            load: plan_visitors(load, args.seconds, recordings, seed=args.seed + int(load * 1000))
            for load in args.loads
        }
        clients = client_pool(server.url, min(64, max(len(p) for p in plans_by_load.values())))
        ready = wait_ready(control, server, timeout=args.ready_timeout)
        report["engine_ready"] = ready | {"after_s": time.monotonic() - started}
        print(f"{time.monotonic() - started:.0f} s: engine ready: {ready}", flush=True)
        warm = plan_visitors(1, 0.1, recordings, seed=1)[:1]  # the first run's own costs (its encoder, face) untimed
        serve_load(server, clients, warm, recordings, 0, engine_key, args.drain)
        if args.default_threads:
            report["default_threads"] = ask(control, 999, {"kind": "default_threads", "tokens": args.default_threads},
                                            30)
        for number, (side, load) in enumerate(steps(args.loads, args.own_threads_at)):
            if not wanted(side, args.app_only):
                continue
            plans = plans_by_load[load]
            if args.deadline and time.monotonic() - started + args.seconds + args.drain_estimate > args.deadline:
                print(f"{side} at load {load:g} skipped: it would pass the deadline", flush=True)
                report["skipped"].append(f"{side} {load:g}")
                continue
            if side == "engine":
                row = engine_only(control, number, load, plans, recordings, args.drain, args.seconds + 3 * args.drain)
                report["engine"] = [r for r in report["engine"] if r.get("load") != load] + [row]
                print(json.dumps(row), flush=True)
                save()
                continue
            variant = OWN_THREADS if side == "app, own threads" else ""
            if variant:
                ask(control, number, {"kind": "gradio_threads", "tokens": OWN_THREAD_TOKENS}, 30)
            print(f"{side} load {load:g}: {len(plans)} visitors, "
                  f"{sum(recordings[p.recording].seconds for p in plans):.0f} s of speech", flush=True)
            visits, t0, end = serve_load(server, clients, plans, recordings, load, engine_key, args.drain)
            if variant:
                ask(control, number + 1000, {"kind": "gradio_threads", "tokens": None}, 30)
            events = read_events(control / "events.jsonl", t0 - 1, end)
            row = summarise_app(load, visits, events, resources.window(t0, end), t0) | {"variant": variant}
            report["app"] = [r for r in report["app"] if (r["load"], r["variant"]) != (load, variant)] + [row]
            print(json.dumps({k: v for k, v in row.items() if k not in ("visits", "resources")}), flush=True)
            save()
        resources.close()
        report["server_log_tail"] = server.log_path.read_text()[-4000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for app_visitors.json and RESULTS.md")
    parser.add_argument("--loads", default=None, help=f"visitors speaking at once on average (default {LOADS})")
    parser.add_argument("--seconds", type=float, default=None, help="arrivals over this long, per load")
    parser.add_argument("--drain", type=float, default=DRAIN_SECONDS, help="after the last arrival, at most")
    parser.add_argument("--drain-estimate", type=float, default=12.0, help="a load's usual drain, for --deadline")
    parser.add_argument("--own-threads-at", type=float, default=None,
                        help="measure this load again with Gradio's handlers on worker threads of their own "
                        "(default 16; tiny 1)")
    parser.add_argument("--deadline", type=float, default=0.0, help="skip loads that would end after this (s)")
    parser.add_argument("--ready-timeout", type=float, default=480.0, help="seconds to wait for the engine")
    parser.add_argument("--recordings", type=Path, default=None, help="folder of WAVs (made if missing)")
    parser.add_argument("--landmarks", type=Path, default=None, help="MediaPipe's answers to replay (made if missing)")
    parser.add_argument("--app-only", action="store_true", help="skip the engine-only runs")
    parser.add_argument("--default-threads", type=int, default=0,
                        help="resize anyio's default pool of worker threads (40) before the loads")
    parser.add_argument("--prepare", action="store_true", help="only make the recordings and landmarks, then stop")
    parser.add_argument("--tiny", action="store_true", help="the default engine, small video: checks the bench")
    parser.add_argument("--results", type=Path, default=None, help="also write the section into this RESULTS.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    default_loads = (1,) if args.tiny else LOADS
    if args.own_threads_at is None:
        args.own_threads_at = 1.0 if args.tiny else 16.0
    args.loads = [float(x) for x in (args.loads.split(",") if args.loads else default_loads)]
    args.seconds = args.seconds if args.seconds is not None else (4.0 if args.tiny else ARRIVAL_SECONDS)
    args.out.mkdir(parents=True, exist_ok=True)
    args.recordings = args.recordings or args.out / "recordings"
    if not list(args.recordings.glob("*.wav")):
        lengths = [2.0, 3.0] if args.tiny else list(np.linspace(*SPEECH_SECONDS, RECORDINGS))
        make_recordings(args.recordings, lengths)
    if args.landmarks is not None and not args.landmarks.exists():
        record_landmarks(args.landmarks, args.tiny)
    if args.prepare:
        return
    report = {
        "command": "python " + shlex.join(["bench/app_visitors.py", *sys.argv[1:]]),
        "machine": machine(),
        "tiny": args.tiny,
        "seconds": args.seconds,
        "landmarks": "replayed" if args.landmarks else "MediaPipe",
        "default_threads": None,
        "app": [],
        "engine": [],
        "skipped": [],
    }

    def save() -> None:
        from bench.results import save_run

        save_run(args.out, "app_visitors", report, SECTION, render_section(report), args.results)

    try:
        measure(args, report, save)
    finally:
        save()
    print(render_section(report))


def machine() -> dict:
    """The GPU (nvidia-smi's name), CPU cores and Python."""
    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.strip()
    except OSError:
        gpu = ""
    return {"gpu": gpu or "none", "cpu_cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version()}


# --- the section for bench/RESULTS.md ---------------------------------------------------------------------------


def cell(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_section(report: dict) -> str:
    machine_, engine = report["machine"], report.get("engine_ready", {})
    lines = [
        *(["**A check of the bench on a CPU with the default engine, not a GPU's numbers.**", ""]
          if report["tiny"] else []),
        f"Command: `{report['command']}`  ",
        f"Machine: {machine_['gpu']}, {machine_['cpu_cores']} CPU cores, Python {machine_['python']}; engine "
        f"{engine.get('engine', '?')} on {engine.get('device', '?')} with {engine.get('sessions', '?')} sessions "
        f"(loaded and compiled in {cell(engine.get('seconds'), 0)} s); visitors arriving over "
        f"{report['seconds']:g} s per load, each sending the photo and one of the recordings "
        f"{report.get('recordings_s', [])} s; MediaPipe's answers {report['landmarks']}."
        + (f" anyio's default pool of worker threads resized from 40 to {report['default_threads']['default_threads']}."
           if report.get("default_threads") else ""),
        "",
        "App: through the real server, Generate -> the first fragment holding a frame at the client; stalls from "
        "the fragments' media times against their arrival, playing in real time from the first frame. Engine: "
        "bench/visitors.py's service for the same arrivals in the same process and engine (arrival -> first "
        "frames; stalls from the frames' readiness). CPU: cores of the server's process tree over the load "
        "(ffmpeg encoders, and the Python server); per stream: CPU seconds over seconds of video served.",
        "",
        "| load | side | visitors (served / refused / failed) | first picture p50 / p95 / max s | stalled (> 0.2 s) "
        "longest s | useful fps (asked) | busy: draws / nvidia-smi | CPU cores: all / ffmpeg / Python "
        "| cores a stream: ffmpeg / Python | server RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    engines = {r.get("load"): r for r in report["engine"]}
    for row in sorted(report["app"], key=row_order):
        res = row["resources"]
        side = "app, own threads" if row["variant"] else "app"
        lines.append(
            f"| {row['load']:g} | {side} | {row['visitors']} ({row['served']} / {row['refused']} / {row['failed']}) | "
            f"{cell(row['first_picture_p50_s'])} / {cell(row['first_picture_p95_s'])} / "
            f"{cell(row['first_picture_max_s'])} | {row['stalled_any']} ({row['stalled_over_goal']}) "
            f"{row['longest_stall_s']:.2f} | {row['useful_fps']:.0f} ({row['demand_fps']:.0f}) | "
            f"{row['busy_fraction']:.0%} / {cell(res.get('gpu_util_mean'), 0)}% | {cell(res.get('cores_all'), 1)} / "
            f"{cell(res.get('cores_encoders'), 1)} / {cell(res.get('cores_python'), 1)} | "
            f"{cell(row['encoder_cores_per_stream'])} / {cell(row['python_cores_per_stream'])} | "
            f"{cell(res.get('rss_tree_gib_max'), 1)} |"
        )
        other = engines.get(row["load"])
        if row["variant"] or other is None:
            continue
        if "error" in other:
            lines.append(f"| {row['load']:g} | engine | {other['error']} | | | | | | | |")
            continue
        lines.append(
            f"| {row['load']:g} | engine | {other['visitors']} ({other['served']} / {other['refused']} / "
            f"{other['failed'] + other['unfinished']}) | {cell(other['first_picture_p50_s'])} / "
            f"{cell(other['first_picture_p95_s'])} / | {other['stalled']} "
            f"{other['longest_wait_s']:.2f} | {other['useful_fps']:.0f} ({other['demand_fps']:.0f}) | "
            f"{other['busy_fraction']:.0%} / | | | |"
        )
    lines += [
        "",
        "Where each visitor's first picture went (p50 / p95 s): Generate -> the run's stream opened (upload, "
        "queue, line, face, recording); -> first frames into its encoder (engine); -> their fragment out of the "
        "encoder; -> at the client (SSE to the page, GET, reads). Every fragment after: the encoder's delay and the "
        "read's (p95 / max s); chunks that reached the encoder > 0.2 s behind real time; anyio worker-thread calls "
        "at once at most (tokens of its default pool in use / of).",
        "",
        "| load | -> opened | -> first frames | -> out of encoder | -> client | encoder delay | read delay "
        "| late chunks | worker threads |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in sorted(report["app"], key=row_order):
        own = "" if row["own_pool_tokens_peak"] is None else f"; Gradio's own {row['own_pool_tokens_peak']} / 64"
        label = f"{row['load']:g}{' own threads' if row['variant'] else ''}"
        lines.append(
            f"| {label} | {cell(row['generate_to_open_p50_s'])} / {cell(row['generate_to_open_p95_s'])} | "
            f"{cell(row['open_to_first_frames_p50_s'])} / {cell(row['open_to_first_frames_p95_s'])} | "
            f"{cell(row['first_frames_to_bytes_p50_s'])} / {cell(row['first_frames_to_bytes_p95_s'])} | "
            f"{cell(row['bytes_to_client_p50_s'])} / {cell(row['bytes_to_client_p95_s'])} | "
            f"{cell(row['encoder_delay_p95_s'])} / {cell(row['encoder_delay_max_s'])} | "
            f"{cell(row['read_delay_p95_s'])} / {cell(row['read_delay_max_s'])} | {row['engine_late_chunks']} | "
            f"{row['worker_threads_peak']} ({row['thread_tokens_peak']} / {row['thread_tokens_total']}{own}) |"
        )
    if report["skipped"]:
        lines += ["", f"Not measured (the command's time ran out first): loads {report['skipped']}."]
    lines += ["", verdict(report["app"]), "", "Predictions, written before the GPU run:", ""]
    lines += [f"- {name}: {text}" for name, text in PREDICTIONS.items()]
    return "\n".join(lines) + "\n"


def row_order(row: dict) -> tuple[float, bool]:
    return row["load"], bool(row["variant"])


def verdict(rows: list[dict]) -> str:
    """The goals at loads 12 and 16, met or not."""
    parts = []
    for row in sorted((r for r in rows if not r["variant"]), key=row_order):
        if row["load"] == 12:
            p95 = row["first_picture_p95_s"]
            met = p95 is not None and p95 <= 1.5 and not row["stalled_over_goal"] and not row["failed"]
            parts.append(f"load 12 ({GOALS[12]}): p95 {cell(p95)} s, {row['stalled_over_goal']} stalled > 0.2 s: "
                         f"{'met' if met else 'not met'}")
        elif row["load"] == 16:
            met = row["served"] == row["visitors"] and not row["stalled_over_goal"]
            parts.append(f"load 16 ({GOALS[16]}): {row['served']} of {row['visitors']} served, "
                         f"{row['stalled_over_goal']} stalled > 0.2 s: {'met' if met else 'not met'}")
    return "Goals: " + ("; ".join(parts) if parts else "loads 12 and 16 not measured") + "."


if __name__ == "__main__":
    main()
