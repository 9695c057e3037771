"""Driving the real page: start `app.py` on loopback, open it in Debian's Chromium, click like a person.

Shared by the browser test and the benchmarks; never downloads a browser.
"""

from __future__ import annotations

import os
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
