"""The talking-photo page: pick a face, type text, hear it and watch the face say it as it streams in.

Only page assembly lives here: the tabs are in `ui/`, all work in `avatar/`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse

from avatar.housekeeping import CACHE_SWEEP_SECONDS, RESULT_KEEP_SECONDS, start_housekeeping
from avatar.media import expose_ffmpeg_tools
from avatar.studio import Studio
from ui.talk_tab import build_talk_tab
from ui.trials_tab import build_trials_tab

INTRO = """# Talking photo
Pick a face, type a sentence, press **Generate**: the face speaks it, streamed into the page as it is made.
Runs on any computer with the embedded photo animator; with a GPU and FlashHead weights,
the neural engine can take over.
"""

# On SIGTERM, how long open connections (visitors' live streams) may hold up the shutdown clean-up.
SHUTDOWN_GRACE_SECONDS = 5


def build_page(studio: Studio) -> gr.Blocks:
    """The whole page: an introduction and one tab per task."""
    with gr.Blocks(title="Talking photo", delete_cache=(CACHE_SWEEP_SECONDS, RESULT_KEEP_SECONDS)) as page:
        gr.Markdown(INTRO)
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Talk", id="talk"):
                talk = build_talk_tab(page, studio)
            with gr.Tab("Photo trials", id="trials"):
                build_trials_tab(page, studio, talk, tabs)
    return page


def build_server(studio: Studio, page: gr.Blocks) -> FastAPI:
    """The web server: the page, plus each run's live stream for the MSE player."""
    server = FastAPI()

    @server.get("/live/{token}")
    def live_stream(token: str) -> StreamingResponse:
        broadcast = studio.live_streams.get(token)
        if broadcast is None:
            raise HTTPException(status_code=404, detail="No such stream (it may have expired).")
        return StreamingResponse(broadcast.read(), media_type="video/mp4", headers={"Cache-Control": "no-store"})

    return gr.mount_gradio_app(
        server, page, path="/", allowed_paths=[str(Path(__file__).parent / "assets")], footer_links=["api"]
    )


def main() -> None:
    studio = Studio()
    os.environ.setdefault("GRADIO_TEMP_DIR", str(studio.settings.work_dir / "gradio"))
    housekeeping = start_housekeeping(studio.settings.work_dir, Path(os.environ["GRADIO_TEMP_DIR"]))
    expose_ffmpeg_tools(studio.settings.work_dir / "bin")
    threading.Thread(target=studio.warm_up, name="warm-up", daemon=True).start()
    page = build_page(studio)
    housekeeping.cap.protect_existing()
    page.queue(default_concurrency_limit=2, max_size=32)
    # uvicorn re-raises SIGTERM once it has shut down: exit normally instead, so that `finally` runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            build_server(studio, page),
            host=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
            port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
            log_level="warning",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
    finally:
        housekeeping.close()


if __name__ == "__main__":
    main()
