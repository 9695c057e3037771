"""Photo trials on a GPU: the usable photos speak at once (one batch), each outcome as soon as it is known."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from avatar.runs.service import Finished, KeepIn, RunRequest, Started, Stopped
from avatar.trials.runner import TrialVideo, speak_all


@dataclass(frozen=True)
class Report:
    path: Path
    name: str
    usable: bool = True


class FakeRun:
    """A run that holds until the test lets it finish (or it is cancelled)."""

    def __init__(self, speaker: object) -> None:
        self.speaker = speaker
        self.finish, self.cancelled = threading.Event(), threading.Event()

    def cancel(self) -> None:
        self.cancelled.set()
        self.finish.set()


@dataclass
class FakeRunService:
    """Serves runs of the fake kind, counting how many run at once; each keeps a video named as asked."""

    started_runs: dict[str, FakeRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    running: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        self.started = threading.Condition(self.lock)

    def serve(self, request: RunRequest, keep_in: KeepIn, progress=None):
        run = FakeRun(request.speech.speaker)
        with self.started:
            self.started_runs[Path(request.photo).stem] = run
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.started.notify_all()
        try:
            yield Started(run, None, "Working…")
            assert run.finish.wait(10)
            if run.cancelled.is_set():
                yield Stopped()
                return
            keep_in.folder.mkdir(parents=True, exist_ok=True)
            video = keep_in.folder / f"{keep_in.name}.mp4"
            video.write_bytes(Path(request.photo).name.encode())
            yield Finished(video, None, (), SimpleNamespace(), "Done.")
        finally:
            with self.lock:
                self.running -= 1

    def wait_for_runs(self, count: int) -> None:
        with self.started:
            assert self.started.wait_for(lambda: len(self.started_runs) >= count, timeout=10)


@dataclass
class FakeStudio:
    """The run service above, on an engine that uses a GPU (or not) and serves `sessions` at once."""

    folder: Path
    sessions: int
    uses_gpu: bool = True
    settings: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(max_text_chars=500))
    runs: FakeRunService = field(default_factory=FakeRunService)

    def __post_init__(self) -> None:
        self.engines = SimpleNamespace(
            preferred=lambda: "neural",
            get=lambda key: SimpleNamespace(uses_gpu=self.uses_gpu),
            sessions=lambda key: self.sessions,
        )

    def recorded_speaker(self, voice_key: str | None) -> object:
        return ("recording of", voice_key)


def reports(tmp_path: Path) -> list[Report]:
    names = ["best", "second", "unusable", "third", "fourth"]
    return [Report(tmp_path / f"{name}.png", f"{name}.png", usable=name != "unusable") for name in names]


def test_on_a_gpu_usable_photos_speak_together_up_to_the_engines_sessions_each_outcome_as_soon_as_done(tmp_path):
    studio = FakeStudio(tmp_path, sessions=3)
    outcomes = speak_all(studio, reports(tmp_path), "Hello there.", "offline:joe", None, tmp_path / "videos")
    first = []
    reader = threading.Thread(target=lambda: first.append(next(outcomes)))
    reader.start()
    studio.runs.wait_for_runs(3)
    assert set(studio.runs.started_runs) == {"best", "second", "third"}  # three at once; the fourth waits for a place
    studio.runs.started_runs["third"].finish.set()
    reader.join(10)
    assert [o.video.name for o in first] == ["04-third.mp4"]  # ranks count the unusable photo too
    studio.runs.wait_for_runs(4)
    for run in studio.runs.started_runs.values():
        run.finish.set()
    rest = list(outcomes)
    assert sorted(o.video.name for o in rest) == ["01-best.mp4", "02-second.mp4", "05-fourth.mp4"]
    assert all(isinstance(o, TrialVideo) for o in first + rest)
    assert studio.runs.most_at_once == 3
    assert {run.speaker for run in studio.runs.started_runs.values()} == {("recording of", "offline:joe")}


def test_stopping_a_trial_stops_the_photos_speaking_and_starts_no_more(tmp_path):
    studio = FakeStudio(tmp_path, sessions=2)
    outcomes = speak_all(studio, reports(tmp_path), "Hello there.", None, None, tmp_path / "videos")
    reader = threading.Thread(target=lambda: next(outcomes))
    reader.start()
    studio.runs.wait_for_runs(2)
    studio.runs.started_runs["best"].finish.set()
    reader.join(10)
    studio.runs.wait_for_runs(3)
    outcomes.close()
    started = studio.runs.started_runs
    assert started["second"].cancelled.is_set() and started["third"].cancelled.is_set()
    assert "fourth" not in studio.runs.started_runs and studio.runs.running == 0


def test_on_a_cpu_photos_speak_one_after_another_best_first(tmp_path):
    studio = FakeStudio(tmp_path, sessions=2, uses_gpu=False)
    outcomes = speak_all(studio, reports(tmp_path), "Hello there.", None, None, tmp_path / "videos")
    finisher = threading.Thread(target=lambda: [run.finish.set() for run in iter_runs(studio)], daemon=True)
    finisher.start()
    assert [o.video.name for o in outcomes] == ["01-best.mp4", "02-second.mp4", "04-third.mp4", "05-fourth.mp4"]
    assert studio.runs.most_at_once == 1


def iter_runs(studio: FakeStudio):
    for count in range(1, 5):
        studio.runs.wait_for_runs(count)
        yield list(studio.runs.started_runs.values())[count - 1]
