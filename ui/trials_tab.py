"""The photo trials tab: several photos, one sentence, one voice; verdicts, a ranking, videos side by side."""

from __future__ import annotations

from collections.abc import Iterator

import gradio as gr

from avatar.errors import UserFacingError
from avatar.studio import Studio
from avatar.trials.bundle import thumbnail
from avatar.trials.inspection import PhotoReport
from avatar.trials.runner import TrialVideo
from avatar.trials.trial import Trial
from avatar.trials.uploads import MAX_PHOTOS
from avatar.trials.verdict import Level
from ui.talk_tab import TalkTab

DEFAULT_SENTENCE = "Hello there, nice to meet you."
THUMBNAIL_SIDE = 320
MARKS = {Level.OK: "✅", Level.WARN: "⚠️", Level.BLOCK: "⛔"}
HOW_TO = f"""Upload up to {MAX_PHOTOS} photos (or one zip of them). Each photo gets a verdict with its reasons and
a score; every usable photo then says the same sentence, and the videos play side by side, in sync, in one grid.
Click any photo to open it in the **Talk** tab."""


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


def build_trials_tab(page: gr.Blocks, studio: Studio, talk: TalkTab, tabs: gr.Tabs) -> None:
    """Lay out the tab inside `page` and wire it; a click on a photo opens it in `talk` by switching `tabs`."""
    voice_choices = [(option.label, option.key) for option in studio.voices.options()]
    engine_choices = [(option.label, option.key) for option in studio.engines.options()]
    trial_state = gr.State(None, delete_callback=lambda trial: trial.remove() if trial else None)

    gr.Markdown(HOW_TO)
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(
                label=f"Photos (up to {MAX_PHOTOS}) or one zip",
                file_count="multiple",
                file_types=["image", ".zip"],
                elem_id="trial-photos",
            )
            text = gr.Textbox(
                label="Sentence",
                value=DEFAULT_SENTENCE,
                lines=2,
                max_length=studio.settings.max_text_chars,
                elem_id="trial-text",
            )
            with gr.Row():
                voice = gr.Dropdown(voice_choices, value=studio.voices.default().key, label="Voice")
                engine = gr.Dropdown(engine_choices, value=studio.engines.preferred(), label="Engine")
            with gr.Row():
                check = gr.Button("Check only", elem_id="trial-check")
                start = gr.Button("Check and speak", variant="primary", elem_id="trial-start")
                stop = gr.Button("Stop", variant="stop", elem_id="trial-stop")
            status = gr.Markdown(elem_id="trial-status")
            recommendation = gr.Markdown(elem_id="trial-recommendation")
            open_best = gr.Button(
                "Open the recommended photo in the Talk tab", visible=False, elem_id="trial-open-best"
            )
        with gr.Column(scale=2):
            gallery = gr.Gallery(
                label="Best first: click a photo to open it in the Talk tab (the box is the engine's crop)",
                columns=4,
                height=420,
                allow_preview=False,
                elem_id="trial-gallery",
            )
            grid = gr.Video(label="Every video side by side, frame for frame", interactive=False, elem_id="trial-grid")
            with gr.Row():
                bundle = gr.File(label="Review bundle: videos, contact sheet, offline page", elem_id="trial-bundle")
                grid_file = gr.File(label="Grid MP4 for chat apps", elem_id="trial-grid-file")
    verdicts = gr.Markdown(elem_id="trial-verdicts")

    def ranked_view(trial: Trial, line: str) -> dict:
        return {
            trial_state: trial,
            status: line,
            recommendation: recommend(trial),
            gallery: gallery_items(trial),
            open_best: gr.update(visible=trial.best() is not None),
            verdicts: describe_trial(trial),
        }

    def trial_run(
        given: list[str] | None, words: str, voice_key: str, engine_key: str, old: Trial | None, speak: bool
    ) -> Iterator[dict]:
        if old is not None:
            old.remove()
        trial = Trial.create(studio.settings.work_dir / "trials")
        cleared = {
            trial_state: trial,
            recommendation: "",
            gallery: None,
            open_best: gr.update(visible=False),
            grid: None,
            bundle: None,
            grid_file: None,
            verdicts: "",
        }
        try:
            for checked, _ in enumerate(trial.check(given or [], studio), start=1):
                yield {**cleared, status: f"Checked {checked} photo(s)…"}
            notes = " ".join(trial.notes)
            usable = sum(r.usable for r in trial.reports)
            yield ranked_view(trial, f"{len(trial.reports)} photo(s) checked, {usable} usable. {notes}")
            if not speak or not usable:
                return
            spoken = 0
            for outcome in trial.speak(studio, words, voice_key, engine_key):
                spoken += isinstance(outcome, TrialVideo)
                update = {
                    status: f"{spoken} of {usable} usable photo(s) have spoken… {notes}",
                    verdicts: describe_trial(trial),
                }
                if isinstance(outcome, TrialVideo):
                    update[grid] = str(outcome.video)
                yield update
            yield {status: "Putting the videos side by side and packing the review bundle…"}
            grid_path, bundle_path = trial.export()
            grid_value = str(grid_path) if grid_path else None
            done = f"Done: {spoken} video(s) side by side; press play to compare them frame for frame. {notes}"
            yield {**ranked_view(trial, done), grid: grid_value, bundle: str(bundle_path), grid_file: grid_value}
        except UserFacingError as error:
            yield {status: f"⚠️ {error}"}
        except gr.Error as error:  # from ZeroGPU's `spaces`: no GPU free, quota used up
            yield {status: f"⚠️ {error.message}"}

    def check_only(given, words, voice_key, engine_key, old) -> Iterator[dict]:
        yield from trial_run(given, words, voice_key, engine_key, old, speak=False)

    def check_and_speak(given, words, voice_key, engine_key, old) -> Iterator[dict]:
        yield from trial_run(given, words, voice_key, engine_key, old, speak=True)

    def open_photo(trial: Trial | None, words: str, voice_key: str, selection: gr.SelectData) -> tuple:
        if trial is None or selection.index >= len(trial.reports):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return str(trial.reports[selection.index].path), words, voice_key, gr.Tabs(selected="talk")

    def open_recommended(trial: Trial | None, words: str, voice_key: str) -> tuple:
        best = trial.best() if trial is not None else None
        if best is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return str(best.path), words, voice_key, gr.Tabs(selected="talk")

    inputs = [files, text, voice, engine, trial_state]
    outputs = [trial_state, status, recommendation, gallery, open_best, grid, bundle, grid_file, verdicts]
    checking = check.click(check_only, inputs, outputs, concurrency_limit=2, concurrency_id="trials")
    running = start.click(check_and_speak, inputs, outputs, concurrency_limit=1, concurrency_id="trials-speak")
    stop.click(lambda: "Stopped.", None, status, cancels=[checking, running])
    gallery.select(open_photo, [trial_state, text, voice], [talk.photo, talk.text, talk.voice, tabs])
    open_best.click(open_recommended, [trial_state, text, voice], [talk.photo, talk.text, talk.voice, tabs])
