"""Serving one run from request to kept files: the one place a run's life is decided, whoever asked for it.

The Talk tab, the Live tab, Photo trials and the benches all ask here, so every run of every kind
takes its place in its engine's waiting line, starts on the chosen engine (or the fallback, saying
why), reports in the same words, and keeps its finished files the same way before its temporary
folder goes. A caller only turns the events into what it shows.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from avatar.captions import Cue
from avatar.config import Settings
from avatar.engines.base import EngineUnavailable
from avatar.engines.loaded import LoadedEngine
from avatar.engines.registry import EngineRegistry
from avatar.engines.spec import Progress
from avatar.errors import UserFacingError
from avatar.faces import Face
from avatar.framing import Framing
from avatar.live_stream import LiveStreams
from avatar.recent import RecentReadings
from avatar.runs import status
from avatar.runs.run import CaptionsReady, Run, RunCancelled, RunFinished, RunStats, SegmentReady
from avatar.sharing import Share, ShareRegistry
from avatar.speech.live_source import LiveMicrophones, LiveSpeech
from avatar.speech.recording import RecordedSpeech, Recording, load_recording
from avatar.speech.sources import SpeechSource, TypedSpeech
from avatar.speech.text import check_text, markup_notice
from avatar.speech.voices import Speaker, VoiceCatalogue
from avatar.waiting_line import WaitingLine

log = logging.getLogger(__name__)
# Recordings decoded lately are kept within this many bytes of sound (a minute is 5.8 MB): the page has the
# recording decoded when it is chosen, so Generate does not wait for ffprobe and ffmpeg before the first picture.
KEPT_RECORDING_BYTES = 64_000_000


@dataclass(frozen=True)
class TypedText:
    """Speech to be made from typed text by a voice; `speaker` lets several runs share one (trials)."""

    text: str | None
    voice_key: str | None = None
    speaker: Speaker | None = None


@dataclass(frozen=True)
class RecordedAudio:
    """Speech from the visitor's own recording (any audio or video file); `words`, if typed, become its captions."""

    path: str | Path | None
    words: str | None = None


@dataclass(frozen=True)
class LiveAudio:
    """Speech from the visitor's microphone as they talk (the Live tab), which the page sends to `microphones`;
    `words`, if typed, become the captions of the take."""

    words: str | None = None


SpeechRequest = TypedText | RecordedAudio | LiveAudio


@dataclass(frozen=True)
class RunRequest:
    """What a visitor asked for: a photo, where the speech comes from, and an engine (None: the preselected one)."""

    photo: str | Path | None
    speech: SpeechRequest
    engine_key: str | None = None
    framing: Framing = Framing.WHOLE


@dataclass(frozen=True)
class KeepIn:
    """Keep the finished video (and captions) as `folder/name.mp4` (and `.vtt`) instead of sharing it."""

    folder: Path
    name: str


@dataclass(frozen=True)
class Waiting:
    """The run waits in line; `number` 1 is next."""

    number: int
    status: str


@dataclass(frozen=True)
class Started:
    """The run has its slot and its engine; `live_path` is its live stream's address on the page (None: segments)."""

    run: Run
    live_path: str | None
    status: str


@dataclass(frozen=True)
class Progressed:
    """More video is ready: `segment` is its MP4 file when the page plays segments, else None (the live stream)."""

    segment: Path | None
    status: str


@dataclass(frozen=True)
class Finished:
    """The whole video, kept: a share to pass on (or None), or copied into the folder that was asked for.

    With sharing, `video` and `subtitles` are the run's own files, there until the events end.
    """

    video: Path
    subtitles: Path | None
    cues: tuple[Cue, ...]
    stats: RunStats
    status: str
    share: Share | None = None


@dataclass(frozen=True)
class Stopped:
    """The run was stopped before it finished; nothing was kept."""

    status: str = status.STOPPED


RunEvent = Waiting | Started | Progressed | CaptionsReady | Finished | Stopped


