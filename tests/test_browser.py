"""The page in a real browser: a visitor picks a face, types, clicks Generate and watches it play."""

from __future__ import annotations

import time

import pytest

from bench.page_driver import CHROMIUM, AppServer, PageDriver, launch_chromium

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
