"""Usable photos speak the same sentence; the review bundle holds the videos, a contact sheet and an offline page."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.config import Settings
from avatar.errors import UserFacingError
from avatar.media import probe, read_frames
from avatar.studio import Studio
from avatar.trials.trial import Trial
from avatar.trials.uploads import MAX_PHOTOS, gather_photos
from tests.helpers import ASTRONAUT, GRACE_HOPPER
from tests.trials import photos

SENTENCE = "Hello there."


@pytest.fixture(scope="module")
def finished_trial(tmp_path_factory):
    """Three photos (two good, one without a face) checked, spoken and exported, offline voice, CPU engine."""
    folder = tmp_path_factory.mktemp("trial")
    studio = Studio(Settings(voice="offline", engine="default", work_dir=folder / "work"))
    archive = folder / "photos.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(photos.COFFEE, "holiday/coffee.png")
        bundle.write(ASTRONAUT, "holiday/astronaut.png")
    trial = Trial.create(studio.settings.work_dir)
    list(trial.check([GRACE_HOPPER, archive], studio))
    outcomes = list(trial.speak(studio, SENTENCE, "offline:joe", "default"))
    grid, bundle = trial.export()
    return trial, outcomes, grid, bundle


def test_every_usable_photo_speaks_best_first_and_the_unusable_one_does_not(finished_trial):
    trial, outcomes, _, _ = finished_trial
    assert [r.name for r in trial.reports] == ["grace_hopper.jpg", "astronaut.png", "coffee.png"]
    assert [o.report.name for o in outcomes] == ["grace_hopper.jpg", "astronaut.png"]
    durations = [probe(o.video).video_seconds for o in outcomes]
    assert durations[0] > 0.3 and durations[0] == pytest.approx(durations[1], abs=0.05)
    assert trial.best().name == "grace_hopper.jpg"


def test_the_grid_mp4_shows_every_video_in_one_frame_with_the_sound(finished_trial):
    trial, outcomes, grid, _ = finished_trial
    info = probe(grid)
    assert info.width == 2 * 384 and info.audio_seconds > 0.3
    assert info.video_seconds == pytest.approx(probe(outcomes[0].video).video_seconds, abs=0.1)
    frame = read_frames(grid)[5].astype(np.float32)
    left, right = frame[:384, :384], frame[:384, 384:]
    assert left.std() > 20 and right.std() > 20 and np.abs(left - right).mean() > 10


def test_the_bundle_holds_each_mp4_the_contact_sheet_and_a_page_that_names_only_files_inside(finished_trial):
    _, outcomes, _, bundle = finished_trial
    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        page = archive.read("index.html").decode()
        sheet = Image.open(archive.open("contact-sheet.png"))
        assert sheet.width >= 3 * 290
    assert {f"videos/{o.video.name}" for o in outcomes} <= names
    assert {"index.html", "contact-sheet.png", "grid.mp4"} <= names
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references and all(reference in names for reference in references)
    assert "http" not in page and "//" not in page.replace("://", "")
    for expected in ("grace_hopper.jpg", "Not usable: no face found", "Recommended", SENTENCE):
        assert expected in page


def test_more_than_sixteen_photos_are_cut_to_sixteen_with_a_note(tmp_path):
    given = [tmp_path / f"photo-{i}.png" for i in range(MAX_PHOTOS + 2)]
    for path in given:
        shutil.copyfile(ASTRONAUT, path)
    gathered, notes = gather_photos(given, tmp_path / "gathered", 25_000_000)
    assert len(gathered) == MAX_PHOTOS and f"first {MAX_PHOTOS} of the {MAX_PHOTOS + 2}" in notes[0]


def test_a_zip_cannot_write_outside_the_trial_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(ASTRONAUT, "../../escaped.png")
    gathered, _ = gather_photos([archive], tmp_path / "inside", 25_000_000)
    assert gathered == [tmp_path / "inside" / "escaped.png"]
    assert not (tmp_path.parent / "escaped.png").exists()


def test_no_photos_or_a_zip_without_pictures_is_refused_with_a_clear_message(tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("readme.txt", "no pictures here")
    with pytest.raises(UserFacingError, match="add some photos"):
        gather_photos([archive], tmp_path / "gathered", 25_000_000)


def extract(bundle: Path, folder: Path) -> Path:
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(folder)
    return folder / "index.html"


@pytest.mark.browser
def test_the_page_plays_every_video_together_offline_in_headless_chromium(finished_trial, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    page_path = extract(finished_trial[3], tmp_path)
    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_path.as_uri())
        page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)")
        page.click("#play")
        page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.currentTime > 0.2)")
        page.click("#pause")
        page.click("#forward")
        page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => !v.seeking)")
        times = page.evaluate("Array.from(document.querySelectorAll('video')).map(v => v.currentTime)")
        errors = page.evaluate("Array.from(document.querySelectorAll('video')).map(v => v.error && v.error.code)")
        sheet_loaded = page.evaluate("document.querySelector('img').naturalWidth > 0")
        browser.close()
    assert len(times) == 2 and errors == [None, None] and sheet_loaded
    assert max(times) - min(times) < 0.02, f"videos not at the same frame after stepping: {times}"
    assert all(url.startswith("file://") for url in requests), requests
