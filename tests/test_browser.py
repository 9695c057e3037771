"""The page in a real browser: a visitor picks a face, types, clicks Generate and watches it play.

Also what a visitor sees when the photo is no picture, and a photo from the trials opened in the Talk tab.
"""

from __future__ import annotations

import time

import pytest

from avatar.media import parse_webvtt
from bench.page_driver import CHROMIUM, AppServer, PageDriver, launch_chromium
from tests.helpers import ASTRONAUT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]
# Generous: CI machines have 2 cores, and the page's first load compiles its scripts.
WAIT_MS = 120_000
SPEECH = " ".join(
    [
        "Good morning, and welcome to the talking photo.",
        "I am speaking while the rest of this video is still being made.",
        "Each second of it streams into the page as soon as it is ready.",
        "You can stop me at any time, and your text will still be here.",
        "That is all for now.",
    ]
)
NOT_A_PICTURE = "This file is not a picture this app can read. Please use a JPEG, PNG, WebP or GIF photo."


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("browser")) as running:
        yield running


def test_the_video_plays_in_the_browser_while_it_is_still_being_generated(server, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        driver = PageDriver(page, server.url)
        driver.pick_sample(1)
        page.wait_for_function(
            "() => (document.querySelector('#face-note')?.innerText ?? '').length > 0", timeout=WAIT_MS
        )
        driver.type_text(SPEECH)
        driver.generate()
        first_picture = driver.wait_first_picture(timeout=90)
        assert first_picture > 0
        assert "Working" in driver.status(), "generation had already finished: nothing was streamed"
        before = driver.video_time()
        time.sleep(0.8)
        after = driver.video_time()
        still_working = "Working" in driver.status()
        page.screenshot(path=str(tmp_path / "streaming.png"), full_page=True)
        assert after > before, "the video did not advance"
        assert still_working, "generation ended before playback could be checked"
        status = driver.wait_finished(timeout=180)
        assert "Spoken by" in status
        page.wait_for_function(
            "() => document.querySelector('#playback-stats')?.innerText.includes('First picture')", timeout=WAIT_MS
        )
        browser.close()
    assert (tmp_path / "streaming.png").stat().st_size > 10_000


def note_says(page, text: str = "") -> None:
    """Wait until the note under the crop says `text` (or, with no `text`, anything at all)."""
    page.wait_for_function(
        "text => { const note = document.querySelector('#face-note')?.innerText ?? ''; "
        "return note.length > 0 && note.includes(text); }",
        arg=text,
        timeout=WAIT_MS,
    )


def test_a_file_that_is_not_a_picture_gets_the_apps_plain_sentence_and_the_text_stays(server, tmp_path):
    from playwright.sync_api import sync_playwright

    scan = tmp_path / "portrait.png"
    scan.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        driver = PageDriver(page, server.url)
        note_says(page)  # the sample face's, so that it cannot overwrite the answer below
        driver.type_text("My own words, typed with care.")
        page.locator("#photo input[type=file]").set_input_files(str(scan))
        note_says(page, NOT_A_PICTURE)
        driver.generate()
        status = driver.wait_finished(timeout=60)
        errors = page.locator('[data-testid="toast-body"]').count()
        text = page.locator("#text textarea").input_value()
        browser.close()
    assert status == f"⚠️ {NOT_A_PICTURE}"
    assert errors == 0, "Gradio showed an error of its own"
    assert text == "My own words, typed with care."


def test_a_photo_clicked_in_the_trials_opens_in_the_talk_tab_with_the_trials_sentence(server, tmp_path):
    from playwright.sync_api import sync_playwright

    scan = tmp_path / "scan.png"
    scan.write_bytes(b"%PDF-1.7\n" + b"0" * 500)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        PageDriver(page, server.url)
        page.get_by_role("tab", name="Photo trials").click()
        page.locator("#trial-text textarea").fill("The astronaut says hello.")
        # Not the default photo (Grace Hopper rates best), so the Talk tab shows it only if it opened.
        page.locator("#trial-photos input[type=file]").set_input_files([str(ASTRONAUT), str(scan)])
        page.locator("#trial-check").click()
        page.wait_for_function(
            "() => (document.querySelector('#trial-status')?.innerText ?? '').includes('checked')", timeout=WAIT_MS
        )
        trial_status = page.locator("#trial-status").inner_text()
        page.locator("#trial-gallery button.thumbnail-item").first.click()
        page.wait_for_function(
            "() => (document.querySelector('#photo img')?.getAttribute('src') ?? '').endsWith('astronaut.png')",
            timeout=WAIT_MS,
        )
        note_says(page, "Face found")
        tab = page.locator("[role=tab][aria-selected=true]").inner_text()
        photo = page.locator("#photo img").get_attribute("src")
        text = page.locator("#text textarea").input_value()
        browser.close()
    assert trial_status.startswith("2 photo(s) checked, 1 usable.")
    assert tab == "Talk" and photo.endswith("astronaut.png") and text == "The astronaut says hello."


CAPTION = """() => {
  const video = document.querySelector('#video video');
  const box = document.querySelector('#captions .live-captions');
  const line = box?.querySelector('.caption-line');
  return { now: video?.currentTime ?? 0, at: Number(line?.dataset.time ?? -1), line: line?.innerText ?? '',
           spoken: line?.querySelector('.spoken')?.innerText ?? null, shown: !!line && !line.hidden,
           cues: JSON.parse(box?.dataset.cues ?? '[]') };
}"""

SEEK = "at => { const video = document.querySelector('#video video'); video.pause(); video.currentTime = at; }"


def said_at(cues: list[dict], seconds: float) -> tuple[str, str | None]:
    """The line and the word being said at `seconds`, by the cues the page was given."""
    cue = next((cue for cue in cues if cue["start"] <= seconds < cue["end"]), None)
    if cue is None:
        return "", None
    word = next((text for text, start, end in cue["words"] if start <= seconds < end), None)
    return " ".join(text for text, _, _ in cue["words"]), word


def test_captions_under_the_live_video_show_the_word_being_said_when_the_picture_shows_it(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        driver = PageDriver(page, server.url)
        driver.type_text(SPEECH)
        driver.generate()
        driver.wait_first_picture(timeout=90)
        # The first word (from about 0.05 s): its caption must be there as soon as the picture is.
        page.wait_for_function("() => document.querySelector('#video video').currentTime > 0.3", timeout=WAIT_MS)
        live = [page.evaluate(CAPTION)]
        working = "Working" in driver.status()
        for _ in range(5):
            time.sleep(0.45)
            live.append(page.evaluate(CAPTION))
        driver.wait_finished(timeout=180)
        links = page.locator("#download a").evaluate_all("links => links.map(link => link.href)")
        subtitles = next(link for link in links if link.endswith(".vtt"))
        webvtt = page.request.get(subtitles).text()
        # Seeking the finished video: the captions follow it.
        seeked = []
        for moment in (4.0, 1.0):
            page.evaluate(SEEK, moment)
            page.wait_for_function("() => !document.querySelector('#video video').seeking")
            page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
            seeked.append(page.evaluate(CAPTION))
        page.locator("#captions .caption-toggle").click()
        hidden = page.evaluate(CAPTION)
        page.locator("#captions .caption-toggle").click()
        shown_again = page.evaluate(CAPTION)
        browser.close()
    assert working, "the run had ended before the captions could be watched live"
    assert live[0]["line"] and live[0]["line"] == said_at(live[0]["cues"], live[0]["at"])[0], live[0]
    for caption in live:
        assert abs(caption["at"] - caption["now"]) < 0.3, "the caption does not follow the video's clock"
        assert (caption["line"], caption["spoken"]) == said_at(caption["cues"], caption["at"]), caption
    assert any(caption["spoken"] for caption in live), "no word was ever marked while it was said"
    final = seeked[-1]["cues"]
    assert [line for _, _, line in parse_webvtt(webvtt)] == [" ".join(w[0] for w in cue["words"]) for cue in final]
    assert " ".join(line for _, _, line in parse_webvtt(webvtt)) == SPEECH
    for caption in seeked:
        assert caption["at"] == pytest.approx(caption["now"], abs=0.001)
        assert caption["line"] and (caption["line"], caption["spoken"]) == said_at(final, caption["now"])
    assert not hidden["shown"] and shown_again["shown"] and shown_again["line"] == seeked[-1]["line"]
