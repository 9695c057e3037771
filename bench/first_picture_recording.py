"""How soon the first picture plays after Generate when the speech is a recording, against typed text.

Start app.py (offline voice, default engine, CPU, the live MSE player, the app's default segments),
open it in Debian's Chromium and, like a person, give the speech one way or another and click
Generate; the page's own measure (ui/playback.js: click to first frame on screen) is read for each.
The ways are taken in turn, run after run, so that a change in the machine's load hits them alike.
The recordings are made here: Piper's voice says the words, ffmpeg encodes them as the microphone
box sends them (WAV, 48 kHz) or as a phone's voice memo (M4A, AAC).

    python bench/first_picture_recording.py [--runs 5]

Beside the browser's measure: the server's own split of the run (from the status line): speech
ready and first segment after the run started (so after the recording was decoded). The first run of
each way after the server started is shown apart from the median of the rest.

Prints a table (with the prediction written before measuring), writes
bench/out/first_picture_recording.json and the "## First picture with a recording" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avatar.media import ffmpeg_exe  # noqa: E402
from avatar.speech.offline_voice import OfflineVoice  # noqa: E402
from bench.first_picture import LONG, SHORT, chromium_version  # noqa: E402
from bench.page_driver import AppServer, RecordingDriver, launch_chromium  # noqa: E402
from bench.results import write_section  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
GOAL_SECONDS = 0.6  # issue #25: at most this long after Generate with a recording, on 2 cores, default engine
ENCODINGS = {
    "wav": ("-ar", "48000", "-ac", "1", "-c:a", "pcm_s16le"),  # as Gradio's microphone box uploads it
    "m4a": ("-ar", "44100", "-ac", "1", "-c:a", "aac", "-b:a", "64k"),  # a phone's voice memo
}


@dataclass(frozen=True)
class Way:
    """One way of giving the speech: typed text, or a recording (`words` typed as its captions, or none)."""

    name: str
    said: str
    encoding: str | None = None  # None: the text is typed and a voice speaks it
    words: bool = False
    predicted: float = 0.0  # median first picture (s), written down before the first measurement


WAYS = [
    Way("typed text (Piper speaks it)", SHORT, predicted=0.75),
    Way("2 s recording, WAV, no words", SHORT, "wav", predicted=0.70),
    Way("2 s recording, WAV, its words typed", SHORT, "wav", words=True, predicted=0.80),
    Way("2 s recording, M4A, its words typed", SHORT, "m4a", words=True, predicted=0.82),
    Way("30 s recording, WAV, its words typed", LONG, "wav", words=True, predicted=0.55),
]
SERVER_SPLIT = re.compile(r"Speech ready after ([0-9.]+) s, first picture after ([0-9.]+) s")


def recordings(folder: Path) -> dict[Way, Path]:
    """Each recorded way's file: Piper says its words, ffmpeg encodes them."""
    voice, files = OfflineVoice(), {}
    for way in WAYS:
        if way.encoding is None:
            continue
        spoken = folder / f"{len(way.said)}.wav"
        if not spoken.exists():
            said = voice.speak(way.said)
            soundfile.write(spoken, said.audio, said.sample_rate)
        target = folder / f"{len(way.said)}-{way.encoding}.{way.encoding}"
        subprocess.run(
            [ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(spoken), *ENCODINGS[way.encoding], str(target)],
            check=True,
        )
        files[way] = target
    return files


def give_speech(driver: RecordingDriver, way: Way, files: dict[Way, Path]) -> None:
    """Set the page up for `way`, as a visitor would: the speech choice, the file, the words."""
    page = driver.page
    if way.encoding is None:
        page.locator("#speech-from").get_by_label("Type text").check()
        page.wait_for_selector("#recording", state="detached")
        driver.type_text(way.said)
        return
    driver.use_recording()
    clear = page.locator("#recording button[aria-label='Clear']")
    if clear.count():
        clear.click()
        page.wait_for_selector(RecordingDriver.UPLOADED, state="detached")
    driver.upload_recording(files[way])
    driver.type_text(way.said if way.words else "")


