"""One trial from start to finish: gather the photos, judge and rank them, let the usable ones speak, export.

The tab drives it step by step (each step is a generator, so the page shows progress);
tests and scripts can drive it the same way without a page.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from avatar.captions import Cue
from avatar.framing import Framing
from avatar.judging.inspection import PhotoReport, inspect_photo, rank
from avatar.studio import Studio
from avatar.trials.bundle import GRID_NAME, Entry, grid_video, write_bundle
from avatar.trials.runner import TrialFailure, TrialOutcome, TrialVideo, speak_all
from avatar.trials.uploads import gather_photos


@dataclass
class Trial:
    """The photos of one trial, their reports (best first once ranked), videos and exports, in one folder."""

    folder: Path
    framing: Framing = Framing.WHOLE
    sentence: str = ""
    notes: list[str] = field(default_factory=list)
    reports: list[PhotoReport] = field(default_factory=list)
    videos: dict[Path, Path] = field(default_factory=dict)
    captions: dict[Path, tuple[Cue, ...]] = field(default_factory=dict)
    failures: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def create(cls, work_dir: Path, framing: Framing = Framing.WHOLE) -> Trial:
        """A new trial judged and spoken in `framing`: a photo's verdict counts what that framing shows."""
        work_dir.mkdir(parents=True, exist_ok=True)
        return cls(Path(tempfile.mkdtemp(prefix="trial-", dir=work_dir)), framing)

    def check(self, given: list[str | Path], studio: Studio) -> Iterator[PhotoReport]:
        """Gather and judge the photos one by one (each report as it is made), then rank them."""
        paths, self.notes = gather_photos(given, self.folder / "photos", studio.settings.max_image_bytes)
        self.reports, self.videos, self.captions, self.failures = [], {}, {}, {}
        for path in paths:
            report = inspect_photo(path, studio.settings, framing=self.framing)
            self.reports.append(report)
            yield report
        self.reports = rank(self.reports)

    def speak(
        self,
        studio: Studio,
        text: str,
        voice_key: str | None,
        engine_key: str | None,
        recording: str | Path | None = None,
    ) -> Iterator[TrialOutcome]:
        """Every usable photo says `text` (or the `recording`, with `text` as its captions), best first; each
        outcome (and each wait in line) as soon as it is known."""
        self.sentence = text
        videos = self.folder / "videos"
        outcomes = speak_all(studio, self.reports, text, voice_key, engine_key, videos, recording, self.framing)
        for outcome in outcomes:
            if isinstance(outcome, TrialVideo):
                self.videos[outcome.report.path] = outcome.video
                self.captions[outcome.report.path] = outcome.captions
            elif isinstance(outcome, TrialFailure):
                self.failures[outcome.report.path] = outcome.message
            yield outcome

    def entries(self) -> list[Entry]:
        return [
            Entry(rank, r, self.videos.get(r.path), self.captions.get(r.path, ()))
            for rank, r in enumerate(self.reports, start=1)
        ]

    def best(self) -> PhotoReport | None:
        """The recommended photo: the best-ranked one that spoke, else the best-ranked usable one."""
        spoken = [r for r in self.reports if r.path in self.videos]
        usable = [r for r in self.reports if r.usable and r.path not in self.failures]
        return (spoken or usable or [None])[0]

    def export(self, burn_captions: bool = True) -> tuple[Path | None, Path]:
        """The grid MP4 (None when no photo spoke) and the review bundle zip.

        The grid is for chat apps, which show no subtitle track, so its captions are burned in
        unless `burn_captions` is False; every photo says the same recording, so the best one's serve.
        """
        entries = self.entries()
        captions = next((entry.captions for entry in entries if entry.video is not None), ()) if burn_captions else ()
        grid = grid_video(entries, self.folder / GRID_NAME, captions) if self.videos else None
        bundle = write_bundle(entries, self.sentence, self.folder / "photo-trials.zip", grid)
        return grid, bundle

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
