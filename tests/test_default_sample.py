"""The sample face a visitor starts with is the one the app's own photo checks rate best."""

from __future__ import annotations

from avatar.config import Settings
from avatar.judging.inspection import inspect_photo
from avatar.studio import Studio
from tests.helpers import ASTRONAUT, GRACE_HOPPER


def test_the_samples_come_best_first_as_the_photo_trials_rate_them(tmp_path):
    settings = Settings(work_dir=tmp_path)
    scores = {path: inspect_photo(path, settings).verdict.score for path in (ASTRONAUT, GRACE_HOPPER)}
    samples = Studio(settings).sample_faces()
    assert set(samples) == set(scores)
    assert [scores[path] for path in samples] == sorted(scores.values(), reverse=True)
    assert samples[0] == GRACE_HOPPER, "the best-rated bundled sample is Grace Hopper's portrait"
