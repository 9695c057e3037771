"""Live mode in a real browser: a visitor talks into a (fake) microphone and the face speaks with them.

The decoded frames of the finished take show the mouth open in the words and at rest in the pauses,
with the face still alive there. Also: a refused microphone in one sentence, and the live player where a
browser has only ManagedMediaSource (an iPhone's Safari) or no Media Source at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatar.config import FPS
from avatar.media import AUDIO_RATE, parse_webvtt, read_audio, read_frames
from avatar.speech.live_source import ENDINGS
from bench.live_latency import LiveDriver, phrases_wav
from bench.page_driver import CHROMIUM, CHROMIUM_ARGS, AppServer, PageDriver, launch_chromium_with_microphone

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]
WAIT_MS = 120_000
DESKTOP = {"width": 1280, "height": 1100}
PHRASES = ("Hello there.", "Nice to meet you.", "This is live.")
# Frames whose 40 ms of the take's sound is above this are words; a pause is more than PAUSE_MARGIN frames from any.
WORDS_DBFS = -40.0
PAUSE_MARGIN = 6
# MediaPipe's landmarks (as bench/default_engine.py reads them): inner lips, mouth corners, eyelids and eye corners.
LIPS, CORNERS = (13, 14), (61, 291)
EYES = ((159, 145, 33, 133), (386, 374, 362, 263))
# A blink, as MediaPipe sees the engine's (behind glasses, too): the eyes this much narrower for two frames or more.
BLINK = 0.94
# A browser with ManagedMediaSource only (Safari on an iPhone), or with neither kind of Media Source.
ONLY_MANAGED = "window.ManagedMediaSource = window.MediaSource; delete window.MediaSource;"
NEITHER = "delete window.MediaSource; delete window.ManagedMediaSource;"
UNSUPPORTED = "This browser cannot play the video while it is being made"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("live"), {"AVATAR_ENGINE": "default"}) as running:
        yield running


@pytest.fixture(scope="module")
def phrases(tmp_path_factory) -> Path:
    return phrases_wav(tmp_path_factory.mktemp("microphone") / "phrases.wav", PHRASES)


def landmarks(frames: np.ndarray) -> np.ndarray:
    """MediaPipe's 478 points on each decoded frame (NaN where no face is found)."""
    from avatar.faces import find_faces

    points = []
    for frame in frames:
        found = find_faces(frame)
        points.append(found[0].landmarks[:, :2] if found else np.full((478, 2), np.nan))
    return np.stack(points)


def gap(points: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """The distance between two points over that between two others, per frame."""
    return np.linalg.norm(points[:, top] - points[:, bottom], axis=1) / np.linalg.norm(
        points[:, left] - points[:, right], axis=1
    )


def words_and_pauses(take: Path, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Which frames are under words, and which are in a pause well away from any (by the take's own sound)."""
    sound = read_audio(take, AUDIO_RATE)[: frames * AUDIO_RATE // FPS]
    sound = np.pad(sound, (0, frames * AUDIO_RATE // FPS - len(sound)))
    level = 10 * np.log10(np.mean(sound.reshape(frames, -1) ** 2, axis=1) + 1e-12)
    words = level > WORDS_DBFS
    near = np.convolve(words, np.ones(2 * PAUSE_MARGIN + 1), mode="same") > 0
    return words, ~near


def test_the_face_speaks_with_the_visitor_mouth_open_in_the_words_and_at_rest_in_the_pauses(server, phrases, tmp_path):
    from playwright.sync_api import sync_playwright

    talking_seconds = soundfile.info(phrases).duration + 1.0
    with sync_playwright() as playwright:
        browser = launch_chromium_with_microphone(playwright, Path(f"{phrases}%noloop"))
        page = browser.new_page(viewport=DESKTOP)
        driver = LiveDriver(page, server.url)
        driver.open_live()
        page.locator("#live-words textarea").fill(" ".join(PHRASES))
        driver.start()
        page.wait_for_function("() => document.querySelector('#live-video video').currentTime > 1", timeout=WAIT_MS)
        muted = page.evaluate("() => document.querySelector('#live-video video').muted")
        page.wait_for_timeout(talking_seconds * 1000)
        driver.stop()
        status = driver.wait_ended()
        take = driver.take(tmp_path)
        links = page.locator("#live-download a").evaluate_all("links => links.map(link => link.href)")
        captions = page.request.get(next(link for link in links if link.endswith(".vtt"))).text()
        browser.close()
    assert muted, "the live video played the visitor's own voice back to them"
    assert status.startswith("Spoken by you, live") and "⚠️" not in status
    assert [line for _, _, line in parse_webvtt(captions)] and " ".join(
        line for _, _, line in parse_webvtt(captions)
    ) == " ".join(PHRASES)
    frames = read_frames(take)
    assert len(frames) / FPS > talking_seconds - 1.0, "the take is shorter than what was said"
    points = landmarks(frames)
    mouth = gap(points, *LIPS, *CORNERS)
    eyes = np.mean([gap(points, *eye) for eye in EYES], axis=0)
    words, pauses = words_and_pauses(take, len(frames))
    assert words.sum() > FPS and pauses.sum() > 2 * FPS, (words.sum(), pauses.sum())
    assert np.percentile(mouth[words], 75) > 0.1, "the mouth hardly opened in the words"
    assert np.mean(mouth[pauses] < 0.03) > 0.95, "the mouth did not rest in the pauses"
    closing = pauses & (eyes < BLINK * np.median(eyes[pauses]))
    assert np.any(closing[1:] & closing[:-1]), "no blink in the pauses"
    nose = points[pauses, 1]
    assert np.ptp(nose, axis=0).max() > 0.3, "the head froze in the pauses"


def test_a_refused_microphone_ends_the_session_in_one_plain_sentence(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        arguments = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--deny-permission-prompts"]
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=arguments)
        page = browser.new_page(viewport=DESKTOP)
        driver = LiveDriver(page, server.url)
        driver.open_live()
        page.locator("#live-start").click()
        status = driver.wait_ended(timeout=90)
        downloads = page.locator("#live-download a").count()
        toasts = page.locator('[data-testid="toast-body"]').count()
        browser.close()
    assert status == f"⚠️ {ENDINGS['denied']}"
    assert downloads == 0 and toasts == 0


@pytest.mark.parametrize("browser_has", ["only ManagedMediaSource", "no Media Source"])
def test_a_run_plays_where_the_browser_has_only_managed_media_source_and_says_so_where_it_has_none(
    server, browser_has
):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=DESKTOP)
        page.add_init_script(ONLY_MANAGED if browser_has == "only ManagedMediaSource" else NEITHER)
        driver = PageDriver(page, server.url)
        driver.type_text("Hello there, nice to meet you.")
        driver.generate()
        if browser_has == "only ManagedMediaSource":
            page.wait_for_function("() => document.querySelector('#video video')?.currentTime > 0.5", timeout=WAIT_MS)
            remote_off = page.evaluate("() => document.querySelector('#video video').disableRemotePlayback")
        else:
            page.wait_for_selector("#video .live-unsupported", timeout=WAIT_MS)
        said = page.locator("#video").inner_text()
        status = driver.wait_finished(timeout=180)
        downloads = page.locator("#download a").count()
        browser.close()
    assert status.startswith("Spoken by") and downloads >= 1
    if browser_has == "only ManagedMediaSource":
        assert remote_off, "ManagedMediaSource opens only with remote playback off"
    else:
        assert said.strip().startswith(UNSUPPORTED) and said.count(".") == 1
