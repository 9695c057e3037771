"""What the Talk tab does, as functions of plain values: paths, strings and the Studio in, views out.

No Gradio component appears here, so each step can be called and checked without a page;
`ui/talk_tab.py` lays the components out and turns these views into their updates.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from avatar.captions import Cue, as_json
from avatar.engines.spec import Progress
from avatar.framing import Framing
from avatar.live_stream import MIME_TYPE
from avatar.paste_back import preview as framed_preview
from avatar.runs.run import CaptionsReady, Run
from avatar.runs.service import (
    Finished,
    Progressed,
    RecordedAudio,
    RunEvent,
    RunRequest,
    SpeechRequest,
    Started,
    Stopped,
    TypedText,
    Waiting,
)
from avatar.sharing import Share
from avatar.speech.voices import VoiceCatalogue
from avatar.studio import Studio
from ui.refusals import VISITOR_PROBLEMS, plain_message, until_refused
from ui.views import KEEP, Keep, Relabelled, Shown

STOPPED = "Stopped. Your photo, text and recording are still here: press Generate to try again."
# Where the speech comes from: (what the page says, what the API takes).
TYPED, RECORDED = "text", "recording"
SPEECH_CHOICES = [("Type text", TYPED), ("Use a recording", RECORDED)]
TEXT_LABELS = {TYPED: "Text to speak", RECORDED: "Words of the recording (optional: they become its captions)"}
NOTHING_TO_SHARE = "Nothing to share yet: press Generate, and share the video once it is finished."


@dataclass(frozen=True)
class TalkView:
    """The Talk tab after one step of a run: the run to keep, the video, the download and the status line."""

    run: Run | None | Keep = KEEP
    video: str | None | Keep = KEEP  # the live player's HTML, or (AVATAR_PLAYER=hls) a segment's path
    download: list[str] | None | Keep = KEEP  # the MP4, and its captions as WebVTT when there are any
    captions: str | Keep = KEEP  # the captions so far, for ui/captions.js to show under the video
    status: str | Keep = KEEP
    shared: Share | None | Keep = KEEP  # the finished video, kept for a link to pass on


@dataclass(frozen=True)
class SpeechInputs:
    """The inputs that fit where the speech comes from: the text box's label, the recording box and the voice menu."""

    text_label: Relabelled
    recording: Shown
    voice: Shown


@dataclass(frozen=True)
class RecordingNote:
    """The status line once a recording is chosen: why it cannot be used, cleared of an earlier refusal, or kept."""

    status: str | Keep


@dataclass(frozen=True)
class ShareView:
    """The Share button, shown once there is a finished video, and the box with its link."""

    button: Shown
    link: Shown


@dataclass(frozen=True)
class FacePreview:
    """The face as the engine will see it (None when there is none), and a note about it."""

    crop: np.ndarray | None
    note: str


def voice_note(voices: VoiceCatalogue) -> str:
    """One plain sentence under the voice menu: whether the online voices can be had, and if not, why."""
    voices.options()
    problem = voices.online_problem
    return f"Offline voice in use: {problem}." if problem else "Online voices available."


def live_player(path: str) -> str:
    """A <video> that ui/live_player.js feeds from the run's live stream at `path`."""
    return (
        f'<video data-live-src="{html.escape(path)}" data-live-type="{html.escape(MIME_TYPE)}" '
        'autoplay playsinline controls style="width: 100%; max-height: 512px; background: #000"></video>'
    )


def caption_track(cues: tuple[Cue, ...]) -> str:
    """The captions box under the video: the cues so far (as JSON), the line ui/captions.js fills, and its switch."""
    data = html.escape(json.dumps(as_json(cues), ensure_ascii=False), quote=True)
    return (
        f'<div class="live-captions" data-cues="{data}"><p class="caption-line" aria-live="off"></p>'
        '<label class="caption-switch"><input type="checkbox" class="caption-toggle" checked> Captions</label></div>'
    )


def speech_inputs(speech_from: str | None, words: str | None = None, examples: tuple[str, ...] = ()) -> SpeechInputs:
    """Typed text needs a voice; a recording needs the recording box, and its words (optional) make captions.

    An example sentence the visitor left in the box is not their recording's words (it would become wrong
    captions), so it goes when a recording is chosen; an empty box gets the first example back with text.
    """
    recorded = speech_from == RECORDED
    kept = (words or "").strip()
    words_now: str | Keep = KEEP
    if recorded and kept in examples:
        words_now = ""
    elif not recorded and not kept and examples:
        words_now = examples[0]
    label = Relabelled(TEXT_LABELS[RECORDED if recorded else TYPED], words_now)
    return SpeechInputs(label, Shown(recorded), Shown(not recorded))


