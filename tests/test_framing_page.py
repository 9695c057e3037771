"""Your photo as you framed it, through the real server and in Chromium: the video keeps the photo's shape,
leaves everything outside the face as it was, shows nothing mirrored, and the trials judge the framing chosen.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from avatar.faces import read_face
from avatar.framing import Framing, video_size
from avatar.media import probe, read_frames
from bench.page_driver import CHROMIUM, AppServer, PageDriver, launch_chromium
from tests.helpers import GRACE_HOPPER
from tests.test_framing import MIRRORED, frame_to_photo, hard_photo, mirror_likeness

MAX_SIDE = 768
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("framing"), {"AVATAR_MAX_VIDEO_SIDE": str(MAX_SIDE)}) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def tight(tmp_path_factory) -> Path:
    """Grace Hopper cut down to her face and cap, as the issue found it: a tight head shot."""
    path = tmp_path_factory.mktemp("photos") / "tight.png"
    Image.fromarray(hard_photo("grace_hopper-tight")).save(path)
    return path


def run(client: Client, photo: Path, framing: str) -> tuple:
    job = client.submit(
        handle_file(str(photo)),
        "Hello there, nice to meet you.",
        "offline:joe",
        "default",
        "text",
        None,
        framing,
        api_name="/run",
    )
    return tuple(list(job)[-1])


def test_a_tight_head_shot_speaks_as_the_whole_photo_in_its_own_shape(client, tight):
    _, download, _, status = run(client, tight, "whole")
    picture = np.asarray(Image.open(tight).convert("RGB"))
    info = probe(Path(download[0]))
    assert (info.width, info.height) == video_size(picture.shape, MAX_SIDE), status


def test_in_a_whole_photo_nothing_outside_the_face_moves(client):
    """A portrait with shoulders and a flag: outside the face's square every frame is the photo itself."""
    _, download, _, _ = run(client, GRACE_HOPPER, "whole")
    frames = read_frames(Path(download[0]))
    picture = np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))
    face = read_face(picture, framing=Framing.WHOLE)
    corners = np.array([[0, 0], [511, 0], [0, 511], [511, 511]], np.float64)
    square = corners @ face.crop_to_photo[:, :2].T + face.crop_to_photo[:, 2]
    scale = frames.shape[2] / picture.shape[1]
    (left, top), (right, bottom) = (
        np.clip(square.min(axis=0) * scale, 0, None).astype(int),
        np.ceil(square.max(axis=0) * scale).astype(int),
    )
    outside = np.ones(frames.shape[1:3], bool)
    outside[top:bottom, left:right] = False
    still = np.asarray(Image.fromarray(picture).resize(frames.shape[2:0:-1], Image.Resampling.BOX))
    assert outside.sum() > 0.05 * outside.size
    # Up to H.264's rounding: a pixel that never changes is encoded the same in every frame.
    assert np.abs(frames[:, outside].astype(int) - still[outside].astype(int)).mean() < 4
    assert frames[:, outside].astype(np.float32).std(axis=0).mean() < 1.5


def test_a_tight_head_shots_close_up_shows_no_mirrored_edges_and_the_preview_says_what_is_filled(client, tight):
    crop, note = client.predict(handle_file(str(tight)), "close-up", api_name="/preview_face")
    assert crop is not None and "fill" in note.lower()
    _, download, _, _ = run(client, tight, "close-up")
    frames = read_frames(Path(download[0]))
    face = read_face(np.asarray(Image.open(tight).convert("RGB")), framing=Framing.CLOSE_UP)
    image_to_photo = frame_to_photo(face, frames.shape[1])
    for frame in frames[:: max(1, len(frames) // 4)]:
        assert mirror_likeness(frame, image_to_photo, face.photo.shape) < MIRRORED


def test_the_trials_call_a_tight_head_shot_good_as_a_whole_photo_and_mark_it_down_as_a_close_up(client, tight):
    whole = client.predict(
        [handle_file(str(tight))], "Hello.", "offline:joe", "default", "whole", api_name="/check_photos"
    )
    close = client.predict(
        [handle_file(str(tight))], "Hello.", "offline:joe", "default", "close-up", api_name="/check_photos"
    )
    whole_verdicts, close_verdicts = whole[-1], close[-1]
    assert "Good" in whole_verdicts.splitlines()[0], whole_verdicts
    assert "fill" in close_verdicts.lower() and "Good (score" not in close_verdicts.splitlines()[0], close_verdicts


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)")
def test_in_the_browser_a_whole_photo_video_plays_in_the_photos_own_shape(server, tight):
    from playwright.sync_api import sync_playwright

    picture = Image.open(tight)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        driver = PageDriver(page, server.url)
        page.locator("#photo input[type=file]").set_input_files(str(tight))
        page.wait_for_function(
            "() => (document.querySelector('#face-note')?.innerText ?? '').includes('ready')", timeout=WAIT_MS
        )
        driver.generate()
        driver.wait_first_picture(timeout=90)
        width, height = page.evaluate(
            "() => { const v = document.querySelector('#video video'); return [v.videoWidth, v.videoHeight]; }"
        )
        driver.wait_finished()
        browser.close()
    assert width / height == pytest.approx(picture.width / picture.height, rel=0.02)
