"""A run and Photo trials judge a photo by one set of face rules: what the trials promise, a run keeps.

The photos are copies of the sample faces with the face 40 to 140 px wide, each in a
480 px square frame (as if the person stood nearer or farther): they cross the smallest
usable face, and the small ones are found only by the detector's second look. A few hard
cases (no face, two faces, a photo on its side) meet the other rules, and the hard crops of
tests/test_framing.py (a tight head shot, one cut at the forehead, a face at a 16:9 photo's edge)
meet the close-up's filled-in edges. Every photo is judged and run in both framings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pytest

from avatar.config import SAMPLE_FACES_DIR, Settings
from avatar.errors import UserFacingError
from avatar.faces import read_face
from avatar.framing import Framing
from avatar.judging.inspection import PhotoReport, inspect_photo
from avatar.judging.verdict import Level
from tests.helpers import COFFEE, photo
from tests.test_framing import CASES, hard_photo
from tests.trials import photos

SETTINGS = Settings()
SAMPLES = sorted(path for path in SAMPLE_FACES_DIR.iterdir() if path.suffix in (".png", ".jpg"))
FACE_WIDTHS = (40, 44, 48, 52, 56, 60, 72, 88, 140)
PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    **{
        f"{sample.stem}-{width}px": partial(photos.framed_copy, sample, width)
        for sample in SAMPLES
        for width in FACE_WIDTHS
    },
    "no-face": partial(photo, COFFEE),
    "two-faces": photos.two_faces,
    "on-its-side": photos.on_its_side,
    **{case: partial(hard_photo, case) for case in CASES},
}
JUDGED = [(name, framing) for name in PHOTOS for framing in Framing]


@dataclass(frozen=True)
class Outcome:
    """What the trials say of one photo, and what a run does with it (its refusal, or its notes)."""

    report: PhotoReport
    run_refusal: str | None
    run_notes: tuple[str, ...]

    def trial_refusals(self) -> list[str]:
        return [finding.detail for finding in self.report.verdict.findings if finding.level == Level.BLOCK]

    def trial_warns_of_a_softer_video(self) -> bool:
        return any("softer video" in finding.short for finding in self.report.verdict.findings)

    def trial_counts_filled_edges(self) -> bool:
        return any("reaches past the photo" in finding.short for finding in self.report.verdict.findings)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, Framing], Outcome]:
    folder = tmp_path_factory.mktemp("photos")
    found = {}
    for name, make in PHOTOS.items():
        picture = make()
        path = photos.save(picture, folder, f"{name}.png")
        for framing in Framing:
            report = inspect_photo(path, SETTINGS, framing=framing)
            try:
                face = read_face(picture, SETTINGS.crop_size, SETTINGS.min_face_pixels, framing=framing)
            except UserFacingError as error:
                found[name, framing] = Outcome(report, str(error), ())
            else:
                found[name, framing] = Outcome(report, None, face.notes)
    return found


def test_the_photos_range_from_faces_a_run_refuses_to_faces_it_animates(outcomes):
    assert any(outcome.run_refusal for outcome in outcomes.values())
    assert any(outcome.run_refusal is None for outcome in outcomes.values())


@pytest.mark.parametrize(("name", "framing"), JUDGED)
def test_a_photo_the_trials_call_usable_runs(outcomes, name, framing):
    outcome = outcomes[name, framing]
    if outcome.report.usable:
        assert outcome.run_refusal is None, f"usable in the trials ({outcome.report.verdict.headline}) but a run says"


@pytest.mark.parametrize(("name", "framing"), JUDGED)
def test_a_photo_a_run_refuses_is_not_usable_in_the_trials_for_the_same_reason(outcomes, name, framing):
    outcome = outcomes[name, framing]
    if outcome.run_refusal is not None:
        assert not outcome.report.usable
        assert outcome.run_refusal in outcome.trial_refusals()


@pytest.mark.parametrize(("name", "framing"), JUDGED)
def test_the_trials_warn_of_a_softer_video_exactly_when_a_run_notes_it(outcomes, name, framing):
    outcome = outcomes[name, framing]
    if outcome.run_refusal is None:
        run_notes_it = any("softer" in note for note in outcome.run_notes)
        assert outcome.trial_warns_of_a_softer_video() == run_notes_it


@pytest.mark.parametrize(("name", "framing"), JUDGED)
def test_the_trials_count_filled_in_edges_exactly_when_a_run_notes_them(outcomes, name, framing):
    outcome = outcomes[name, framing]
    if outcome.run_refusal is None:
        run_notes_it = any("filled in" in note for note in outcome.run_notes)
        assert outcome.trial_counts_filled_edges() == run_notes_it


def test_the_hard_crops_show_filled_in_edges_in_a_close_up_and_none_in_the_whole_photo(outcomes):
    for case in CASES:
        assert outcomes[case, Framing.CLOSE_UP].trial_counts_filled_edges()
        assert not outcomes[case, Framing.WHOLE].trial_counts_filled_edges()
