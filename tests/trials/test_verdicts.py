"""Each photo gets a plain verdict with the reasons behind it, and a score that puts the best first."""

from __future__ import annotations

import numpy as np
import pytest

from avatar.config import Settings
from avatar.framing import Framing
from avatar.judging.checks import colourfulness, sharpness
from avatar.judging.inspection import inspect_photo, rank
from avatar.judging.verdict import Level, Thresholds
from tests.helpers import ASTRONAUT, GRACE_HOPPER, photo
from tests.test_framing import tight_head_shot
from tests.trials import photos

SETTINGS = Settings()


def reasons(report) -> str:
    return " ".join(f.detail for f in report.verdict.findings)


def problems(report) -> str:
    return " ".join(f.detail for f in report.verdict.problems)


def inspect_array(array: np.ndarray, tmp_path, name: str = "derived.png"):
    return inspect_photo(photos.save(array, tmp_path, name), SETTINGS)


@pytest.mark.parametrize("path", [ASTRONAUT, GRACE_HOPPER], ids=["astronaut", "grace_hopper"])
def test_a_clear_frontal_portrait_is_good_and_every_check_is_explained(path):
    report = inspect_photo(path, SETTINGS)
    assert report.verdict.headline == "Good"
    assert report.verdict.usable and not report.verdict.problems
    text = reasons(report)
    for expected in (
        "One face found",
        "px wide",
        "yaw",
        "pitch",
        "roll",
        "Eyes open",
        "Mouth closed",
        "brightness",
        "contrast",
        "Sharp",
        "covers the face",
    ):
        assert expected in text
    assert report.crop.shape == (SETTINGS.crop_size, SETTINGS.crop_size, 3)


def test_the_small_grey_turned_away_cameraman_is_refused_for_the_turn_and_warned_of_the_rest():
    report = inspect_photo(photos.CAMERA, SETTINGS, framing=Framing.CLOSE_UP)
    assert report.verdict.headline == "Not usable: head turned away"
    flagged = problems(report)
    assert "turned 49° to the side" in flagged or "turned 48° to the side" in flagged
    assert "softer" in flagged and "63 px wide" in flagged
    assert "no colour" in flagged
    assert "softer" not in problems(inspect_photo(photos.CAMERA, SETTINGS))


@pytest.mark.parametrize("path", [photos.CHELSEA, photos.COFFEE], ids=["cat", "coffee"])
def test_a_picture_without_a_human_face_is_not_usable_and_says_so(path):
    report = inspect_photo(path, SETTINGS)
    assert report.verdict.headline == "Not usable: no face found"
    assert "No face was found" in problems(report)
    assert report.crop is None and report.verdict.score == 0


def test_two_faces_side_by_side_are_not_usable(tmp_path):
    report = inspect_array(photos.two_faces(), tmp_path)
    assert report.verdict.headline == "Not usable: two faces"
    assert "2 faces" in problems(report)


def test_a_very_dark_copy_is_not_usable_and_a_dim_one_is_usable_with_a_warning(tmp_path):
    very_dark = inspect_array(photos.darkened(0.12), tmp_path, "very-dark.png")
    assert very_dark.verdict.headline.startswith("Not usable: face is far too dark")
    dim = inspect_array(photos.darkened(0.3), tmp_path, "dim.png")
    assert dim.verdict.level == Level.WARN and "face is dark" in dim.verdict.headline


def test_a_blurred_copy_is_usable_but_warned_and_ranks_below_the_sharp_original(tmp_path):
    blurred = inspect_array(photos.blurred(), tmp_path, "blurred.png")
    original = inspect_photo(ASTRONAUT, SETTINGS)
    assert blurred.verdict.headline == "Usable: face is blurred, expect a blurry video"
    assert rank([blurred, original])[0] is original


def test_a_tiny_copy_is_not_usable_and_says_how_many_pixels_the_face_has(tmp_path):
    report = inspect_array(photos.tiny(), tmp_path)
    assert report.verdict.headline == "Not usable: face is too small"
    assert "only about 22 pixels wide; at least 64" in problems(report)
    assert "only 128x128 pixels" in problems(report)


