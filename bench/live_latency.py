"""Live mode's delay where the visitor is: from a sound entering the microphone to the frame that shows it on screen.

Chromium's fake capture device plays a WAV of short phrases with pauses between them (the offline
voice) into the Live tab's microphone. The page notes when each piece of sound reached it
(`window.__liveMicrophone`, ui/live_microphone.js) and, through requestVideoFrameCallback, when each
video frame was put on screen. After Stop, the finished take (the very frames and sound the page
played) is decoded: each phrase's onset is found in its sound, and the frame that shows it is the
first from the onset on whose mouth is open (MediaPipe's inner-lip gap over mouth width, as in
bench/default_engine.py). Delay = when that frame was shown - when the onset was captured, plus the
input latency Chromium reports for the capture device.

    python bench/live_latency.py [--seconds 45] [--framing whole close-up] [--wait-for-load 1.5] [--no-write]

Prints a table and writes the "## Live latency" section of bench/RESULTS.md. The machine is shared:
with --wait-for-load it first waits (up to --wait-minutes) for the 1-minute load average to fall below
that, and the load is written beside the numbers either way.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import resample_poly

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from avatar.config import FPS  # noqa: E402
from avatar.media import AUDIO_RATE, read_audio, read_frames  # noqa: E402
from bench.page_driver import CHROMIUM, AppServer, PageDriver, launch_chromium_with_microphone  # noqa: E402
from bench.results import write_section  # noqa: E402

PHRASES = ("Hello there.", "Nice to meet you.", "This is live.", "Good morning.", "Look at me.", "Thank you.")
# Silence before the first phrase and after each; the WAV's rate (the fake device's).
LEAD_SECONDS = 1.0
PAUSE_SECONDS = 1.6
WAV_RATE = 48_000
# An onset: a 10 ms level above ONSET_DBFS after at least QUIET_BEFORE seconds under QUIET_DBFS.
ONSET_DBFS = -45.0
QUIET_DBFS = -60.0
QUIET_BEFORE = 0.5
RISE = 0.05
# A mouth counts as showing speech once its inner-lip gap is this share of its width (closed: under 0.02).
OPEN_MOUTH = 0.05
# Frames searched for the open mouth: from one before the onset's frame (the engine may open early) on.
SEARCH_FRAMES = range(-1, 25)
# Where the page's clock notes each video frame shown (injected into the page; nothing of it ships).
WATCH_FRAMES = """() => {
  window.__shown = [];
  const watch = (video) => {
    const step = (now, meta) => { window.__shown.push([meta.mediaTime, meta.expectedDisplayTime]);
                                  video.requestVideoFrameCallback(step); };
    video.requestVideoFrameCallback(step);
  };
  const look = () => { const video = document.querySelector('#live-video video');
                       if (video && !video.dataset.watched) { video.dataset.watched = '1'; watch(video); } };
  new MutationObserver(look).observe(document.documentElement, { childList: true, subtree: true });
  look();
}"""
RESULTS_NAME = "Live latency"
# Written before the measurement below was taken, from the stages timed one by one (22:20-22:45, load 2-9).
PREDICTION = (
    "Predicted before measuring, on this 2-core machine with the load under 1.5, Whole photo: p50 0.40 s, "
    "p95 0.60 s (the page's post every 0.1 s: 0.05 on average; the animator and the paste-back for a tenth's "
    "2-3 frames: 0.07; ffmpeg, one fragment per frame, the last frames waiting for the next tenth's sound: 0.10; "
    "the stream into Media Source, the 0.1 s the player keeps and the next screen refresh: 0.15); Face close-up "
    "a little less (no paste-back). The first phrase of a session comes later (the face's first frames)."
)
FLASHHEAD = (
    "FlashHead Lite on an H200 (1.5 s goal), **a prediction, not measured** (no GPU in this session): Lite draws "
    "24 frames, 0.96 s of speech, at a time, so a sound waits for the rest of its chunk to be heard, and a player "
    "that never stalls stays a whole chunk behind: every sound is at least 0.96 s late (the floor). On top: the "
    "tenth of a second that completes the chunk reaching the server (about 0.05 s), the chunk's drawing (measured "
    "in the FlashHead sections above: 60-64 ms for one visitor, 438 ms for a step of 8 batched visitors), and the "
    "encoder and page, as measured here for the animator less its drawing (about 0.25-0.3 s). Predicted: one "
    "visitor about 1.35-1.4 s, p95 under 1.5 s (met, by 0.1 s or so); eight visitors batched about 1.75 s (not "
    "met: the step would have to fall under about 0.15 s, or the chunk be shorter than the model's 0.96 s). On "
    "ZeroGPU a GPU engine waits for the whole speech before its one GPU booking, so a live session there is only "
    "live with the embedded animator."
)


def phrases_wav(path: Path, phrases: tuple[str, ...] = PHRASES) -> Path:
    """The offline voice saying `phrases`, each followed by a pause, as a 48 kHz 16-bit WAV (the fake microphone's)."""
    from avatar.speech.offline_voice import OfflineVoice

    voice = OfflineVoice()
    parts = [np.zeros(round(LEAD_SECONDS * WAV_RATE), np.float32)]
    for phrase in phrases:
        said = voice.speak(phrase)
        divisor = np.gcd(WAV_RATE, said.sample_rate)
        parts += [resample_poly(said.audio, WAV_RATE // divisor, said.sample_rate // divisor)]
        parts += [np.zeros(round(PAUSE_SECONDS * WAV_RATE), np.float32)]
    soundfile.write(path, np.concatenate(parts).astype(np.float32), WAV_RATE, subtype="PCM_16")
    return path


class LiveDriver(PageDriver):
    """One visitor on the Live tab, whose microphone is Chromium's fake device."""

    def open_live(self) -> None:
        self.page.get_by_role("tab", name="Live").click()
        self.page.wait_for_selector("#live-start", state="visible")

    def start(self) -> None:
        self.page.locator("#live-start").click()
        self.page.wait_for_selector("#live-video video", timeout=120_000)
        self.page.wait_for_function("() => window.__liveMicrophone.captured.length > 0", timeout=60_000)

    def stop(self) -> None:
        self.page.locator("#live-stop").click()

    def live_status(self) -> str:
        return self.page.locator("#live-status").inner_text()

    def wait_ended(self, timeout: float = 180) -> str:
        self.page.wait_for_function(
            "() => /Spoken by|⚠️/.test(document.querySelector('#live-status')?.innerText ?? '')",
            timeout=timeout * 1000,
        )
        return self.live_status()

    def take(self, folder: Path) -> Path:
        """The finished take, fetched as the page's download link serves it."""
        links = self.page.locator("#live-download a").evaluate_all("links => links.map(link => link.href)")
        video = next(link for link in links if link.endswith(".mp4"))
        path = folder / "take.mp4"
        path.write_bytes(self.page.request.get(video).body())
        return path

    def microphone_log(self) -> dict:
        return dict(self.page.evaluate("() => ({...window.__liveMicrophone})"))


def sound_onsets(audio: np.ndarray, rate: int) -> list[float]:
    """Seconds at which a phrase starts: the first 10 ms above ONSET_DBFS after a pause of QUIET_BEFORE.

    The pause may end up to RISE before the onset: a word's first milliseconds climb through the levels between.
    """
    hop = rate // 100
    count = len(audio) // hop
    levels = 10 * np.log10(np.mean(audio[: count * hop].reshape(count, hop) ** 2, axis=1) + 1e-12)
    quiet, rise = round(QUIET_BEFORE * 100), round(RISE * 100)
    onsets = []
    for index in range(quiet + rise, count):
        paused = levels[index - quiet - rise : index - rise].max() < QUIET_DBFS
        rising = not np.any(levels[index - rise : index] > ONSET_DBFS)
        if levels[index] > ONSET_DBFS and paused and rising:
            onsets.append(index / 100)
    return onsets


def mouth_openings(frames: np.ndarray) -> np.ndarray:
    """Inner-lip gap over mouth width per frame, from MediaPipe (bench/default_engine.py's independent pass)."""
    from bench.default_engine import mouth_openings as landmark_pass

    return landmark_pass(frames)[0]


def capture_time(sample: int, captured: list[list[float]], rate: float) -> float | None:
    """When the page had sample `sample` of the microphone (ms on its clock): the earliest the pieces around it allow.

    Each logged piece says when its last sample came; a sample `k` earlier came at most k / rate before.
    Pieces within two seconds are used, so the audio clock's drift against the page's cannot add up.
    """
    near = [(total, at) for total, at in captured if sample <= total < sample + 2 * rate]
    return min((at - (total - sample) / rate * 1000 for total, at in near), default=None)


def shown_at(media_time: float, shown: list[list[float]]) -> float | None:
    """When the page put on screen the first frame at or after `media_time` (ms on its clock)."""
    after = [at for time_, at in shown if time_ >= media_time - 1e-3]
    return min(after) if after else None


@dataclass(frozen=True)
class Delay:
    """One phrase's onset: when it was captured, when the frame that shows it was shown, and where that frame is."""

    onset: float  # seconds into the take
    mouth_frame: int
    total_ms: float  # capture to screen, the headline
    picture_ms: float  # capture to screen of the onset's own moment in the video (without the mouth's reaction)


def delays(take: Path, microphone: dict, shown: list[list[float]], input_ms: float) -> list[Delay]:
    frames = read_frames(take)
    openings = mouth_openings(frames)
    audio = read_audio(take, AUDIO_RATE)
    rate = float(microphone["rate"])
    found = []
    for onset in sound_onsets(audio, AUDIO_RATE):
        first = int(onset * FPS)
        open_frames = [
            first + step for step in SEARCH_FRAMES
            if 0 <= first + step < len(openings) and openings[first + step] >= OPEN_MOUTH
        ]
        if not open_frames or onset > len(frames) / FPS - 1.0:
            continue  # no open mouth (a word cut by Stop) or too near the end to be sure
        captured = capture_time(round(onset * rate), microphone["captured"], rate)
        mouth = shown_at(open_frames[0] / FPS, shown)
        moment = shown_at(onset, shown)
        if captured is None or mouth is None or moment is None:
            continue
        found.append(Delay(onset, open_frames[0], mouth - captured + input_ms, moment - captured + input_ms))
    return found


def input_latency_ms(page) -> float:
    """The capture device's latency as Chromium reports it (MediaStreamTrack stats), 0 where it does not."""
    return float(page.evaluate("() => window.__liveMicrophone.inputLatency ?? 0"))


def session(server: AppServer, wav: Path, framing: str, seconds: float, folder: Path) -> tuple[list[Delay], dict]:
    """One live session of `seconds` in a fresh Chromium; the delays of its phrases and what the page noted."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium_with_microphone(playwright, wav)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        driver = LiveDriver(page, server.url)
        page.evaluate(WATCH_FRAMES)
        driver.open_live()
        page.locator("#live-framing").get_by_label("Face close-up" if framing == "close-up" else "Whole photo").check()
        driver.start()
        time.sleep(seconds)
        input_ms = input_latency_ms(page)
        driver.stop()
        status = driver.wait_ended()
        microphone = driver.microphone_log()
        shown = page.evaluate("() => window.__shown")
        take = driver.take(folder)
        browser.close()
    found = delays(take, microphone, shown, input_ms)
    return found, {"status": status, "input_ms": input_ms, "frames_shown": len(shown), "rate": microphone["rate"]}


# Counts when Gradio's streaming microphone sends a piece (the upload that precedes each stream event).
COUNT_UPLOADS = """(() => { window.__sent = []; const send = window.fetch;
  window.fetch = function(input) {
    if (String(input && input.url || input).includes('/upload')) window.__sent.push(Date.now());
    return send.apply(this, arguments);
  }; })();"""


def gradio_microphone(wav: Path, seconds: float) -> dict[str, float]:
    """The road not taken: Gradio's own streaming microphone (gr.Audio streaming, stream_every=0.1) on this machine.

    How long after each piece's last sample was captured its handler ran. Capture is taken to start one
    piece before the first upload, so the figure leaves out the browser's own capture latency.
    """
    import gradio as gr
    from playwright.sync_api import sync_playwright

    from bench.page_driver import free_port

    calls: list[tuple[float, float]] = []

    def heard(piece: tuple[int, np.ndarray] | None) -> None:
        if piece is not None:
            calls.append((time.time() * 1000, len(piece[1]) / piece[0] * 1000))

    with gr.Blocks() as demo:
        microphone = gr.Audio(sources=["microphone"], streaming=True, type="numpy", elem_id="microphone")
        microphone.stream(heard, microphone, None, stream_every=0.1, time_limit=seconds + 30, concurrency_limit=None)
    port = free_port()
    demo.queue().launch(server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium_with_microphone(playwright, wav)
            page = browser.new_page()
            page.add_init_script(COUNT_UPLOADS)
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("#microphone button.record-button").click()
            time.sleep(seconds)
            sent = page.evaluate("() => window.__sent")
            browser.close()
    finally:
        demo.close()
    start = sent[0] - calls[0][1]
    captured_by = start + np.cumsum([length for _, length in calls])
    lag = np.array([at for at, _ in calls]) - captured_by
    return {"p50": percentile(list(lag), 50) / 1000, "p95": percentile(list(lag), 95) / 1000,
            "heard": sum(length for _, length in calls) / 1000, "recorded": seconds}


def load_average() -> float:
    return os.getloadavg()[0]


class LoadSampler:
    """The 1-minute load average every two seconds while a session runs, since other work on the machine slows it."""

    def __init__(self) -> None:
        self.samples = [load_average()]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(2.0):
            self.samples.append(load_average())

    def summary(self) -> str:
        return f"{self.samples[0]:.1f} / {statistics.mean(self.samples):.1f} / {max(self.samples):.1f}"


def wait_for_load(limit: float, minutes: float) -> float:
    """The 1-minute load average once it is under `limit`, or whatever it is after `minutes`."""
    deadline = time.monotonic() + minutes * 60
    while load_average() >= limit and time.monotonic() < deadline:
        time.sleep(15)
    return load_average()


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share)) if values else float("nan")


def table(rows: dict[str, list[Delay]]) -> str:
    lines = [
        "| framing | onsets | capture to mouth on screen p50 / p95 / max (s) | "
        "capture to the onset's moment on screen p50 / p95 (s) | mouth opens after the onset, frames (median) |",
        "|---|---|---|---|---|",
    ]
    for framing, found in rows.items():
        total = [delay.total_ms / 1000 for delay in found]
        moment = [delay.picture_ms / 1000 for delay in found]
        reaction = [delay.mouth_frame - delay.onset * FPS for delay in found]
        lines.append(
            f"| {framing} | {len(found)} | {percentile(total, 50):.2f} / {percentile(total, 95):.2f} / "
            f"{max(total, default=float('nan')):.2f} | {percentile(moment, 50):.2f} / {percentile(moment, 95):.2f} | "
            f"{statistics.median(reaction) if reaction else float('nan'):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45.0, help="how long each live session talks")
    parser.add_argument("--framing", nargs="+", default=["whole", "close-up"], choices=["whole", "close-up"])
    parser.add_argument("--wait-for-load", type=float, default=0.0, help="wait for the 1-minute load to fall below")
    parser.add_argument("--wait-minutes", type=float, default=20.0)
    parser.add_argument("--gradio-microphone", action="store_true", help="also time Gradio's streaming microphone")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        wav = phrases_wav(folder / "phrases.wav")
        with AppServer(folder / "server", {"AVATAR_ENGINE": "default"}) as server:
            rows, notes = {}, {}
            for framing in args.framing:
                if args.wait_for_load:
                    wait_for_load(args.wait_for_load, args.wait_minutes)
                with LoadSampler() as load:
                    rows[framing], notes[framing] = session(server, wav, framing, args.seconds, folder)
                notes[framing]["load"] = load.summary()
            gradio = gradio_microphone(wav, min(args.seconds, 20.0)) if args.gradio_microphone else None
    print(table(rows))
    for framing, note in notes.items():
        print(f"{framing}: {note}")
    loads = "1-minute load average during each session (start / mean / highest) on {} cores: {}".format(
        os.cpu_count(), ", ".join(f"{framing} {note['load']}" for framing, note in notes.items())
    )
    print(loads)
    if gradio is not None:
        print(f"Gradio's streaming microphone: {gradio}")
    if not args.no_write:
        write_section(RESULTS_NAME, body(rows, notes, loads, args, gradio))


def body(
    rows: dict[str, list[Delay]], notes: dict[str, dict], loads: str, args: argparse.Namespace, gradio: dict | None
) -> str:
    command = "python bench/live_latency.py --seconds {:.0f} --framing {}".format(args.seconds, " ".join(args.framing))
    if args.wait_for_load:
        command += f" --wait-for-load {args.wait_for_load}"
    if args.gradio_microphone:
        command += " --gradio-microphone"
    choice = "" if gradio is None else (
        "Why the page posts its own pieces (ui/live_microphone.js) rather than use Gradio's streaming microphone: "
        f"timed in the same run, a piece of Gradio's (stream_every=0.1) reached its handler {gradio['p50']:.2f} s "
        f"(p50) / {gradio['p95']:.2f} s (p95) after its last sample was captured, and {gradio['heard']:.1f} s of "
        f"the {gradio['recorded']:.0f} s recorded had arrived when it stopped (each piece is a WAV upload and then "
        "a queued event)."
    )
    input_ms = ", ".join(f"{framing} {note['input_ms']:.0f} ms" for framing, note in notes.items())
    shown = ", ".join(f"{framing} {note['frames_shown'] / args.seconds:.0f}" for framing, note in notes.items())
    return "\n\n".join([
        f"`{command}` (embedded animator, CPU; Chromium {chromium_version()}, fake capture device).",
        PREDICTION,
        table(rows),
        f"Frames the page put on screen per second (25 when it keeps up): {shown}.",
        f"{loads}. Input latency Chromium reports for the capture device, added to every delay: {input_ms}.",
        "Delay: from the moment a phrase's first sound reached the page (the piece's arrival on the page's clock, "
        "moved earlier by the device's input latency) to the moment the page put on screen the first frame whose "
        "mouth is open "
        f"(MediaPipe's inner-lip gap over mouth width >= {OPEN_MOUTH}), by requestVideoFrameCallback's "
        "expectedDisplayTime. The onset's moment: the same, for the frame at the onset's time in the video "
        "(what the delay would be if the mouth opened at once).",
        *([choice] if choice else []),
        FLASHHEAD,
    ])


def chromium_version() -> str:
    output = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True).stdout
    return output.split()[1] if output else "?"


if __name__ == "__main__":
    main()
