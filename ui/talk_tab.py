"""The main tab: pick a face, type text, watch the face say it as it streams in."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from avatar.errors import UserFacingError
from avatar.live_stream import MIME_TYPE
from avatar.session import Run, RunCancelled, RunFinished, SegmentReady
from avatar.studio import Studio, describe

SCRIPTS = [Path(__file__).with_name(name) for name in ("playback.js", "live_player.js")]

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
    """HTML for the page's <head>: playback measured in the visitor's browser, and the live player."""
    return "".join(f"<script>{script.read_text()}</script>" for script in SCRIPTS)


def live_player(path: str) -> str:
    """A <video> that ui/live_player.js feeds from the run's live stream at `path`."""
    return (
        f'<video data-live-src="{html.escape(path)}" data-live-type="{html.escape(MIME_TYPE)}" '
        'autoplay playsinline controls style="width: 100%; max-height: 512px; background: #000"></video>'
    )


def build_talk_tab(page: gr.Blocks, studio: Studio) -> TalkTab:
    """Lay out the tab inside `page` (the open Blocks context) and wire its events."""
    samples = [str(path) for path in studio.sample_faces()]
    voice_choices = [(option.label, option.key) for option in studio.voices.options()]
    engine_choices = [(option.label, option.key) for option in studio.engines.options()]
    problem = studio.voices.online_problem
    voice_note = f"Offline voice in use: {problem}." if problem else "Online voices available."

    run_state = gr.State(None, delete_callback=lambda current: current.cancel() if current else None)
    with gr.Row():
        with gr.Column(scale=1):
            gallery = gr.Gallery(
                value=samples, label="Sample faces (click one)", columns=len(samples) or 1, height=180,
                allow_preview=False, elem_id="sample-faces",
            )
            photo = gr.Image(
                value=samples[0] if samples else None, type="filepath", label="Face: upload or take a photo",
                sources=["upload", "webcam", "clipboard"], elem_id="photo", height=260,
            )
            crop = gr.Image(label="The face as the engine sees it", interactive=False, height=260, elem_id="crop")
            face_note = gr.Markdown(elem_id="face-note")
        with gr.Column(scale=1):
            text = gr.Textbox(
                label="Text to speak", value=EXAMPLE_SENTENCES[0], lines=3,
                max_length=studio.settings.max_text_chars, elem_id="text",
            )
            gr.Examples(EXAMPLE_SENTENCES, inputs=text, label="Example sentences")
            with gr.Row():
                voice = gr.Dropdown(voice_choices, value=studio.voices.default().key, label="Voice", info=voice_note)
                engine = gr.Dropdown(
                    engine_choices, value=studio.engines.preferred(), label="Engine", info=studio.engines.explain()
                )
            with gr.Row():
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                stop = gr.Button("Stop", variant="stop", elem_id="stop")
            if studio.settings.player == "mse":
                video = gr.HTML("", elem_id="video", min_height=320)
            else:
                video = gr.Video(
                    label="Talking face", streaming=True, autoplay=True, interactive=False, elem_id="video"
                )
            gr.HTML("", elem_id="playback-stats", head=page_head())
            download = gr.File(label="Download the MP4", interactive=False, elem_id="download")
            status = gr.Markdown(elem_id="status")

    def pick_sample(selection: gr.SelectData) -> str:
        return samples[selection.index]

    def show_crop(photo_path: str | None) -> tuple:
        if not photo_path:
            return None, ""
        try:
            face = studio.preview_face(photo_path)
        except UserFacingError as error:
            return None, f"⚠️ {error}"
        return face.crop, " ".join(face.notes) or "Face found: ready to speak."

    def run(
        photo_path: str | None, words: str, voice_key: str, engine_key: str, progress=gr.Progress()
    ) -> Iterator[tuple]:
        try:
            with studio.line.place(engine_key or studio.engines.preferred()) as place:
                for number in place.wait():
                    waiting = f"Busy: you are number {number} in line; your video starts by itself…"
                    yield gr.skip(), gr.skip(), gr.skip(), waiting
                yield from run_now(photo_path, words, voice_key, engine_key, progress)
        except UserFacingError as error:
            yield None, None, None, f"⚠️ {error}"
        except gr.Error as error:  # from ZeroGPU's `spaces`: no GPU free, quota used up
            yield None, None, None, f"⚠️ {error.message}"

    def run_now(photo_path: str | None, words: str, voice_key: str, engine_key: str, progress) -> Iterator[tuple]:
        current = studio.start_run(
            photo_path, words, voice_key, engine_key, lambda share, what: progress(share, desc=what)
        )
        working = f"Working: {len(current.sentences)} sentence(s) with {current.stats.voice}"
        player = live_player(f"live/{current.live.token}") if current.live is not None else None
        yield current, player, None, f"{working}…"
        try:
            for event in current.events():
                if isinstance(event, SegmentReady):
                    ready = f"{working}: {event.start + event.duration:.1f} s of video ready…"
                    segment = str(event.path) if current.live is None else gr.skip()
                    yield current, segment, gr.skip(), ready
                elif isinstance(event, RunFinished):
                    yield None, gr.skip(), str(event.video), describe(event.stats)
        except RunCancelled:
            yield None, gr.skip(), None, "Stopped."

    def stop_run(current: Run | None) -> tuple:
        if current is not None:
            current.cancel()
        return None, "Stopped. Your photo and text are still here: press Generate to try again."

    gallery.select(pick_sample, None, photo)
    photo.change(show_crop, photo, [crop, face_note])
    page.load(show_crop, photo, [crop, face_note])
    generation = generate.click(
        run, [photo, text, voice, engine], [run_state, video, download, status], concurrency_limit=None
    )
    stop.click(stop_run, run_state, [run_state, status], cancels=[generation])
    return TalkTab(photo=photo, text=text, voice=voice)
