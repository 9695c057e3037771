"""What the Live tab does, as functions of plain values: the photo, the words and the Studio in, views out.

A live session is a run whose speech is the visitor's microphone (`avatar/speech/live_source.py`): it
waits in line, starts and reports through the run service like any other. The page feeds the
microphone's sound to the address the player names (`ui/live_microphone.js`), and Stop ends the sound,
not the run, so the take is finished and kept for download.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass

from avatar.config import FPS
from avatar.framing import Framing
from avatar.live_stream import MIME_TYPE
from avatar.runs.run import Run
from avatar.runs.service import Finished, LiveAudio, Progressed, RunEvent, RunRequest, Started, Stopped, Waiting
from avatar.speech.live_source import LiveSpeech
from avatar.studio import Studio
from ui.refusals import until_refused
from ui.views import KEEP, Keep

# Where the page sends a session's sound (app.py's route), beside its stream at live/<token>.
MICROPHONE_PATH = "live-audio"
STARTING = "Starting: the microphone is asked for once your session has its place…"
ENDING = "Ending: the take is being finished for download…"
MUTED_NOTE = "Muted, so you do not hear yourself twice: the video's speaker button turns its sound on."


@dataclass(frozen=True)
class LiveView:
    """The Live tab after one step of a session: the run to keep, the player, the download and the status line."""

    run: Run | None | Keep = KEEP
    video: str | None | Keep = KEEP  # the live player's HTML, naming where the microphone's sound goes
    download: list[str] | None | Keep = KEEP  # the take as an MP4, and its captions as WebVTT when there are any
    status: str | Keep = KEEP


def live_player(stream_path: str, microphone_path: str, chunk_seconds: float = 0.0) -> str:
    """A muted <video> that ui/live_player.js keeps near the stream's newest frame, and the address for the sound.

    `chunk_seconds` is how much video the engine draws at once (0: any amount): the player lets that much more
    pile up before it catches up, rather than skip the frames of every chunk.
    """
    return (
        f'<video data-live-src="{html.escape(stream_path)}" data-live-type="{html.escape(MIME_TYPE)}" '
        f'data-live-edge="{chunk_seconds:.2f}" data-live-microphone="{html.escape(microphone_path)}" '
        'autoplay muted playsinline controls '
        'style="width: 100%; max-height: 512px; background: #000"></video>'
        f'<p class="live-note">{html.escape(MUTED_NOTE)}</p>'
    )


def start(
    studio: Studio, photo_path: str | None, words: str | None, engine_key: str | None, framing: str | None
) -> Iterator[LiveView]:
    """Wait for a place (telling the visitor their number), then go live; one view per step.

    A problem the visitor can fix (no face, a refused microphone before any sound) ends it with its sentence.
    """
    request = RunRequest(photo_path, LiveAudio(words), engine_key, Framing(framing or Framing.WHOLE.value))
    yield LiveView(run=None, video=None, download=None, status=STARTING)
    yield from until_refused(_views(studio.runs.serve(request)), _refused)


def stop(current: Run | None) -> LiveView:
    """End the sound: the run then finishes the take, which the session's own views hand on."""
    if current is None or not isinstance(current.speech, LiveSpeech):
        return LiveView()
    current.speech.finish("stopped")
    return LiveView(status=ENDING)


def leave(current: Run | None) -> None:
    """The page was closed: no one is left to download the take, so the run stops as well."""
    if current is not None:
        if isinstance(current.speech, LiveSpeech):
            current.speech.finish("left")
        current.cancel()


def _refused(message: str) -> LiveView:
    return LiveView(run=None, video=None, download=None, status=message)


def _views(events: Iterator[RunEvent]) -> Iterator[LiveView]:
    """Each of the run service's events as the tab shows it; captions come with the finished take only."""
    for event in events:
        if isinstance(event, Waiting):
            yield LiveView(status=event.status)
        elif isinstance(event, Started):
            assert isinstance(event.run.speech, LiveSpeech) and event.live_path is not None  # LiveAudio's, streamed
            chunk_seconds = (event.run.engine.chunk_frames or 0) / FPS
            player = live_player(event.live_path, f"{MICROPHONE_PATH}/{event.run.speech.token}", chunk_seconds)
            yield LiveView(run=event.run, video=player, status=event.status)
        elif isinstance(event, Progressed):
            yield LiveView(status=event.status)
        elif isinstance(event, Finished):
            files = [str(path) for path in (event.video, event.subtitles) if path is not None]
            yield LiveView(run=None, download=files, status=event.status)
        elif isinstance(event, Stopped):
            yield LiveView(run=None, status=event.status)
