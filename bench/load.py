"""Many visitors at once: simulated users drive the real app through gradio_client on loopback.

    python bench/load.py [--minutes 10 --users 8]

Each user, in its own session, picks a sample face and a sentence, generates, waits for the
whole video, and starts again. Reports requests done, errors (anything but a finished
video), median and worst latency, the server's peak memory (with its child processes),
and what is left in the work folder and Gradio's cache, while serving and after shutdown.
Writes bench/out/load.json and the "Load" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gradio_client import Client, handle_file  # noqa: E402

from avatar.housekeeping import folder_bytes  # noqa: E402
from bench.page_driver import AppServer  # noqa: E402
from bench.results import write_section  # noqa: E402
from tests.helpers import ASTRONAUT, GRACE_HOPPER  # noqa: E402

OUT = ROOT / "bench" / "out"
SENTENCES = [
    "Hello there, nice to meet you.",
    "Every photo has a story. Today, this one gets to tell it out loud.",
    "Welcome to the demo! Type anything you like, and I will say it for you.",
]
SAMPLE_SECONDS = 0.5
# How long the server may take to remove a finished run's folder after the last answer.
SETTLE_SECONDS = 10.0


@dataclass
class Tally:
    """What all users saw, shared under a lock."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def done(self, seconds: float) -> None:
        with self.lock:
            self.latencies.append(seconds)

    def failed(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def process_tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def one_user(url: str, index: int, deadline: float, tally: Tally) -> None:
    """Generate again and again until `deadline`; every answer but a finished video is an error."""
    client = Client(url, verbose=False, download_files=False)
    round_ = 0
    while time.monotonic() < deadline:
        photo = (ASTRONAUT, GRACE_HOPPER)[(index + round_) % 2]
        text = SENTENCES[(index + round_) % len(SENTENCES)]
        round_ += 1
        started = time.monotonic()
        try:
            updates = list(client.submit(handle_file(str(photo)), text, "offline:joe", "default", api_name="/run"))
        except Exception as error:  # a benchmark counts every failure rather than stopping
            tally.failed(f"user {index}: {type(error).__name__}: {error}")
            continue
        status = updates[-1][-1] if updates else ""
        if "Spoken by" in str(status):
            tally.done(time.monotonic() - started)
        else:
            tally.failed(f"user {index}: {status!r}")


def measure(minutes: float, users: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="load-") as scratch:
        work = Path(scratch)
        runs, cache = work / "runs", work / "gradio"
        tally = Tally()
        peak = 0
        load_before = os.getloadavg()
        with AppServer(work) as server:
            Client(server.url, verbose=False)  # the page is up and answers before the clock starts
            deadline = time.monotonic() + minutes * 60
            threads = [
                threading.Thread(target=one_user, args=(server.url, i, deadline, tally), daemon=True)
                for i in range(users)
            ]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                peak = max(peak, process_tree_rss(server.process.pid))
                time.sleep(SAMPLE_SECONDS)
            wall = time.monotonic() - started
            time.sleep(SETTLE_SECONDS)
            serving = {
                "run_folders": len(list(runs.glob("run-*"))),
                "work_bytes": folder_bytes(runs) - folder_bytes(runs / "bin"),
                "cache_bytes": folder_bytes(cache),
            }
        after = {"work_bytes": folder_bytes(runs) - folder_bytes(runs / "bin"), "cache_bytes": folder_bytes(cache)}
        load_after = os.getloadavg()
    latencies = sorted(tally.latencies)
    return {
        "minutes": minutes,
        "users": users,
        "wall_seconds": round(wall, 1),
        "requests_done": len(latencies),
        "errors": len(tally.errors),
        "error_samples": tally.errors[:5],
        "median_latency_s": round(statistics.median(latencies), 2) if latencies else None,
        "worst_latency_s": round(latencies[-1], 2) if latencies else None,
        "peak_memory_mb": round(peak / 1e6),
        "left_while_serving": serving,
        "left_after_shutdown": after,
        "cpu_cores": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
    }


def table(result: dict) -> str:
    serving, after = result["left_while_serving"], result["left_after_shutdown"]
    rows = [
        ("users x minutes", f"{result['users']} x {result['minutes']:g} (wall {result['wall_seconds']} s)"),
        ("requests done", result["requests_done"]),
        ("errors", result["errors"]),
        ("median latency", f"{result['median_latency_s']} s"),
        ("worst latency", f"{result['worst_latency_s']} s"),
        ("peak memory (server + children)", f"{result['peak_memory_mb']} MB"),
        ("run folders left, serving", serving["run_folders"]),
        ("work folder bytes, serving / after stop", f"{serving['work_bytes']} / {after['work_bytes']}"),
        ("Gradio cache bytes, serving / after stop", f"{serving['cache_bytes']} / {after['cache_bytes']}"),
        ("load average before / after (1 min)",
         f"{result['load_average_before'][0]} / {result['load_average_after'][0]} on {result['cpu_cores']} cores"),
    ]
    lines = ["| measure | value |", "|---|---|"] + [f"| {name} | {value} |" for name, value in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    result = measure(args.minutes, args.users)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "load.json").write_text(json.dumps(result, indent=2))
    text = table(result)
    print(text)
    for sample in result["error_samples"]:
        print("error:", sample)
    command = f"python bench/load.py --minutes {args.minutes:g} --users {args.users}"
    write_section("Load", f"`{command}`, offline voice, default engine, loopback.\n\n{text}")


if __name__ == "__main__":
    main()
