"""What the Photo trials tab does, as functions of plain values: paths, strings, the Trial and the Studio.

No Gradio component appears here; `ui/trials_tab.py` lays the components out and turns these
views into their updates.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import chain
from pathlib import Path

from avatar.framing import Framing
from avatar.judging.inspection import PhotoReport
from avatar.judging.verdict import Level
from avatar.runs.status import waiting
from avatar.sharing import Share
from avatar.studio import Studio
from avatar.trials.bundle import PAGE_NAME, thumbnail
from avatar.trials.runner import TrialVideo, TrialWaiting
from avatar.trials.trial import Trial
from ui.refusals import VISITOR_PROBLEMS, until_refused
from ui.views import KEEP, Keep, Shown

THUMBNAIL_SIDE = 320
MARKS = {Level.OK: "✅", Level.WARN: "⚠️", Level.BLOCK: "⛔"}
STOPPED = "Stopped. Your photos and sentence are still here."

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialView:
    """The trials tab after one step: the trial to keep and what each part of the tab shows."""

    trial: Trial | None | Keep = KEEP
    status: str | Keep = KEEP
    recommendation: str | Keep = KEEP
    gallery: list[tuple] | None | Keep = KEEP
    open_best: Shown | Keep = KEEP
    grid: str | None | Keep = KEEP
    bundle: str | None | Keep = KEEP
    grid_file: str | None | Keep = KEEP
    review_link: str | None | Keep = KEEP  # the review page's own link, to pass on instead of the zip
    verdicts: str | Keep = KEEP


@dataclass(frozen=True)
class OpenInTalk:
    """A photo to open in the Talk tab, with the sentence and voice the trial used."""

    photo: str
    text: str
    voice: str | None


def describe_report(rank: int, report: PhotoReport, note: str = "") -> str:
    """One photo's verdict and every reason behind it, as Markdown."""
    verdict = report.verdict
    lines = [f"#### #{rank} {report.name}: {verdict.headline} (score {verdict.score:.0f})"]
    lines += [f"- {MARKS[f.level]} {f.detail}" for f in verdict.findings]
    if note:
        lines.append(f"- ⛔ The run failed: {note}")
    return "\n".join(lines)


def describe_trial(trial: Trial) -> str:
    return "\n\n".join(
        describe_report(rank, r, trial.failures.get(r.path, "")) for rank, r in enumerate(trial.reports, start=1)
    )


def recommend(trial: Trial) -> str:
    """The recommendation with its reasons, or why there is none."""
    best = trial.best()
    if best is None:
        return (
            "### No photo is usable\n"
            "See the reasons under each photo; a frontal, well-lit photo of one face works best."
        )
    good = [f.detail for f in best.verdict.findings if f.level == Level.OK][:4]
    caveats = [f.detail for f in best.verdict.problems]
    text = f"### Recommended: {best.name} ({best.verdict.headline}, score {best.verdict.score:.0f})\n"
    text += "\n".join(f"- {line}" for line in good + caveats)
    return text + "\n\nClick its picture (or any other) below to open it in the Talk tab."


def gallery_items(trial: Trial) -> list[tuple]:
    return [
        (thumbnail(r, THUMBNAIL_SIDE), f"#{rank} {r.name}: {r.verdict.headline} ({r.verdict.score:.0f})")
        for rank, r in enumerate(trial.reports, start=1)
    ]


def ranked(trial: Trial, status: str) -> TrialView:
    """The checked and ranked photos, with the recommendation."""
    return TrialView(
        trial=trial,
        status=status,
        recommendation=recommend(trial),
        gallery=gallery_items(trial),
        open_best=Shown(trial.best() is not None),
        verdicts=describe_trial(trial),
    )


