"""The talking-photo page: pick a face, type text, hear it and watch the face say it as it streams in.

Only page assembly lives here: the tabs are in `ui/`, all work in `avatar/`.

The public API ("Use via API" in the footer) names each endpoint a gradio_client user may call:
/preview_face, /run, /stop_run and /share_video (Talk), /check_photos and /check_and_speak (Photo trials).
The page's other events (a click on a gallery, the first preview, a trial's Stop) are private.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import gradio as gr
from fastapi import HTTPException, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from avatar import zerogpu  # first: on ZeroGPU, `spaces` must patch torch before anything uses CUDA
from avatar.housekeeping import CACHE_SWEEP_SECONDS, RESULT_KEEP_SECONDS, start_housekeeping
from avatar.media import expose_ffmpeg_tools
from avatar.speech.live_source import MAX_POST_BYTES, pcm_samples
from avatar.studio import Studio
from ui.live_tab import build_live_tab, live_head
from ui.share_page import share_routes
from ui.talk_tab import build_talk_tab
from ui.trials_tab import build_trials_tab

INTRO = """# Talking photo
Pick a face, type a sentence, press **Generate**: the face speaks it, streamed into the page as it is made.

Runs on any computer with the embedded photo animator; with a GPU and FlashHead weights,
the neural engine can take over.
"""

def build_page(studio: Studio) -> gr.Blocks:
    """The whole page: an introduction and one tab per task."""
    with gr.Blocks(title="Talking photo", delete_cache=(CACHE_SWEEP_SECONDS, RESULT_KEEP_SECONDS)) as page:
        gr.Markdown(INTRO, elem_id="intro")
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Talk", id="talk"):
                talk = build_talk_tab(page, studio)
            with gr.Tab("Live", id="live"):
                build_live_tab(studio, talk)
            with gr.Tab("Photo trials", id="trials"):
                build_trials_tab(page, studio, talk, tabs)
    return page


def live_routes(studio: Studio) -> list[APIRoute]:
    """Each run's live stream for the MSE player, and each live session's microphone, served beside the page."""

    def live_stream(token: str) -> StreamingResponse:
        broadcast = studio.live_streams.get(token)
        if broadcast is None:
            raise HTTPException(status_code=404, detail="No such stream (it may have expired).")
        return StreamingResponse(broadcast.read(), media_type="video/mp4", headers={"Cache-Control": "no-store"})

    async def microphone_sound(token: str, request: Request, rate: int = 0, end: str = "") -> Response:
        """The page's microphone (ui/live_microphone.js): 204 while the session listens, 410 once it has ended."""
        microphone = studio.runs.microphones.get(token)
        if microphone is None:
            raise HTTPException(status_code=404, detail="No such live session (it may have ended).")
        body = await request.body()
        if len(body) > MAX_POST_BYTES:
            raise HTTPException(status_code=413, detail="Too much sound at once.")
        samples = pcm_samples(body)
        listening = not microphone.ended
        if len(samples):
            try:
                listening = await run_in_threadpool(microphone.push, samples, rate)
            except ValueError as error:
                raise HTTPException(status_code=400, detail=str(error)) from error
        if end:
            microphone.finish(end)
        return Response(status_code=204 if listening and not end else 410)

    return [
        APIRoute("/live/{token}", live_stream, methods=["GET"]),
        APIRoute("/live-audio/{token}", microphone_sound, methods=["POST"]),
    ]


def main() -> None:
    studio = Studio()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(studio.settings.work_dir / "gradio"))
    housekeeping = start_housekeeping(studio.settings.work_dir, Path(os.environ["GRADIO_TEMP_DIR"]))
    expose_ffmpeg_tools(studio.settings.work_dir / "bin")
    if zerogpu.ACTIVE:
        # Weights reach ZeroGPU's GPU only if they were placed on "cuda" by the main thread before launch.
        studio.warm_up()
        studio.engines.seal()
    else:
        threading.Thread(target=studio.warm_up, name="warm-up", daemon=True).start()
    page = build_page(studio)
    housekeeping.cap.protect_existing()
    page.queue(default_concurrency_limit=2, max_size=32)
    # Gradio's server runs in a thread; on SIGTERM, leave the main thread normally so that `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        page.launch(
            app_kwargs={"routes": live_routes(studio) + share_routes(studio.shares)},
            allowed_paths=[str(Path(__file__).parent / "assets")],
            footer_links=["api"],
            head=live_head(),
            ssr_mode=False,
        )
    finally:
        page.close()
        housekeeping.close()


if __name__ == "__main__":
    main()
