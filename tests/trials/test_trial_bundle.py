"""Usable photos speak the same sentence; the review bundle holds the videos, a contact sheet and an offline page."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from avatar.captions import Cue, as_json, cue_at
from avatar.config import FPS, Settings
from avatar.errors import UserFacingError
from avatar.media import parse_webvtt, probe, read_frames, read_subtitles
from avatar.speech.utterance import Word
from avatar.studio import Studio
from avatar.trials.bundle import CAPTION_BAND_HEIGHT, GRID_LABEL_HEIGHT, caption_band
from avatar.trials.trial import Trial
from avatar.trials.uploads import MAX_PHOTOS, gather_photos
from tests.helpers import ASTRONAUT, GRACE_HOPPER
from tests.trials import photos

SENTENCE = "Hello there. Nice to meet you."


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


def test_the_grid_mp4_for_chat_apps_has_the_captions_burned_in_under_the_videos(finished_trial):
    _, outcomes, grid, _ = finished_trial
    cues = outcomes[0].captions
    frames = read_frames(grid)
    band_top = 384 + GRID_LABEL_HEIGHT
    assert frames.shape[1] == band_top + CAPTION_BAND_HEIGHT
    words = [word for cue in cues for word in cue.words]
    quiet = 0  # before the first word
    saying = [round((word.start + word.end) / 2 * FPS) for word in words]
    for index in (quiet, *saying):
        drawn = caption_band(cues, index / FPS, frames.shape[2]).astype(np.float32)
        assert np.abs(frames[index, band_top:].astype(np.float32) - drawn).mean() < 6, f"frame {index}"
    assert frames[quiet, band_top:].max() < 40, "a caption before the first word"
    assert all(frames[index, band_top:].max() > 200 for index in saying), "no caption while a word is said"


def test_every_mp4_in_the_bundle_carries_its_captions_and_a_webvtt_file_beside_it(finished_trial, tmp_path):
    _, outcomes, _, bundle = finished_trial
    extract(bundle, tmp_path)
    for outcome in outcomes:
        lines = [cue.text for cue in outcome.captions]
        assert " ".join(lines) == SENTENCE
        video = tmp_path / "videos" / outcome.video.name
        assert [text for _, _, text in read_subtitles(video)] == lines
        beside = parse_webvtt(video.with_suffix(".vtt").read_text())
        assert [text for _, _, text in beside] == lines


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


SHOWN = """() => Array.from(document.querySelectorAll('.card video')).map(video => {
  const caption = video.closest('.card').querySelector('.caption');
  return { now: video.currentTime, at: Number(caption.dataset.time), line: caption.innerText,
           spoken: caption.querySelector('.spoken')?.innerText ?? null };
})"""
NEXT_PAINT = "() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"
# What each caption shows in every frame painted while the first video plays up to `seconds` (or for at most
# 30 s): sampled in the same frame as the page's own update, after it, so however late a loaded machine paints,
# each sample is what a viewer saw together with that picture.
PLAYING_UNTIL = f"""seconds => new Promise(done => {{
  const shown = {SHOWN}, leader = document.querySelector('video'), samples = [], started = performance.now();
  const sample = () => {{
    samples.push(shown());
    if (leader.currentTime > seconds || leader.ended || performance.now() - started > 30000) done(samples);
    else requestAnimationFrame(sample);
  }};
  requestAnimationFrame(sample);
}})"""
SEEK_ALL = "seconds => document.querySelectorAll('video').forEach(v => { v.pause(); v.currentTime = seconds; })"


def page_cues(cues: tuple[Cue, ...]) -> tuple[Cue, ...]:
    """The captions with their times as the page has them (to the ms)."""
    return tuple(Cue(c["start"], c["end"], tuple(Word(*word) for word in c["words"])) for c in as_json(cues))


def said_at(cues: tuple[Cue, ...], seconds: float) -> tuple[str, str | None]:
    """The line and the word being said at `seconds`, by the captions' times as the page has them."""
    cue = cue_at(page_cues(cues), seconds)
    word = cue.word_at(seconds) if cue is not None else None
    return (cue.text if cue is not None else "", word.text if word is not None else None)


@pytest.mark.browser
def test_the_page_shows_each_videos_captions_in_step_while_playing_and_frame_by_frame(finished_trial, tmp_path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    _, outcomes, _, bundle = finished_trial
    cues = {outcome.video.name: outcome.captions for outcome in outcomes}
    page_path = extract(bundle, tmp_path)
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=args)
        page = browser.new_page()
        page.goto(page_path.as_uri())
        page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)")
        names = page.evaluate("Array.from(document.querySelectorAll('.card video')).map(v => v.src.split('/').pop())")
        page.click("#play")
        playing = page.evaluate(PLAYING_UNTIL, 1.3)
        page.click("#pause")
        stepped = []
        for _ in range(3):
            page.click("#forward")
            stepped.append(shown_once_still(page))
        # Each word in turn, the videos paused in its middle: the page marks that word.
        words = [word for cue in page_cues(cues[names[0]]) for word in cue.words]
        sought = []
        for word in words:
            page.evaluate(SEEK_ALL, (word.start + word.end) / 2)
            sought.append(shown_once_still(page))
        browser.close()
    assert playing[-1][0]["now"] > 1.3, f"the videos did not play: {playing[-1]}"
    for shown in playing:
        for name, caption in zip(names, shown, strict=True):
            assert abs(caption["at"] - caption["now"]) < 0.1, "the caption lags the picture"
            assert (caption["line"], caption["spoken"]) == said_at(cues[name], caption["at"]), caption
    assert any(caption["spoken"] for shown in playing for caption in shown), "no word was marked while playing"
    for shown in stepped:
        for name, caption in zip(names, shown, strict=True):
            assert caption["at"] == pytest.approx(caption["now"], abs=0.001)
            assert caption["line"] and (caption["line"], caption["spoken"]) == said_at(cues[name], caption["now"])
    for shown in sought:
        for name, caption in zip(names, shown, strict=True):
            assert caption["at"] == pytest.approx(caption["now"], abs=0.001)
            assert (caption["line"], caption["spoken"]) == said_at(cues[name], caption["now"]), caption
    assert [shown[0]["spoken"] for shown in sought] == [word.text for word in words]


def shown_once_still(page) -> list[dict]:
    """What the captions show once every video has finished seeking and the page has painted."""
    page.wait_for_function("Array.from(document.querySelectorAll('video')).every(v => !v.seeking)")
    page.evaluate(NEXT_PAINT)
    return page.evaluate(SHOWN)
