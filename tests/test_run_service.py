"""One run service for every kind of run: Talk's runs and Photo trials' runs share the engine's line and slots."""

from __future__ import annotations

import threading
from contextlib import closing
from dataclasses import replace

import pytest

from avatar.config import Settings
from avatar.judging.inspection import inspect_photo
from avatar.runs.service import Finished, RunRequest, Started, Stopped, TypedText, Waiting
from avatar.studio import Studio
from avatar.trials.runner import TrialVideo, TrialWaiting, speak_all
from tests.helpers import ASTRONAUT, GRACE_HOPPER

LONGER = "This sentence keeps the face talking for a little while. And then it says a little more."


@pytest.fixture
def one_slot_studio(tmp_path, monkeypatch) -> Studio:
    """The app with the embedded animator allowed one run at a time."""
    monkeypatch.setenv("AVATAR_RUNS_AT_ONCE", "1")
    return Studio(replace(Settings(), voice="offline", work_dir=tmp_path / "work"))


class RunningCount:
    """Wraps the service's `serve` to count the runs that hold their engine at once (from Started to their end)."""

    def __init__(self, studio: Studio) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0
        serve = studio.runs.serve

        def counted(*args, **kwargs):
            running = False
            try:
                for event in serve(*args, **kwargs):
                    if isinstance(event, Started):
                        running = True
                        self._add(1)
                    elif isinstance(event, (Finished, Stopped)) and running:
                        running = False
                        self._add(-1)
                    yield event
            finally:
                if running:
                    self._add(-1)

        studio.runs.serve = counted

    def _add(self, step: int) -> None:
        with self.lock:
            self.now += step
            self.most = max(self.most, self.now)


def test_a_trial_on_an_engine_with_one_slot_waits_for_a_visitors_run_already_in_line_and_is_told_its_number(
    one_slot_studio, tmp_path
):
    studio = one_slot_studio
    visitor = studio.runs.serve(RunRequest(str(ASTRONAUT), TypedText("Hello there.", "offline:joe"), "default"))
    report = inspect_photo(GRACE_HOPPER, studio.settings)
    trial = speak_all(studio, [report], "Nice to meet you.", "offline:joe", "default", tmp_path / "videos")
    with closing(visitor), closing(trial):
        assert isinstance(next(visitor), Started)  # the visitor holds the one slot
        waiting = next(trial)
        assert isinstance(waiting, TrialWaiting) and (waiting.report.path, waiting.number) == (GRACE_HOPPER, 1)
        assert any(isinstance(event, Finished) for event in list(visitor))  # the visitor's run ends; the slot frees
        outcomes = list(trial)
    assert [type(outcome) for outcome in outcomes if not isinstance(outcome, TrialWaiting)] == [TrialVideo]
    assert outcomes[-1].video.name == "01-grace_hopper.mp4" and outcomes[-1].video.exists()


def test_a_trial_and_a_run_started_together_never_run_past_the_engines_slots(one_slot_studio, tmp_path):
    studio = one_slot_studio
    count = RunningCount(studio)
    reports = [inspect_photo(path, studio.settings) for path in (ASTRONAUT, GRACE_HOPPER)]
    finished: list[object] = []

    def visit() -> None:
        request = RunRequest(str(ASTRONAUT), TypedText(LONGER, "offline:joe"), "default")
        finished.extend(event for event in studio.runs.serve(request) if isinstance(event, Finished))

    visitor = threading.Thread(target=visit)
    visitor.start()
    outcomes = list(speak_all(studio, reports, "Nice to meet you.", "offline:joe", "default", tmp_path / "videos"))
    visitor.join(120)
    assert len(finished) == 1 and sum(isinstance(outcome, TrialVideo) for outcome in outcomes) == 2
    assert count.most == 1


def test_a_visitor_waiting_in_line_is_told_their_number_in_the_services_own_words(one_slot_studio):
    studio = one_slot_studio
    first = studio.runs.serve(RunRequest(str(ASTRONAUT), TypedText("Hello there.", "offline:joe"), "default"))
    second = studio.runs.serve(RunRequest(str(GRACE_HOPPER), TypedText("Hello.", "offline:joe"), "default"))
    with closing(first), closing(second):
        assert isinstance(next(first), Started)
        assert next(second) == Waiting(1, "Busy: you are number 1 in line; your video starts by itself…")