def speech_request(
    speech_from: str | None, words: str | None, voice_key: str | None, recording: str | None
) -> SpeechRequest:
    """What the visitor chose to be spoken: typed text (the default, as before recordings) or their recording."""
    if speech_from == RECORDED:
        return RecordedAudio(recording, words)
    return TypedText(words, voice_key)


def preview_face(studio: Studio, photo_path: str | None, framing: str | None = Framing.WHOLE) -> FacePreview:
    """What the video will show in the chosen framing, and a note; a photo the app cannot use gets the reason."""
    if not photo_path:
        return FacePreview(None, "")
    try:
        face = studio.preview_face(photo_path, Framing(framing or Framing.WHOLE))
    except VISITOR_PROBLEMS as error:
        return FacePreview(None, plain_message(error))
    picture = framed_preview(face, studio.settings.max_video_side)
    return FacePreview(picture, " ".join(face.notes) or "Face found: ready to speak.")


def talk(
    studio: Studio,
    photo_path: str | None,
    words: str | None,
    voice_key: str | None,
    engine_key: str | None,
    progress: Progress | None = None,
    speech_from: str | None = TYPED,
    recording: str | None = None,
    framing: str | None = Framing.WHOLE,
) -> Iterator[TalkView]:
    """Wait for a free slot (telling the visitor their place in line), then run, one view per step.

    A problem the visitor can fix ends the run with its sentence, and no video.
    """
    speech = speech_request(speech_from, words, voice_key, recording)
    request = RunRequest(photo_path, speech, engine_key, Framing(framing or Framing.WHOLE))
    return until_refused(_views(studio.runs.serve(request, progress=progress)), _refused)


def recording_chosen(studio: Studio, recording: str | None, shown: str | None = None) -> RecordingNote:
    """Decode the recording the visitor just chose, so that Generate finds it ready; one that cannot be used
    says why at once, where the run's refusal would (`shown` is the status line now)."""
    try:
        studio.runs.prepare_recording(recording)
    except VISITOR_PROBLEMS as error:
        return RecordingNote(plain_message(error))
    refused_before = (shown or "").startswith("⚠️")  # plain_message's mark
    return RecordingNote("" if recording and refused_before else KEEP)


def shareable(shared: Share | None) -> ShareView:
    """A finished video shows the Share button; a new run (no video yet) hides the button and the old link."""
    return ShareView(button=Shown(shared is not None), link=Shown(False))


def share(shared: Share | None, page_url: Callable[[Share], str]) -> str:
    """The link to the last finished video's page, for anyone to open without this app's page (or why there is none)."""
    return page_url(shared) if shared is not None else NOTHING_TO_SHARE


def link_shown() -> ShareView:
    """The box with the link, shown once the Share button has filled it."""
    return ShareView(button=Shown(True), link=Shown(True))


def stop(current: Run | None) -> TalkView:
    if current is not None:
        current.cancel()
    return TalkView(run=None, status=STOPPED)


def _refused(message: str) -> TalkView:
    return TalkView(run=None, video=None, download=None, captions="", status=message, shared=None)


def _views(events: Iterator[RunEvent]) -> Iterator[TalkView]:
    """Each of the run service's events as the tab shows it."""
    for event in events:
        if isinstance(event, Waiting):
            yield TalkView(status=event.status)
        elif isinstance(event, Started):
            player = live_player(event.live_path) if event.live_path is not None else None
            yield TalkView(
                run=event.run, video=player, download=None, captions=caption_track(()), status=event.status,
                shared=None,
            )
        elif isinstance(event, Progressed):
            yield TalkView(video=str(event.segment) if event.segment is not None else KEEP, status=event.status)
        elif isinstance(event, CaptionsReady):
            yield TalkView(captions=caption_track(event.cues))
        elif isinstance(event, Finished):
            files = [str(path) for path in (event.video, event.subtitles) if path is not None]
            yield TalkView(
                run=None, download=files, captions=caption_track(event.cues), status=event.status, shared=event.share
            )
        elif isinstance(event, Stopped):
            yield TalkView(run=None, download=None, status=event.status)