class RunService:
    """Every run, in turn: a place in line, a start with fallback, its events and its kept files."""

    def __init__(
        self,
        settings: Settings,
        engines: EngineRegistry,
        voices: VoiceCatalogue,
        line: WaitingLine,
        live_streams: LiveStreams,
        shares: ShareRegistry,
        read_face: Callable[[str | Path | None, Framing], Face],
    ) -> None:
        self.settings = settings
        self.engines = engines
        self.voices = voices
        self.line = line
        self.live_streams = live_streams
        self.shares = shares
        self.read_face = read_face
        # Live sessions that have started, by token: the page sends each one its microphone's sound.
        self.microphones = LiveMicrophones()
        self._recordings: RecentReadings[Recording] = RecentReadings(
            KEPT_RECORDING_BYTES, lambda recording: recording.audio.nbytes
        )

    def serve(
        self, request: RunRequest, keep_in: KeepIn | None = None, progress: Progress | None = None
    ) -> Iterator[RunEvent]:
        """Check what was given, wait for a slot (announcing the number), run, keep the result.

        A problem the visitor can fix raises `UserFacingError` with its sentence before or during the run.
        """
        with self.line.place(request.engine_key or self.engines.preferred()) as place:
            for number in place.wait():
                yield Waiting(number, status.waiting(number))
            run = self.start(request, progress)
            yield from self._events(run, keep_in)

    def start(self, request: RunRequest, progress: Progress | None = None) -> Run:
        """Check everything the user gave, then set up (not yet start) a run, outside the line.

        An engine that cannot load here (no GPU, no weights, no network) gives way to the
        embedded animator, and the run's status says why.
        """
        speech, notices = self._speech(request.speech)
        face = self.read_face(request.photo, Framing(request.framing))
        engine, fallback_notice = self._engine(request.engine_key, progress)
        live = self.live_streams.open() if self.settings.live_player else None
        run = Run(
            face, speech, engine, self.settings.work_dir,
            self.settings.segment_seconds, self.settings.first_segment_seconds, live, self.settings.max_video_side,
        )
        run.stats.notice = " ".join(part for part in (*notices, fallback_notice) if part)
        if isinstance(speech, LiveSpeech):
            self.microphones.add(speech)
        return run

    def check_speech(self, asked: SpeechRequest) -> None:
        """Refuse speech that no run could use (bad text, a file that is no recording) before anything waits."""
        self._speech(asked)

    def _speech(self, asked: SpeechRequest) -> tuple[SpeechSource, list[str]]:
        """The run's speech source, checked before the run starts, and what to tell the visitor about it."""
        if isinstance(asked, RecordedAudio):
            return self._recording(asked), []
        if isinstance(asked, LiveAudio):
            return self._live(asked), []
        cleaned = check_text(asked.text, self.settings.max_text_chars)
        speaker = asked.speaker or Speaker(self.voices.find(asked.voice_key), self.settings.edge_tts_timeout)
        speaker.check_language(cleaned)
        return TypedSpeech(cleaned, speaker), [markup_notice(asked.text or "")]

    def _recording(self, asked: RecordedAudio) -> RecordedSpeech:
        if not asked.path:
            raise UserFacingError("Please record something with the microphone or choose a sound file first.")
        limits = self.settings.max_recording_seconds, self.settings.max_recording_bytes
        key = self._recordings.key(asked.path, *limits)
        recording = self._recordings.read(key, lambda: _shared(load_recording(asked.path, *limits)))
        typed = (asked.words or "").strip()
        return RecordedSpeech(recording, check_text(typed, self.settings.max_text_chars) if typed else "")

    def prepare_recording(self, path: str | Path | None) -> None:
        """Decode a recording as soon as the visitor chooses it, so that Generate finds it ready; a
        `UserFacingError` says at once why it cannot be used."""
        if path:
            self._recording(RecordedAudio(path))

    def _live(self, asked: LiveAudio) -> LiveSpeech:
        if not self.settings.live_player:
            raise UserFacingError("Live sessions need the live player, and this server plays finished pieces instead.")
        typed = (asked.words or "").strip()
        return LiveSpeech(self.settings.live_seconds, check_text(typed, self.settings.max_text_chars) if typed else "")

    def _engine(self, engine_key: str | None, progress: Progress | None) -> tuple[LoadedEngine, str]:
        try:
            return self.engines.get(engine_key or self.engines.preferred(), progress), ""
        except EngineUnavailable as error:
            fallback = self.engines.fallback
            if (engine_key or fallback) == fallback:
                raise UserFacingError(str(error)) from error
            engine = self.engines.get(fallback)
            return engine, status.fallback(str(error), engine.label)

    def _events(self, run: Run, keep_in: KeepIn | None) -> Iterator[RunEvent]:
        notice = run.stats.notice
        live_path = f"live/{run.live.token}" if run.live is not None else None
        yield Started(run, live_path, status.working(run.speech, notice))
        try:
            for event in run.events():
                if isinstance(event, SegmentReady):
                    yield Progressed(event.path, status.ready(run.speech, event.start + event.duration, notice))
                elif isinstance(event, CaptionsReady):
                    yield event
                elif isinstance(event, RunFinished):
                    yield self._keep(run, event, keep_in)
        except RunCancelled:
            yield Stopped()

    def _keep(self, run: Run, finished: RunFinished, keep_in: KeepIn | None) -> Finished:
        """The finished files kept before the run's folder goes: as a share, or copied where asked."""
        words = status.finished(finished.stats)
        if keep_in is not None:
            keep_in.folder.mkdir(parents=True, exist_ok=True)
            video = Path(shutil.copyfile(finished.video, keep_in.folder / f"{keep_in.name}.mp4"))
            subtitles = None
            if finished.subtitles is not None:
                subtitles = Path(shutil.copyfile(finished.subtitles, keep_in.folder / f"{keep_in.name}.vtt"))
            return Finished(video, subtitles, finished.cues, finished.stats, words)
        share = self._share(run, finished)
        return Finished(finished.video, finished.subtitles, finished.cues, finished.stats, words, share)

    def _share(self, run: Run, finished: RunFinished) -> Share | None:
        """The finished video kept for a link; without one (a full disk), the run still ends well, with no Share."""
        try:
            stats = finished.stats
            return self.shares.add_video(
                finished.video, run.speech.text, stats.engine, stats.voice, captions=finished.subtitles
            )
        except OSError:
            log.exception("the finished video could not be kept for sharing")
            return None


def _shared(recording: Recording) -> Recording:
    """A recording that several runs may read: its sound made read-only, so that none can change it for the others."""
    recording.audio.flags.writeable = False
    return recording
