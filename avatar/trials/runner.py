"""Every usable photo speaks the same sentence with the same voice, one after another, best first."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from avatar.errors import UserFacingError
from avatar.session import RunFinished, RunStats
from avatar.speech.text import check_text
from avatar.studio import Studio
from avatar.trials.inspection import PhotoReport


@dataclass(frozen=True)
class TrialVideo:
    """One photo's finished video, copied out of its run's temporary folder."""

    report: PhotoReport
    video: Path
    stats: RunStats


@dataclass(frozen=True)
class TrialFailure:
    """A photo the checks passed but the run refused, with the run's own message."""

    report: PhotoReport
    message: str


def video_name(rank: int, report: PhotoReport) -> str:
    """'01-astronaut.mp4': the rank first so that files sort like the page."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(report.name).stem)[:40]
    return f"{rank:02d}-{stem}.mp4"


def speak_all(
    studio: Studio, reports: list[PhotoReport], text: str, voice_key: str | None, engine_key: str | None, folder: Path
) -> Iterator[TrialVideo | TrialFailure]:
    """Run each usable photo in the given order, yielding each video as soon as it is done.

    The text is checked once up front, so a bad text is one clear error rather than one per photo,
    and spoken once: every photo says the very same recording, so the videos compare frame for frame.
    """
    check_text(text, studio.settings.max_text_chars)
    folder.mkdir(parents=True, exist_ok=True)
    speaker = studio.recorded_speaker(voice_key)
    for rank, report in enumerate(reports, start=1):
        if not report.usable:
            continue
        try:
            run = studio.start_run(report.path, text, voice_key, engine_key, speaker=speaker)
            for event in run.events():
                if isinstance(event, RunFinished):
                    target = folder / video_name(rank, report)
                    shutil.copyfile(event.video, target)
                    yield TrialVideo(report, target, event.stats)
        except UserFacingError as error:
            yield TrialFailure(report, str(error))