def run_trial(
    studio: Studio,
    given: list[str] | None,
    words: str | None,
    voice_key: str | None,
    engine_key: str | None,
    old: Trial | None,
    speak: bool,
    page_url: Callable[[Share], str] = lambda share: share.path,
    recording: str | None = None,
    framing: str | None = Framing.WHOLE,
) -> Iterator[TrialView]:
    """Check and rank the photos and, if `speak`, let every usable one say the sentence, then export.

    The exported review page is also kept under a link (`page_url` makes it absolute for the page).
    The previous trial is removed only once the new photos are in hand, so a refused upload leaves
    it as it was; a problem the visitor can fix ends the trial with its sentence.
    """
    framed = Framing(framing or Framing.WHOLE)
    steps = _steps(studio, old, given, words, voice_key, engine_key, speak, page_url, recording, framed)
    return until_refused(steps, _refused)


def stop() -> TrialView:
    return TrialView(status=STOPPED)


def open_photo(trial: Trial | None, index: int, words: str, voice_key: str | None) -> OpenInTalk | None:
    """The trial's photo at `index` (as the gallery shows them), to open in the Talk tab."""
    if trial is None or not 0 <= index < len(trial.reports):
        return None
    return OpenInTalk(str(trial.reports[index].path), words, voice_key)


def open_recommended(trial: Trial | None, words: str, voice_key: str | None) -> OpenInTalk | None:
    best = trial.best() if trial is not None else None
    return OpenInTalk(str(best.path), words, voice_key) if best is not None else None


def _refused(message: str) -> TrialView:
    return TrialView(status=message)


def _review_link(studio: Studio, bundle: Path, page_url: Callable[[Share], str]) -> str | None:
    """The bundle's page kept under a link; without one (a full disk), the zip is still there to download."""
    try:
        return page_url(studio.shares.add_review(bundle, PAGE_NAME))
    except (OSError, zipfile.BadZipFile):
        log.exception("the review bundle could not be kept for sharing")
        return None


def _steps(
    studio: Studio, old: Trial | None, given: list[str] | None, words: str | None, voice_key: str | None,
    engine_key: str | None, speak: bool, page_url: Callable[[Share], str], recording: str | None, framing: Framing,
) -> Iterator[TrialView]:
    trial = Trial.create(studio.settings.work_dir / "trials", framing)
    checking = trial.check(given or [], studio)
    try:
        first = next(checking, None)  # the photos are gathered here: none, or a broken zip, is refused
    except VISITOR_PROBLEMS:
        trial.remove()
        raise
    if old is not None:
        old.remove()
    cleared = TrialView(
        trial=trial, recommendation="", gallery=None, open_best=Shown(False), grid=None, bundle=None,
        grid_file=None, review_link=None, verdicts="",
    )
    reports = chain([first] if first is not None else [], checking)
    for checked, _ in enumerate(reports, start=1):
        yield replace(cleared, status=f"Checked {checked} photo(s)…")
    notes = " ".join(trial.notes)
    usable = sum(r.usable for r in trial.reports)
    yield ranked(trial, f"{len(trial.reports)} photo(s) checked, {usable} usable. {notes}")
    if not speak or not usable:
        return
    spoken = 0
    for outcome in trial.speak(studio, words or "", voice_key, engine_key, recording):
        if isinstance(outcome, TrialWaiting):
            yield TrialView(status=f"{outcome.report.name}: {waiting(outcome.number)} {notes}")
            continue
        spoken += isinstance(outcome, TrialVideo)
        yield TrialView(
            status=f"{spoken} of {usable} usable photo(s) have spoken… {notes}",
            verdicts=describe_trial(trial),
            grid=str(outcome.video) if isinstance(outcome, TrialVideo) else KEEP,
        )
    yield TrialView(status="Putting the videos side by side and packing the review bundle…")
    grid_path, bundle_path = trial.export()
    grid = str(grid_path) if grid_path else None
    done = f"Done: {spoken} video(s) side by side; press play to compare them frame for frame. {notes}"
    link = _review_link(studio, bundle_path, page_url)
    yield replace(ranked(trial, done), grid=grid, bundle=str(bundle_path), grid_file=grid, review_link=link)
