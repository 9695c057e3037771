"""Driving the real page: start `app.py` on loopback, open it in Debian's Chromium, click like a person.

Shared by the browser test and the benchmarks; never downloads a browser.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path(os.environ.get("AVATAR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AppServer:
    """`python app.py` on a free loopback port with its own folders; a context manager."""

    def __init__(
        self,
        work: Path,
        extra_env: dict[str, str] | None = None,
        startup_seconds: float = 180,
        argv: list[str] | None = None,
    ) -> None:
        self.work = work
        # What runs the app: `python app.py`, or another way in (e.g. `-c` code that registers an engine first).
        self.argv = argv or ["app.py"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log_path = work / "server.log"
        self.env = {
            **os.environ,
            "GRADIO_SERVER_PORT": str(self.port),
            "AVATAR_VOICE": "offline",
            "AVATAR_WORK_DIR": str(work / "runs"),
            "GRADIO_TEMP_DIR": str(work / "gradio"),
            "GRADIO_ANALYTICS_ENABLED": "False",
            **(extra_env or {}),
        }
        self.startup_seconds = startup_seconds
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> AppServer:
        self.work.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, *self.argv], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the app exited early:\n{self.log_path.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        self.process.kill()
        raise RuntimeError("the app did not start in time")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def launch_chromium(playwright):
    """Debian's Chromium through Playwright, headless, with the machine's closed network in mind."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


class PageDriver:
    """One visitor on the talk tab."""

    def __init__(self, page, url: str) -> None:
        self.page = page
        self.page.set_default_timeout(120_000)
        self.page.goto(url)
        self.page.wait_for_selector("#generate")
        self.page.wait_for_function("() => window.__playback !== undefined")

    def pick_sample(self, index: int) -> None:
        self.page.locator("#sample-faces button, #sample-faces img").nth(index).click()

    def type_text(self, text: str) -> None:
        box = self.page.locator("#text textarea")
        box.fill(text)

    def generate(self) -> None:
        self.page.locator("#generate").click()

    def wait_first_picture(self, timeout: float = 60) -> float:
        self.page.wait_for_function("() => window.__playback.firstPicture !== null", timeout=timeout * 1000)
        return float(self.page.evaluate("() => window.__playback.firstPicture"))

    def video_time(self) -> float:
        return float(self.page.evaluate("() => document.querySelector('#video video')?.currentTime ?? 0"))

    def status(self) -> str:
        return self.page.locator("#status").inner_text()

    def wait_finished(self, timeout: float = 120) -> str:
        self.page.wait_for_function(
            "() => /Spoken by|⚠️|Stopped/.test(document.querySelector('#status')?.innerText ?? '')",
            timeout=timeout * 1000,
        )
        return self.status()

    def wait_playback_ended(self, timeout: float = 120) -> dict:
        self.page.wait_for_function("() => window.__playback.ended", timeout=timeout * 1000)
        return self.playback()

    def playback(self) -> dict:
        return dict(self.page.evaluate("() => ({...window.__playback})"))


def launch_chromium_with_microphone(playwright, sound: Path):
    """Chromium whose microphone is a fake capture device playing `sound` (a WAV) in a loop, allowed without asking."""
    fake_microphone = [
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={sound}",
    ]
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + fake_microphone)


class RecordingDriver(PageDriver):
    """One visitor on the talk tab who speaks with a recording: a sound file, or the microphone."""

    UPLOADED = "#recording a.download-link[href*='file=']"  # the recording box's own link, once the server has it

    def use_recording(self) -> None:
        """Choose "Use a recording" and wait for the recording box, and for the words box to say what it is now."""
        self.page.locator("#speech-from").get_by_label("Use a recording").check()
        self.page.wait_for_selector("#recording", state="visible")
        self.page.wait_for_function(
            "() => (document.querySelector('#text')?.innerText ?? '').includes('Words of the recording')"
        )

    def upload_recording(self, path: Path) -> None:
        """Hand the recording box a file, as the file picker does, and wait until the server has it."""
        with self.page.expect_response(lambda response: "/gradio_api/upload" in response.url):
            self.page.locator("#recording input[type=file]").set_input_files(str(path))
        self.page.wait_for_selector(self.UPLOADED, state="attached")

    def record_with_microphone(self, seconds: float) -> float:
        """Press the box's Record, wait `seconds`, press Stop; returns about how long it recorded."""
        self.page.locator("#recording button[aria-label='Record audio']").click()
        record = self.page.locator("#recording button.record-button")
        record.wait_for(state="visible")
        record.click()
        started = time.monotonic()
        self.page.wait_for_timeout(seconds * 1000)
        with self.page.expect_response(lambda response: "/gradio_api/upload" in response.url):
            self.page.locator("#recording button.stop-button").click()
            recorded = time.monotonic() - started
        self.page.wait_for_selector(self.UPLOADED, state="attached")
        return recorded

    def recording_url(self) -> str:
        """Where the server keeps the recording the box holds."""
        return str(self.page.locator(self.UPLOADED).get_attribute("href"))

    def video_seconds(self) -> float:
        """The finished video's length, as the status line reports it ("all 2.96 s of video done")."""
        match = re.search(r"all ([0-9.]+) s of video", self.status())
        if match is None:
            raise AssertionError(f"the status line names no video length: {self.status()!r}")
        return float(match.group(1))