def one_run(driver: RecordingDriver, way: Way, files: dict[Way, Path]) -> dict:
    give_speech(driver, way, files)
    driver.page.wait_for_timeout(1000)  # a person presses Generate a moment after choosing the file
    driver.generate()
    first = driver.wait_first_picture(timeout=120)
    status = driver.wait_finished(timeout=300)
    driver.page.evaluate("() => document.querySelector('#video video')?.pause()")  # no decoding during the next
    split = SERVER_SPLIT.search(status)
    if split is None:
        raise RuntimeError(f"the run did not finish as expected: {status!r}")
    return {"first_picture": first, "speech_ready": float(split.group(1)), "first_segment": float(split.group(2))}


def measure(runs: int, work: Path) -> list[dict]:
    from playwright.sync_api import sync_playwright

    files = recordings(work)
    results: dict[Way, list[dict]] = {way: [] for way in WAYS}
    with AppServer(work / "server") as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        driver = RecordingDriver(browser.new_page(viewport={"width": 1280, "height": 1100}), server.url)
        driver.page.wait_for_function("() => (document.querySelector('#face-note')?.innerText ?? '').length > 0")
        for _ in range(runs + 1):
            for way in WAYS:
                results[way].append(one_run(driver, way, files))
        browser.close()
    rows = []
    for way, measured in results.items():
        later = measured[1:]
        rows.append({
            "way": way.name,
            "predicted_s": way.predicted,
            "first_run_s": measured[0]["first_picture"],
            "median_s": statistics.median(run["first_picture"] for run in later),
            "runs_s": [run["first_picture"] for run in later],
            "speech_ready_s": statistics.median(run["speech_ready"] for run in later),
            "first_segment_s": statistics.median(run["first_segment"] for run in later),
        })
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| speech | predicted (s) | first picture in the browser, median (s) | fastest run (s) "
        "| first run after start (s) | server: speech ready (s) | server: first segment (s) | goal 0.6 s (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        goal = "" if row["way"].startswith("typed") else ("met" if row["median_s"] <= GOAL_SECONDS else "missed")
        lines.append(
            f"| {row['way']} | {row['predicted_s']:.2f} | {row['median_s']:.2f} | {min(row['runs_s']):.2f} "
            f"| {row['first_run_s']:.2f} | {row['speech_ready_s']:.2f} | {row['first_segment_s']:.2f} | {goal} |"
        )
    return "\n".join(lines)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--before", type=Path, help="an earlier run's bench/out/first_picture_recording.json, shown above this one"
    )
    args = parser.parse_args()
    before = json.loads(args.before.read_text()) if args.before else None
    OUT.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        rows = measure(args.runs, Path(folder))
    load_after = os.getloadavg()
    text = table(rows)
    command = "python bench/first_picture_recording.py " + " ".join(sys.argv[1:])
    record = {
        "date": started, "commit": commit(), "command": command, "load_average": [load_before, load_after],
        "rows": rows,
    }
    if before is not None:
        text = f"{earlier(before)}\n\n{table(before['rows'])}\n\nThen, at {record['commit']}:\n\n{text}"
    print(text)
    (OUT / "first_picture_recording.json").write_text(json.dumps(record, indent=1))
    write_section(
        "First picture with a recording",
        f"Measured {started} on this project's 2-core CPU machine (no GPU), offline voice, default engine, "
        f"live MSE player (first segment 0.4 s), Chromium {chromium_version()}, with `{command.strip()}`: "
        f"the median and the fastest of {args.runs} runs after a first one, the ways taken in turn (the fastest is "
        f"the one least slowed by other work on the machine). Load average (1, 5, 15 min) "
        f"before: {', '.join(f'{x:.1f}' for x in load_before)}; after: {', '.join(f'{x:.1f}' for x in load_after)} "
        f"on 2 cores. The server's columns count from the run's start, after the recording was decoded.\n\n{text}",
    )


def commit() -> str:
    """The app's commit, and whether files differ from it, so that a measurement names the code it measured."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=OUT.parent.parent).stdout.strip()

    changed = git("status", "--porcelain", "-uno", "--", ".", ":!bench/RESULTS.md")
    return git("rev-parse", "--short", "HEAD") + (" with changes" if changed else "")


def earlier(record: dict) -> str:
    loads = ", ".join(f"{x:.1f}" for x in record["load_average"][0])
    return f"Before, at {record['commit']} ({record['date']}, load average before {loads}):"


if __name__ == "__main__":
    main()
