"""Every usable photo speaks the same sentence with the same voice: on a GPU all at once, as one batch.

A GPU engine draws the sessions of several photos in little more time than one (its scheduler batches
them), so on a GPU the photos run together, up to the engine's sessions at once; on a CPU, whose cores
one run already keeps busy, one after another, best first. Each photo's run is served by the run
service like any visitor's: it takes its place in the engine's line, so a trial never runs past the
engine's slots, and it is told its number while it waits.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from avatar.captions import Cue
from avatar.engines.base import EngineUnavailable
from avatar.errors import UserFacingError
from avatar.framing import Framing
from avatar.judging.inspection import PhotoReport
from avatar.runs.run import Run, RunStats
from avatar.runs.service import (
    Finished,
    KeepIn,
    RecordedAudio,
    RunRequest,
    SpeechRequest,
    Started,
    TypedText,
    Waiting,
)
from avatar.speech.text import check_text
from avatar.studio import Studio


@dataclass(frozen=True)
class TrialVideo:
    """One photo's finished video (its captions as a subtitle track), copied out of its run's temporary folder.

    `captions` are its lines on the video's timeline; `subtitles` is their WebVTT file beside the video.
    """

    report: PhotoReport
    video: Path
    stats: RunStats
    captions: tuple[Cue, ...] = ()
    subtitles: Path | None = None


@dataclass(frozen=True)
class TrialWaiting:
    """A photo whose run waits in the engine's line behind other visitors; `number` 1 is next."""

    report: PhotoReport
    number: int


@dataclass(frozen=True)
class TrialFailure:
    """A photo the checks passed but the run refused, with the run's own message."""

    report: PhotoReport
    message: str


def video_name(rank: int, report: PhotoReport) -> str:
    """'01-astronaut': the rank first so that files sort like the page."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(report.name).stem)[:40]
    return f"{rank:02d}-{stem}"


def runs_at_once(studio: Studio, engine_key: str | None) -> int:
    """How many photos speak at once: the engine's sessions on a GPU, else one.

    An engine that cannot load here gives way to the embedded animator in each run (which says why).
    """
    key = engine_key or studio.engines.preferred()
    try:
        engine = studio.engines.get(key)
    except EngineUnavailable:
        return 1
    return studio.engines.sessions(key) if engine.uses_gpu else 1


class TrialRuns:
    """The runs of one trial in flight, so that a trial that stops ends every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: list[Run] = []
        self._stopped = False

    def add(self, run: Run) -> bool:
        """Keep `run` to stop it with the others; False (and the run cancelled) once the trial has stopped."""
        with self._lock:
            if self._stopped:
                run.cancel()
                return False
            self._runs.append(run)
            return True

    @property
    def stopped(self) -> bool:
        with self._lock:
            return self._stopped

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for run in self._runs:
                run.cancel()


TrialOutcome = TrialVideo | TrialWaiting | TrialFailure


def speak_all(
    studio: Studio,
    reports: list[PhotoReport],
    text: str,
    voice_key: str | None,
    engine_key: str | None,
    folder: Path,
    recording: str | Path | None = None,
    framing: Framing = Framing.WHOLE,
) -> Iterator[TrialOutcome]:
    """Run each usable photo, best first (several at once on a GPU), yielding each video as soon as it is done.

    The speech (the text, or the visitor's `recording` with the text as its captions) is checked once
    up front, so a bad one is one clear error rather than one per photo, and every photo says the very
    same audio (the voice speaks once), so the videos compare frame for frame. A photo waiting in line
    is reported with its number. However the trial ends (the visitor stops it, or a run fails), no
    photo goes on speaking.
    """
    speech: SpeechRequest
    if recording:
        speech = RecordedAudio(recording, text)
        studio.runs.check_speech(speech)
    else:
        check_text(text, studio.settings.max_text_chars)
        speech = TypedText(text, voice_key, studio.recorded_speaker(voice_key))
    folder.mkdir(parents=True, exist_ok=True)
    runs = TrialRuns()
    usable = [(rank, report) for rank, report in enumerate(reports, start=1) if report.usable]
    outcomes: queue.Queue[TrialOutcome | None] = queue.Queue()

    def speak(rank: int, report: PhotoReport) -> None:
        request = RunRequest(report.path, speech, engine_key, framing)
        try:
            for outcome in speak_one(studio, rank, report, request, folder, runs):
                outcomes.put(outcome)
        finally:
            outcomes.put(None)

    with ThreadPoolExecutor(max_workers=runs_at_once(studio, engine_key), thread_name_prefix="trial-run") as pool:
        try:
            speaking = [pool.submit(speak, rank, report) for rank, report in usable]
            for _ in range(len(speaking)):
                while (outcome := outcomes.get()) is not None:
                    yield outcome
            for done in speaking:
                done.result()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # photos yet to start never do
            runs.stop()


def speak_one(
    studio: Studio, rank: int, report: PhotoReport, request: RunRequest, folder: Path, runs: TrialRuns
) -> Iterator[TrialOutcome]:
    """One photo's `request`, waiting its turn in line, its video and captions file kept in `folder`.

    Ends with nothing if the trial stopped before the end.
    """
    try:
        for event in studio.runs.serve(request, keep_in=KeepIn(folder, video_name(rank, report))):
            if isinstance(event, Waiting):
                if runs.stopped:
                    return  # leaving the line gives the place to the next visitor
                yield TrialWaiting(report, event.number)
            elif isinstance(event, Started) and not runs.add(event.run):
                return
            elif isinstance(event, Finished):
                yield TrialVideo(report, event.video, event.stats, event.cues, event.subtitles)
    except UserFacingError as error:
        yield TrialFailure(report, str(error))
