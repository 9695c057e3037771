"""The photo trials tab: several photos, one sentence, one voice; verdicts, a ranking, videos side by side.

Layout and wiring only: what each event does is in `ui/trials_handlers.py`, and every event's
result goes to the page through `ui.views.updates`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import gradio as gr

from avatar.framing import Framing, framing_choices
from avatar.studio import Studio
from avatar.trials.trial import Trial
from avatar.trials.uploads import MAX_PHOTOS
from ui import trials_handlers
from ui.share_page import page_url
from ui.talk_tab import TalkTab
from ui.trials_handlers import OpenInTalk, TrialView
from ui.views import outputs, updates

DEFAULT_SENTENCE = "Hello there, nice to meet you."
HOW_TO = f"""Upload up to {MAX_PHOTOS} photos (or one zip of them). Each photo gets a verdict with its reasons and
a score; every usable photo then says the same sentence, and the videos play side by side, in sync, in one grid.
Click any photo to open it in the **Talk** tab."""


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
            recording = gr.Audio(
                sources=["upload", "microphone"], type="filepath", elem_id="trial-recording",
                label="Or a recording every photo says (the sentence, if any, becomes its captions)",
            )
            framing = gr.Radio(
                framing_choices(), value=Framing.WHOLE.value, label="Framing", elem_id="trial-framing",
                info="Each photo is judged by what this framing shows.",
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
            review_link = gr.Textbox(
                label=f"Link to the review page: anyone can open it, for {studio.shares.lifetime} (no zip to send)",
                placeholder="Once the photos have spoken, the review page gets a link here.",
                interactive=False, buttons=["copy"], elem_id="trial-review-link",
            )
    verdicts = gr.Markdown(elem_id="trial-verdicts")

    trial_outputs = outputs(
        TrialView, trial=trial_state, status=status, recommendation=recommendation, gallery=gallery,
        open_best=open_best, grid=grid, bundle=bundle, grid_file=grid_file, review_link=review_link,
        verdicts=verdicts,
    )
    open_outputs = [talk.photo, talk.text, talk.voice, tabs]

    def in_talk_tab(chosen: OpenInTalk | None) -> tuple:
        """The chosen photo, sentence and voice put into the Talk tab, which is brought forward."""
        if chosen is None:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return chosen.photo, chosen.text, chosen.voice, gr.Tabs(selected="talk")

    def check_photos(
        given, words, voice_key, engine_key, old: Trial | None, chosen_framing: str = Framing.WHOLE.value
    ) -> Iterator[tuple]:
        views = trials_handlers.run_trial(
            studio, given, words, voice_key, engine_key, old, speak=False, framing=chosen_framing
        )
        for view in views:
            yield updates(view)

    def check_and_speak(
        given, words, voice_key, engine_key, old: Trial | None, recorded: str | None = None,
        chosen_framing: str = Framing.WHOLE.value, request: gr.Request = None,
    ) -> Iterator[tuple]:
        link = partial(page_url, request)
        views = trials_handlers.run_trial(
            studio, given, words, voice_key, engine_key, old, True, link, recorded, chosen_framing
        )
        for view in views:
            yield updates(view)

    def stop_trial() -> tuple:
        return updates(trials_handlers.stop())

    def open_photo(trial: Trial | None, words: str, voice_key: str, selection: gr.SelectData) -> tuple:
        return in_talk_tab(trials_handlers.open_photo(trial, selection.index, words, voice_key))

    def open_recommended(trial: Trial | None, words: str, voice_key: str) -> tuple:
        return in_talk_tab(trials_handlers.open_recommended(trial, words, voice_key))

    inputs = [files, text, voice, engine, trial_state]
    checking = check.click(
        check_photos, [*inputs, framing], trial_outputs, api_name="check_photos", concurrency_limit=2,
        concurrency_id="trials",
    )
    running = start.click(
        check_and_speak, [*inputs, recording, framing], trial_outputs, api_name="check_and_speak",
        concurrency_limit=1, concurrency_id="trials-speak",
    )
    # Private: the stop reaches a trial only through the page's own cancel, which API callers do not send.
    stop.click(stop_trial, None, trial_outputs, cancels=[checking, running], api_visibility="private")
    gallery.select(open_photo, [trial_state, text, voice], open_outputs, api_visibility="private")
    open_best.click(open_recommended, [trial_state, text, voice], open_outputs, api_visibility="private")
