"""Your own voice in a real browser: a sound file uploaded, or the microphone, becomes what the face says.

Also what a visitor sees when the recording cannot be used (not a sound, silence, over the limit), and
the recording box on a phone. Every sound is made here: the offline voice speaks, ffmpeg encodes it,
and Chromium's fake microphone plays it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatar.config import FPS
from bench.page_driver import CHROMIUM, AppServer, RecordingDriver, launch_chromium_with_microphone
from tests.helpers import ffmpeg, speak_to_wav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]
WAIT_MS = 120_000
DESKTOP = {"width": 1280, "height": 1100}
PHONE = {"width": 390, "height": 844}
SAID = "Hello there. This is my own voice."
TYPED = "My own words, typed with care."
# The server's recording limit (AVATAR_MAX_RECORDING_SECONDS), low so that a recording over it is quick to make.
LIMIT_SECONDS = 5
# One frame, and the status line's rounding to 10 ms: the video is as long as the recording within that.
ONE_FRAME = 1 / FPS + 0.01
NOT_A_SOUND = "This file is not a sound recording or a video; please choose one."
NO_SPEECH = "No speech was heard in the recording; please record again, closer to the microphone."
BOX = """selector => {
  const element = document.querySelector(selector);
  if (!element) return null;
  const box = element.getBoundingClientRect();
  return {top: box.top, bottom: box.bottom, height: box.height};
}"""
# Watches the status line's progress overlay: `window.__answered` once an event that writes the status has run.
ANSWERED = """() => {
  const tracker = document.querySelector('#status [data-testid=status-tracker]');
  let busy = false;
  window.__answered = false;
  new MutationObserver(() => {
    if (!tracker.classList.contains('hide')) busy = true;
    else if (busy) window.__answered = true;
  }).observe(tracker, {attributes: true, attributeFilter: ['class']});
}"""
# The recording box's and the speech choice's controls that a thumb may touch, with their sizes.
CONTROLS = """() => [...document.querySelectorAll('#speech-from label, #recording button, #recording select')]
  .filter(element => element.offsetParent !== null && getComputedStyle(element).visibility !== 'hidden')
  .map(element => {
    const box = element.getBoundingClientRect();
    const name = element.getAttribute('aria-label') || element.textContent.trim().slice(0, 30) ||
      element.className.toString().split(' ')[0];
    return {name, width: box.width, height: box.height};
  })
  .filter(control => control.width > 0 && control.height > 0)"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def spoken_wav(folder: Path) -> Path:
    return speak_to_wav(SAID, folder / "spoken.wav")


@pytest.fixture(scope="module")
def spoken_mp3(spoken_wav: Path) -> Path:
    path = spoken_wav.with_suffix(".mp3")
    ffmpeg("-i", str(spoken_wav), "-c:a", "libmp3lame", str(path))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("browser"), {"AVATAR_MAX_RECORDING_SECONDS": str(LIMIT_SECONDS)}) as running:
        yield running


