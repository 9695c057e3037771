"""Screenshots of the Talk tab as a visitor sees it, on a phone (390x844) and a desktop (1400x1000).

    .venv/bin/python -m bench.screenshots --tag after      # writes docs/screens/{phone,desktop}-after*.png

For each size: the first screen after the page loads, the screen a moment after the first picture
of a run (what the visitor sees having pressed Generate, without scrolling), the screen when the run
is done and, where the page has a Share button, the link it gives and the page that link opens (on
the phone). The PNGs are reduced to 256 colours so that they stay small in the repository.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from bench.page_driver import ROOT, AppServer, PageDriver, launch_chromium

SIZES = {"phone": (390, 844), "desktop": (1400, 1000)}
TEXT = "Hello there, nice to meet you. This is how a finished video looks on this screen."


def shrink(path: Path) -> None:
    """Rewrite the PNG with an adaptive 256-colour palette (a few hundred kB at most)."""
    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def shoot(url: str, out: Path, tag: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for name, (width, height) in SIZES.items():
            page = browser.new_page(viewport={"width": width, "height": height})
            driver = PageDriver(page, url)
            page.wait_for_function("() => (document.querySelector('#face-note')?.innerText ?? '').length > 0")
            time.sleep(0.5)
            loaded = out / f"{name}-{tag}.png"
            page.screenshot(path=str(loaded))
            driver.type_text(TEXT)
            driver.generate()
            driver.wait_first_picture(timeout=120)
            time.sleep(1.0)
            running = out / f"{name}-{tag}-run.png"
            page.screenshot(path=str(running))
            driver.wait_finished(timeout=180)
            time.sleep(0.5)
            finished = out / f"{name}-{tag}-done.png"
            page.screenshot(path=str(finished))
            height_px = page.evaluate("() => document.documentElement.scrollHeight")
            print(f"{name}: page {width}x{height_px} px")
            written += [loaded, running, finished]
            if page.locator("#share").count() and page.locator("#share").is_visible():
                written += share(browser, page, out, name, tag, (width, height))
            page.close()
        browser.close()
    for path in written:
        shrink(path)
    return written


def share(browser, page, out: Path, name: str, tag: str, size: tuple[int, int]) -> list[Path]:
    """Press Share: the screen with the link, and (on the phone) the page the link opens for a stranger."""
    page.locator("#share").click()
    box = "#share-link textarea, #share-link input"
    page.wait_for_function(f"() => (document.querySelector('{box}')?.value ?? '').includes('/share/')")
    time.sleep(1.0)
    shared = out / f"{name}-{tag}-shared.png"
    page.screenshot(path=str(shared))
    if name != "phone":
        return [shared]
    stranger = browser.new_context(viewport={"width": size[0], "height": size[1]})
    opened = stranger.new_page()
    opened.goto(page.locator(box).first.input_value())
    opened.wait_for_function("() => document.querySelector('#video').readyState >= 2")
    link_page = out / f"share-page-{tag}.png"
    opened.screenshot(path=str(link_page))
    stranger.close()
    return [shared, link_page]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="after", help="the suffix of the file names (before, after)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    options = parser.parse_args()
    options.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work, AppServer(Path(work)) as server:
        for path in shoot(server.url, options.out, options.tag):
            print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1000} kB")


if __name__ == "__main__":
    main()
