"""The Live tab: talk into the microphone and the face picked in the Talk tab speaks with you.

Layout and wiring only: what each event does is in `ui/live_handlers.py`, the microphone's sound goes
to the server from `ui/live_microphone.js`, and every event's result goes to the page through
`ui.views.updates`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import gradio as gr

from avatar.framing import Framing, framing_choices
from avatar.runs.run import Run
from avatar.studio import Studio
from ui import live_handlers
from ui.live_handlers import LiveView
from ui.talk_tab import TalkTab
from ui.views import outputs, updates

MICROPHONE_SCRIPT = Path(__file__).with_name("live_microphone.js")


def live_head() -> str:
    """HTML for the page's <head>: the script that sends the microphone's sound (the player's is the Talk tab's)."""
    return f"<script>{MICROPHONE_SCRIPT.read_text()}</script>"


def how_to(seconds: float) -> str:
    return (
        "Press **Start**, allow the microphone and talk: the face picked in the **Talk** tab says your words "
        f"with you, a moment behind. **Stop** ends it (so does leaving the page, or {seconds:.0f} seconds); "
        "the take can then be downloaded."
    )


def build_live_tab(studio: Studio, talk: TalkTab) -> None:
    """Lay out the tab inside the open Blocks context and wire its events; the face is the Talk tab's photo."""
    engine_choices = [(option.label, option.key) for option in studio.engines.options()]
    run_state = gr.State(None, delete_callback=live_handlers.leave)
    with gr.Row(elem_id="live-layout"):
        with gr.Column(scale=1, elem_id="live-controls"):
            gr.Markdown(how_to(studio.settings.live_seconds), elem_id="live-how")
            words = gr.Textbox(
                label="The words you will say (optional: they become the captions of the download)", lines=2,
                max_length=studio.settings.max_text_chars, elem_id="live-words",
            )
            with gr.Row():
                framing = gr.Radio(
                    framing_choices(), value=Framing.WHOLE.value, label="Framing", elem_id="live-framing"
                )
                engine = gr.Dropdown(
                    engine_choices, value=studio.engines.preferred(), label="Engine", info=studio.engines.explain(),
                    elem_id="live-engine",
                )
            with gr.Row():
                start = gr.Button("Start", variant="primary", elem_id="live-start")
                stop = gr.Button("Stop", variant="stop", elem_id="live-stop")
        with gr.Column(scale=1, elem_id="live-output"):
            video = gr.HTML("", elem_id="live-video", min_height=320)
            status = gr.Markdown(elem_id="live-status")
            download = gr.File(
                label="Download the take (MP4, and its captions)", interactive=False, elem_id="live-download"
            )

    view_outputs = outputs(LiveView, run=run_state, video=video, download=download, status=status)

    def go_live(photo_path: str | None, said: str, engine_key: str, chosen_framing: str) -> Iterator[tuple]:
        for view in live_handlers.start(studio, photo_path, said, engine_key, chosen_framing):
            yield updates(view)

    def stop_live(current: Run | None) -> tuple:
        return updates(live_handlers.stop(current))

    start.click(
        go_live, [talk.photo, words, engine, framing], view_outputs, api_visibility="private",
        concurrency_limit=None, trigger_mode="once",
    )
    stop.click(stop_live, run_state, view_outputs, api_visibility="private")