@pytest.fixture(scope="module")
def browser(spoken_wav: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium_with_microphone(playwright, spoken_wav)
        yield chromium
        chromium.close()


@pytest.fixture
def visitor(browser, server):
    """A fresh window on the Talk tab, once the sample face's note is there (the page is ready)."""
    page = browser.new_page(viewport=DESKTOP)
    driver = RecordingDriver(page, server.url)
    page.wait_for_function("() => (document.querySelector('#face-note')?.innerText ?? '').length > 0", timeout=WAIT_MS)
    yield driver
    page.close()


def seconds_of(path: Path) -> float:
    return soundfile.info(str(path)).duration


def test_an_uploaded_recording_plays_as_the_video_with_its_typed_words_as_captions(visitor, spoken_wav, spoken_mp3):
    page = visitor.page
    visitor.use_recording()
    visitor.type_text(SAID)
    visitor.upload_recording(spoken_mp3)
    visitor.generate()
    first_picture = visitor.wait_first_picture(timeout=90)
    status = visitor.wait_finished(timeout=180)
    played = visitor.wait_playback_ended(timeout=60)
    cues = page.evaluate("() => JSON.parse(document.querySelector('#captions .live-captions')?.dataset.cues ?? '[]')")
    errors = page.locator('[data-testid="toast-body"]').count()
    assert first_picture > 0 and played["ended"], "the video did not play to its end"
    assert status.startswith("Spoken by your recording (MP3), animated by"), status
    assert visitor.video_seconds() == pytest.approx(seconds_of(spoken_wav), abs=ONE_FRAME)
    assert " ".join(word[0] for cue in cues for word in cue["words"]) == SAID
    assert errors == 0


def silence(folder: Path) -> Path:
    path = folder / "silence.wav"
    soundfile.write(path, np.zeros(16_000 * 2, np.float32), 16_000)
    return path


def not_a_sound(folder: Path) -> Path:
    """A PDF that someone renamed, as if it were an MP3."""
    path = folder / "notes.mp3"
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n" + b"0" * 900)
    return path


def over_the_limit(folder: Path, spoken_wav: Path) -> Path:
    path = folder / "long.wav"
    ffmpeg("-stream_loop", "3", "-i", str(spoken_wav), str(path))  # four times SAID: over LIMIT_SECONDS
    assert seconds_of(path) > LIMIT_SECONDS + 1
    return path


@pytest.mark.parametrize(
    ("make", "begins", "ends"),
    [
        (lambda folder, wav: not_a_sound(folder), NOT_A_SOUND, NOT_A_SOUND),
        (lambda folder, wav: silence(folder), NO_SPEECH, NO_SPEECH),
        (over_the_limit, f"Recordings may be up to {LIMIT_SECONDS} seconds and this one is ", "(nothing was cut)."),
    ],
    ids=["not-a-sound", "silence", "over-the-limit"],
)
def test_a_recording_the_app_cannot_use_gets_one_plain_sentence_at_once_and_at_generate_and_nothing_is_lost(
    visitor, folder, spoken_wav, make, begins, ends
):
    page = visitor.page
    photo = page.locator("#photo img").get_attribute("src")
    visitor.use_recording()
    visitor.type_text(TYPED)
    visitor.upload_recording(make(folder, spoken_wav))
    at_once = visitor.wait_finished(timeout=60)  # the sentence comes as soon as the file is chosen
    page.evaluate(ANSWERED)
    visitor.generate()
    page.wait_for_function("() => window.__answered", timeout=WAIT_MS)
    status = visitor.status()
    errors = page.locator('[data-testid="toast-body"]').count()
    video = page.locator("#video video").count()
    assert at_once == status, "the sentence when the file was chosen is not the one at Generate"
    assert status.startswith(f"⚠️ {begins}") and status.endswith(ends), status
    assert "Error" not in status and "Traceback" not in status
    assert errors == 0, "Gradio showed an error of its own"
    assert video == 0, "a video appeared for a recording that was refused"
    assert page.locator("#text textarea").input_value() == TYPED
    assert page.locator("#photo img").get_attribute("src") == photo
    assert page.locator(RecordingDriver.UPLOADED).count() == 1, "the recording box lost the visitor's file"


def test_a_recording_made_with_the_microphone_becomes_a_video_as_long_as_it_without_the_example_words(
    visitor, tmp_path
):
    visitor.use_recording()
    left = visitor.page.locator("#text textarea").input_value()
    held = visitor.record_with_microphone(3.0)
    recorded = tmp_path / "recorded.wav"
    recorded.write_bytes(visitor.page.request.get(visitor.recording_url()).body())
    visitor.generate()
    visitor.wait_first_picture(timeout=90)
    status = visitor.wait_finished(timeout=180)
    assert left == "", "the example sentence stayed in the box, to become the recording's captions"
    assert status.startswith("Spoken by your recording (WAV), animated by"), status
    assert "type the words of the recording" in status, "the page does not say why there are no captions"
    assert seconds_of(recorded) == pytest.approx(held, abs=1.0), "the microphone did not record while Record was on"
    assert visitor.video_seconds() == pytest.approx(seconds_of(recorded), abs=ONE_FRAME)


def test_words_the_visitor_typed_stay_when_they_switch_to_a_recording_and_back(visitor):
    page = visitor.page
    visitor.type_text(TYPED)
    visitor.use_recording()
    kept = page.locator("#text textarea").input_value()
    page.locator("#speech-from").get_by_label("Type text").check()
    page.wait_for_function("() => (document.querySelector('#text')?.innerText ?? '').includes('Text to speak')")
    back = page.locator("#text textarea").input_value()
    assert kept == TYPED and back == TYPED


def on_first_screen(page, selector: str) -> bool:
    box = page.evaluate(BOX, selector)
    return box is not None and box["height"] > 0 and box["top"] >= 0 and box["bottom"] <= PHONE["height"]


def first_screen(page) -> dict[str, bool]:
    """Which of the speech choice, the recording box and Generate a visitor sees without scrolling."""
    page.evaluate("() => window.scrollTo(0, 0)")
    return {selector: on_first_screen(page, selector) for selector in ("#speech-from", "#recording", "#generate")}


def test_on_a_phone_the_recording_box_and_generate_share_the_first_screen(browser, server, spoken_mp3):
    page = browser.new_page(viewport=PHONE)
    visitor = RecordingDriver(page, server.url)
    page.wait_for_function("() => (document.querySelector('#face-note')?.innerText ?? '').length > 0", timeout=WAIT_MS)
    typed = first_screen(page)
    visitor.use_recording()
    chosen = first_screen(page)
    visitor.upload_recording(spoken_mp3)
    page.wait_for_selector("#recording .play-pause-button")
    uploaded, controls = first_screen(page), page.evaluate(CONTROLS)
    page.locator("#recording button[aria-label='Clear']").click()
    page.locator("#recording button[aria-label='Record audio']").click()
    page.locator("#recording button.record-button").wait_for(state="visible")
    microphone, controls = first_screen(page), controls + page.evaluate(CONTROLS)
    page.close()
    assert typed == {"#speech-from": True, "#recording": False, "#generate": True}, "the speech choice is not at hand"
    everything = {"#speech-from": True, "#recording": True, "#generate": True}
    assert chosen == everything, f"with 'Use a recording' chosen: {chosen}"
    assert uploaded == everything, f"with a file in the box: {uploaded}"
    assert microphone == everything, f"ready to record: {microphone}"
    small = [control for control in controls if min(control["width"], control["height"]) < 44]
    assert small == [], f"too small for a thumb: {small}"
