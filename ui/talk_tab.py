"""The main tab: pick a face, type text, watch the face say it as it streams in.

Layout and wiring only: what each event does is in `ui/talk_handlers.py`, and every event's
result goes to the page through `ui.views.updates`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from avatar.framing import Framing, framing_choices
from avatar.runs.run import Run
from avatar.sharing import Share
from avatar.studio import Studio
from ui import talk_handlers
from ui.photo_input import photo_input
from ui.share_page import page_url
from ui.talk_handlers import FacePreview, RecordingNote, ShareView, SpeechInputs, TalkView
from ui.views import outputs, updates

SCRIPTS = [Path(__file__).with_name(name) for name in ("playback.js", "live_player.js", "layout.js", "captions.js")]
# Two columns on a desktop, one on a phone; in the head as it is (Gradio would scope the `css` of `launch`).
LAYOUT = Path(__file__).with_name("layout.css")

EXAMPLE_SENTENCES = [
    "Hello there, nice to meet you.",
    "Every photo has a story. Today, this one gets to tell it out loud.",
    "The quick brown fox jumps over the lazy dog, and nobody is surprised any more.",
    "Welcome to the demo! Type anything you like, and I will say it for you.",
]


@dataclass(frozen=True)
class TalkTab:
    """The components other tabs may reach into (the trials tab opens a photo here)."""

    photo: gr.Image
    text: gr.Textbox
    voice: gr.Dropdown


def page_head() -> str:
    """HTML for the page's <head>: the layout, playback measured in the visitor's browser, and the live player."""
    scripts = "".join(f"<script>{script.read_text()}</script>" for script in SCRIPTS)
    return f"<style>{LAYOUT.read_text()}</style>{scripts}"


def build_talk_tab(page: gr.Blocks, studio: Studio) -> TalkTab:
    """Lay out the tab inside `page` (the open Blocks context) and wire its events."""
    samples = [str(path) for path in studio.sample_faces()]
    voice_choices = [(option.label, option.key) for option in studio.voices.options()]
    engine_choices = [(option.label, option.key) for option in studio.engines.options()]

    run_state = gr.State(None, delete_callback=lambda current: current.cancel() if current else None)
    shared_state = gr.State(None)
    # On a phone the two columns become one, reordered by ui/layout.css: face, words, Generate, player, the rest.
    with gr.Row(elem_id="talk-layout"):
        with gr.Column(scale=1, elem_id="talk-face"):
            gallery = gr.Gallery(
                value=samples, label="Sample faces (click one)", columns=len(samples) or 1, height=180,
                allow_preview=False, elem_id="sample-faces",
            )
            photo = photo_input(
                value=samples[0] if samples else None, label="Face: upload or take a photo",
                sources=["upload", "webcam", "clipboard"], elem_id="photo", height=260,
            )
            framing = gr.Radio(
                framing_choices(), value=Framing.WHOLE.value, label="Framing", elem_id="framing",
                info="Whole photo: the photo moves as you framed it. Face close-up: the square the engine animates.",
            )
            with gr.Accordion("What the video will show", elem_id="crop-fold"):  # folded on a phone
                crop = gr.Image(show_label=False, interactive=False, height=260, elem_id="crop")
            face_note = gr.Markdown(elem_id="face-note")
        with gr.Column(scale=1, elem_id="talk-words"):
            speech_from = gr.Radio(
                talk_handlers.SPEECH_CHOICES, value=talk_handlers.TYPED, label="Speech", elem_id="speech-from"
            )
            recording = gr.Audio(
                sources=["upload", "microphone"], type="filepath", visible=False, elem_id="recording",
                label=f"Your recording: a sound file, or record with the microphone (up to "
                f"{studio.settings.max_recording_seconds:.0f} s)",
            )
            text = gr.Textbox(
                label=talk_handlers.TEXT_LABELS[talk_handlers.TYPED], value=EXAMPLE_SENTENCES[0], lines=3,
                max_length=studio.settings.max_text_chars, elem_id="text",
            )
            gr.Examples(EXAMPLE_SENTENCES, inputs=text, label="Example sentences", elem_id="examples")
            with gr.Row(elem_id="choices"):
                voice = gr.Dropdown(
                    voice_choices, value=studio.voices.default().key, label="Voice",
                    info=talk_handlers.voice_note(studio.voices), elem_id="voice",
                )
                engine = gr.Dropdown(
                    engine_choices, value=studio.engines.preferred(), label="Engine", info=studio.engines.explain()
                )
            with gr.Row(elem_id="run-buttons"):
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                stop = gr.Button("Stop", variant="stop", elem_id="stop")
            if studio.settings.live_player:
                video = gr.HTML("", elem_id="video", min_height=320)
            else:
                video = gr.Video(
                    label="Talking face", streaming=True, autoplay=True, interactive=False, elem_id="video"
                )
            captions = gr.HTML("", elem_id="captions")  # under the video: ui/captions.js shows the line being said
            gr.HTML("", elem_id="playback-stats", head=page_head())
            status = gr.Markdown(elem_id="status")
            download = gr.File(label="Download the MP4 and its captions", interactive=False, elem_id="download")
            share_button = gr.Button("Share", visible=False, elem_id="share")
            link = gr.Textbox(
                label=f"Link to pass on: anyone can open it, for {studio.shares.lifetime}", visible=False,
                interactive=False, buttons=["copy"], elem_id="share-link",
            )

    face_outputs = outputs(FacePreview, crop=crop, note=face_note)
    speech_outputs = outputs(SpeechInputs, text_label=text, recording=recording, voice=voice)
    run_outputs = outputs(
        TalkView, run=run_state, video=video, download=download, captions=captions, status=status, shared=shared_state
    )
    share_outputs = outputs(ShareView, button=share_button, link=link)

    def pick_sample(selection: gr.SelectData) -> str:
        return samples[selection.index]

    def preview_face(photo_path: str | None, chosen_framing: str = Framing.WHOLE.value) -> tuple:
        return updates(talk_handlers.preview_face(studio, photo_path, chosen_framing))

    def recording_chosen(recorded: str | None, shown: str | None) -> object:
        (note,) = updates(talk_handlers.recording_chosen(studio, recorded, shown))  # one output: its value alone
        return note

    def speech_switched(choice: str, words: str) -> tuple:
        return updates(talk_handlers.speech_inputs(choice, words, tuple(EXAMPLE_SENTENCES)))

    def run(
        photo_path: str | None, words: str, voice_key: str, engine_key: str, speech_choice: str = talk_handlers.TYPED,
        recorded: str | None = None, chosen_framing: str = Framing.WHOLE.value, progress=gr.Progress(),
    ) -> Iterator[tuple]:
        def report(share: float, what: str) -> None:
            progress(share, desc=what)

        views = talk_handlers.talk(
            studio, photo_path, words, voice_key, engine_key, report, speech_choice, recorded, chosen_framing
        )
        for view in views:
            yield updates(view)

    def stop_run(current: Run | None) -> tuple:
        return updates(talk_handlers.stop(current))

    def shareable(shared: Share | None) -> tuple:
        return updates(talk_handlers.shareable(shared))

    def share_video(shared: Share | None, request: gr.Request) -> str:
        return talk_handlers.share(shared, lambda kept: page_url(request, kept))

    def show_link() -> tuple:
        return updates(talk_handlers.link_shown())

    gallery.select(pick_sample, None, photo, api_visibility="private")
    photo.change(preview_face, [photo, framing], face_outputs, api_name="preview_face")
    framing.change(preview_face, [photo, framing], face_outputs, api_visibility="private")
    page.load(preview_face, [photo, framing], face_outputs, api_visibility="private")
    speech_from.change(speech_switched, [speech_from, text], speech_outputs, api_visibility="private")
    note_outputs = outputs(RecordingNote, status=status)
    recording.change(recording_chosen, [recording, status], note_outputs, api_visibility="private")
    generation = generate.click(
        run, [photo, text, voice, engine, speech_from, recording, framing], run_outputs, api_name="run",
        concurrency_limit=None,
    )
    stop.click(stop_run, run_state, run_outputs, api_name="stop_run", cancels=[generation])
    shared_state.change(shareable, shared_state, share_outputs, api_visibility="private")
    share_button.click(share_video, shared_state, link, api_name="share_video").then(
        show_link, None, share_outputs, api_visibility="private"
    )
    return TalkTab(photo=photo, text=text, voice=voice)