def test_a_photo_on_its_side_is_not_usable_and_asks_to_rotate_it(tmp_path):
    report = inspect_array(photos.on_its_side(), tmp_path)
    assert report.verdict.headline == "Not usable: photo is on its side"
    assert "rotate the photo upright" in problems(report)


def test_a_slightly_tilted_head_is_usable_because_the_crop_straightens_it(tmp_path):
    report = inspect_array(photos.tilted(25), tmp_path)
    assert report.verdict.headline == "Usable: head tilted sideways"
    assert "crop straightens it" in problems(report)


def test_a_covered_cheek_is_flagged_as_possible_occlusion(tmp_path):
    report = inspect_array(photos.cheek_covered(), tmp_path)
    assert report.verdict.level == Level.WARN
    assert "left cheek looks unlike the rest of the face" in problems(report)


def test_glare_over_the_eyes_is_flagged(tmp_path):
    report = inspect_array(photos.glasses_glare(), tmp_path)
    assert "glare" in report.verdict.headline
    assert "Bright reflections cover the eyes" in problems(report)


def test_a_file_that_is_not_a_picture_is_not_usable_with_the_reader_s_message(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    report = inspect_photo(path, SETTINGS)
    assert report.verdict.headline == "Not usable: cannot read the picture"
    assert "not a picture this app can read" in problems(report)


def test_the_ranking_puts_the_larger_sharper_face_first_and_unusable_photos_last(tmp_path):
    reports = [inspect_photo(path, SETTINGS) for path in (photos.COFFEE, ASTRONAUT, GRACE_HOPPER)]
    reports.append(inspect_array(photos.blurred(), tmp_path, "blurred.png"))
    assert [r.name for r in rank(reports)] == ["grace_hopper.jpg", "astronaut.png", "blurred.png", "coffee.png"]


def test_sharpness_drops_with_blur_but_not_with_darkness():
    grey = photo(ASTRONAUT)[150:260, 190:300].mean(axis=2)
    assert sharpness(grey * 0.2) == pytest.approx(sharpness(grey), rel=0.05)
    assert sharpness(photos.blurred()[150:260, 190:300].mean(axis=2)) < 0.3 * sharpness(grey)


def test_colourfulness_is_zero_for_grey_and_high_for_a_colour_portrait():
    assert colourfulness(photo(photos.CAMERA)) == 0
    assert colourfulness(photo(ASTRONAUT)) > 30


@pytest.mark.parametrize("path", [ASTRONAUT, GRACE_HOPPER], ids=["astronaut", "grace_hopper"])
def test_a_tight_head_shot_is_good_as_a_whole_photo_and_marked_down_by_what_its_close_up_fills_in(path, tmp_path):
    saved = photos.save(tight_head_shot(path), tmp_path, "tight.png")
    whole = inspect_photo(saved, SETTINGS)
    close_up = inspect_photo(saved, SETTINGS, framing=Framing.CLOSE_UP)
    assert whole.verdict.headline == "Good"
    assert "the whole photo shows none of it" in reasons(whole)
    filled = close_up.measures.face.close_up_filled
    assert filled > Thresholds().filled_warn
    assert close_up.verdict.headline.startswith("Usable: close-up reaches past the photo")
    finding = next(f for f in close_up.verdict.findings if f.short == "close-up reaches past the photo")
    assert f"{filled:.0%} of the close-up is filled in" in finding.detail
    assert finding.penalty == pytest.approx(Thresholds().filled_penalty * filled)
    assert whole.verdict.score - close_up.verdict.score >= finding.penalty - 0.1
    assert close_up.crop.shape == whole.crop.shape == (SETTINGS.crop_size, SETTINGS.crop_size, 3)


def test_a_photo_with_room_around_the_face_is_judged_alike_in_either_framing():
    whole = inspect_photo(GRACE_HOPPER, SETTINGS)
    close_up = inspect_photo(GRACE_HOPPER, SETTINGS, framing=Framing.CLOSE_UP)
    assert (whole.verdict.headline, whole.verdict.score) == (close_up.verdict.headline, close_up.verdict.score)
    assert close_up.measures.face.close_up_filled == 0
