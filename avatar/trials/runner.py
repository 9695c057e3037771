"""Every usable photo speaks the same sentence with the same voice: on a GPU all at once, as one batch.

A GPU engine draws the sessions of several photos in little more time than one (its scheduler batches
them), so on a GPU the photos run together, up to the engine's sessions at once; on a CPU, whose cores
one run already keeps busy, one after another, best first.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from avatar.captions import Cue
from avatar.engines.base import EngineUnavailable
from avatar.errors import UserFacingError
from avatar.session import Run, RunFinished, RunStats
from avatar.speech.text import check_text
from avatar.speech.voices import Speaker
from avatar.studio import Studio
from avatar.judging.inspection import PhotoReport


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
class TrialFailure:
    """A photo the checks passed but the run refused, with the run's own message."""

    report: PhotoReport
    message: str


def video_name(rank: int, report: PhotoReport) -> str:
    """'01-astronaut.mp4': the rank first so that files sort like the page."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(report.name).stem)[:40]
    return f"{rank:02d}-{stem}.mp4"


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

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for run in self._runs:
                run.cancel()


def speak_all(
    studio: Studio, reports: list[PhotoReport], text: str, voice_key: str | None, engine_key: str | None, folder: Path
) -> Iterator[TrialVideo | TrialFailure]:
    """Run each usable photo, best first (several at once on a GPU), yielding each video as soon as it is done.

    The text is checked once up front, so a bad text is one clear error rather than one per photo,
    and spoken once: every photo says the very same recording, so the videos compare frame for frame.
    However the trial ends (the visitor stops it, or a run fails), no photo goes on speaking.
    """
    check_text(text, studio.settings.max_text_chars)
    folder.mkdir(parents=True, exist_ok=True)
    speaker = studio.recorded_speaker(voice_key)
    runs = TrialRuns()
    usable = [(rank, report) for rank, report in enumerate(reports, start=1) if report.usable]
    with ThreadPoolExecutor(max_workers=runs_at_once(studio, engine_key), thread_name_prefix="trial-run") as pool:
        try:
            speaking = [
                pool.submit(speak_one, studio, rank, report, text, voice_key, engine_key, speaker, folder, runs)
                for rank, report in usable
            ]
            for done in as_completed(speaking):
                outcome = done.result()
                if outcome is not None:
                    yield outcome
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # photos yet to start never do
            runs.stop()


def speak_one(
    studio: Studio,
    rank: int,
    report: PhotoReport,
    text: str,
    voice_key: str | None,
    engine_key: str | None,
    speaker: Speaker,
    folder: Path,
    runs: TrialRuns,
) -> TrialVideo | TrialFailure | None:
    """One photo's run, its video and captions file copied into `folder`; None if the trial stopped before the end."""
    try:
        run = studio.start_run(report.path, text, voice_key, engine_key, speaker=speaker)
        if not runs.add(run):
            return None
        for event in run.events():
            if isinstance(event, RunFinished):
                target = folder / video_name(rank, report)
                shutil.copyfile(event.video, target)
                subtitles = None
                if event.subtitles is not None:
                    subtitles = Path(shutil.copyfile(event.subtitles, target.with_suffix(".vtt")))
                return TrialVideo(report, target, event.stats, event.cues, subtitles)
    except UserFacingError as error:
        return TrialFailure(report, str(error))
    return None
