"""The page on a phone (390x844, as a reviewer opens it from a chat message) and on a desktop, in real Chromium.

On a phone: the best sample face, the text and Generate on the first screen; the video brought into view
with its first picture; every control large enough for a thumb; the Share link opens without the app.
On a desktop: the two columns stay side by side, and the crop preview stays open.
"""

from __future__ import annotations

import pytest

from bench.page_driver import CHROMIUM, AppServer, PageDriver, launch_chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)"),
]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1400, "height": 1000}
WAIT_MS = 120_000
# The box of an element against the window, for checks of what a visitor sees without scrolling.
BOX = """selector => {
  const element = document.querySelector(selector);
  if (!element) return null;
  const box = element.getBoundingClientRect();
  return {top: box.top, bottom: box.bottom, left: box.left, right: box.right, width: box.width,
          height: box.height, window: window.innerHeight};
}"""
IN_VIEW = """selector => {
  const element = document.querySelector(selector);
  if (!element) return false;
  const box = element.getBoundingClientRect();
  return box.height > 0 && box.top >= 0 && box.bottom <= window.innerHeight + 1;
}"""
# Every control a visitor can touch in the Talk tab, with its size: buttons, tabs, links, text boxes and menus.
CONTROLS = """() => {
  const talk = document.querySelector('#talk-layout');
  const controls = [...document.querySelectorAll('[role=tab]')];
  controls.push(...talk.querySelectorAll('button, a[href], textarea, .wrap-inner, input[type=checkbox]'));
  return controls
    .filter(element => element.offsetParent !== null && getComputedStyle(element).visibility !== 'hidden')
    .map(element => {
      const box = (element.matches('input[type=checkbox]') ? element.closest('label') || element : element)
        .getBoundingClientRect();
      const name = element.id || element.getAttribute('aria-label') || element.textContent.trim().slice(0, 30) ||
        element.className.toString().split(' ')[0];
      return {name: element.tagName.toLowerCase() + ' ' + name, width: box.width, height: box.height};
    })
    .filter(control => control.width > 0 && control.height > 0);
}"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("phone")) as running:
        yield running


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def open_talk_tab(browser, server, viewport: dict) -> PageDriver:
    """The page opened in a fresh window of `viewport`'s size, once its face note is there (the page is ready)."""
    page = browser.new_page(viewport=viewport)
    driver = PageDriver(page, server.url)
    page.wait_for_function(
        "() => (document.querySelector('#face-note')?.innerText ?? '').length > 0", timeout=WAIT_MS
    )
    return driver


def test_on_a_phone_the_best_sample_the_text_and_generate_are_on_the_first_screen(browser, server):
    driver = open_talk_tab(browser, server, PHONE)
    page = driver.page
    generate, text = page.evaluate(BOX, "#generate"), page.evaluate(BOX, "#text textarea")
    photo = page.locator("#photo img").get_attribute("src")
    first_sample = page.locator("#sample-faces img").first.get_attribute("src")
    samples = page.evaluate(BOX, "#sample-faces")
    scrolled = page.evaluate("() => window.scrollY")
    page.close()
    assert scrolled == 0
    assert 0 <= text["top"] and text["bottom"] <= PHONE["height"], f"the text box is off the first screen: {text}"
    assert 0 <= generate["top"] and generate["bottom"] <= PHONE["height"], f"Generate is below the fold: {generate}"
    assert photo.endswith("grace_hopper.jpg") and first_sample.endswith("grace_hopper.jpg"), "not the best sample"
    assert samples["height"] <= 140, f"the sample faces are not a compact row: {samples}"


def test_on_a_phone_the_video_is_in_view_within_a_second_of_its_first_picture_then_shared(browser, server):
    driver = open_talk_tab(browser, server, PHONE)
    page = driver.page
    driver.type_text("Hello there. This is how a video looks on a phone, with its status beside it.")
    driver.generate()
    driver.wait_first_picture(timeout=90)
    page.wait_for_function(IN_VIEW, arg="#video video", timeout=1000)
    status_in_view = page.evaluate(IN_VIEW, "#status")
    driver.wait_finished(timeout=180)
    page.locator("#share").click()
    page.wait_for_function(
        "() => (document.querySelector('#share-link textarea, #share-link input')?.value ?? '').includes('/share/')",
        timeout=WAIT_MS,
    )
    page.wait_for_function(IN_VIEW, arg="#share-link", timeout=3000)
    link = page.locator("#share-link textarea, #share-link input").first.input_value()
    page.close()
    assert status_in_view, "the status line is not beside the video"

    stranger = browser.new_context(viewport=PHONE)  # no cookies, never saw the app's page
    shared = stranger.new_page()
    assert shared.goto(link).status == 200
    shared.wait_for_function("() => document.querySelector('#video').readyState >= 1", timeout=WAIT_MS)
    duration = shared.evaluate("() => document.querySelector('#video').duration")
    download = shared.evaluate(BOX, "#download")
    words = shared.locator("#spoken").inner_text()
    stranger.close()
    assert duration > 1.0 and words.startswith("Hello there.")
    assert download["height"] >= 44 and download["bottom"] <= PHONE["height"], "the download button is not at hand"


def test_on_a_phone_every_control_is_at_least_44_px_both_ways(browser, server):
    driver = open_talk_tab(browser, server, PHONE)
    controls = driver.page.evaluate(CONTROLS)
    driver.page.close()
    assert len(controls) >= 10, controls
    small = [control for control in controls if min(control["width"], control["height"]) < 44]
    assert small == [], f"too small for a thumb: {small}"


def test_on_a_phone_the_crop_preview_is_folded_away_and_opens_on_a_tap(browser, server):
    driver = open_talk_tab(browser, server, PHONE)
    page = driver.page
    folded = page.evaluate(BOX, "#crop")
    page.locator("#crop-fold button.label-wrap").click()
    page.wait_for_function("() => document.querySelector('#crop')?.getBoundingClientRect().height > 100")
    page.close()
    assert folded is None or folded["height"] == 0


def test_on_a_desktop_the_columns_stay_side_by_side_and_the_crop_stays_open(browser, server):
    driver = open_talk_tab(browser, server, DESKTOP)
    page = driver.page
    photo, text = page.evaluate(BOX, "#photo"), page.evaluate(BOX, "#text")
    crop, generate = page.evaluate(BOX, "#crop"), page.evaluate(BOX, "#generate")
    driver.generate()
    driver.wait_first_picture(timeout=90)
    page.wait_for_function(IN_VIEW, arg="#video video", timeout=1000)
    page.close()
    assert text["left"] >= photo["right"] and abs(text["top"] - photo["top"]) < 200, "the columns were stacked"
    assert crop["height"] > 200, "the crop preview was folded on a desktop"
    assert generate["bottom"] <= DESKTOP["height"]
