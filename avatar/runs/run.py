"""One run: speech -> frames -> segments, as a pipeline of threads with bounded queues.

The next piece of speech is made while the last one's frames are drawn, and frames are encoded the
moment they exist, through the run's one sink (the live stream, or else MP4 segments:
`avatar/sinks/`), so the first picture comes long before the last word is spoken. The first
segment is short, so that it is ready sooner; the rest are longer, so that the player has
fewer joins. Encoding has its own thread: neither the engine nor a slow page waits for it.
The threads are `avatar/stages.py`'s. The run owns a temporary folder that is removed when
it ends, fails or is cancelled. Where the speech comes from (typed text and a voice, or a
recording) is the run's `SpeechSource`; whether it waits in line and on which engine is the run
service's (`avatar/runs/service.py`).

Every piece's words, with the times the voice or the aligner gave them, are put on the run's timeline
where its audio is joined, so the captions (`avatar/captions.py`) are the video's. The page
gets them before the frames they go with: the encoder hands them on before it encodes.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Generator, Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.captions import Cue, cue_lines, write_webvtt
from avatar.config import FPS
from avatar.engines.animate import animate
from avatar.engines.loaded import LoadedEngine
from avatar.errors import UserFacingError
from avatar.faces import Face
from avatar.live_stream import Broadcast
from avatar.media import AUDIO_RATE
from avatar.paste_back import Compositor, compositor
from avatar.sinks.base import Sink
from avatar.sinks.live import LiveSink
from avatar.sinks.segments import SegmentSink
from avatar.speech.sources import SpeechSource
from avatar.speech.utterance import Utterance, Word
from avatar.stages import RunCancelled, Stages

__all__ = ["CaptionsReady", "Run", "RunCancelled", "RunFinished", "RunStats", "SegmentReady"]

# Sentences spoken ahead of the engine; chunks of frames drawn ahead of the encoder.
SPEECH_AHEAD = 4
FRAMES_AHEAD = 16
@dataclass
class RunStats:
    """What the status line reports: who made it and how fast."""

    engine: str
    voice: str
    notice: str = ""
    speech_ready: float = 0.0
    first_segment: float = 0.0
    total: float = 0.0
    audio_seconds: float = 0.0
    frames: int = 0

    @property
    def real_time_factor(self) -> float:
        """Seconds of work per second of speech (below 1 is faster than real time)."""
        return self.total / self.audio_seconds if self.audio_seconds else 0.0


@dataclass(frozen=True)
class SegmentReady:
    """Another stretch of the video is done: as an MP4 file, or (path None) in the live stream."""

    path: Path | None
    index: int
    start: float
    duration: float


@dataclass(frozen=True)
class CaptionsReady:
    """More words were spoken: the captions so far, every line on the video's timeline.

    Comes before the frames of those words, so a page has the captions before it shows them.
    """

    cues: tuple[Cue, ...]


@dataclass(frozen=True)
class RunFinished:
    """The whole video is done; it and its captions file (WebVTT, None without captions) stay until the events end."""

    video: Path
    stats: RunStats
    cues: tuple[Cue, ...] = ()
    subtitles: Path | None = None


class _Timeline:
    """Full-quality speech so far, and its words, shared by the speech thread and the encoder.

    Joined as each sentence arrives, so the encoder's many reads cost nothing. A sentence's
    words move by the length of the audio before it, so they stay where their sound is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._audio = np.zeros(0, np.float32)
        self._words: tuple[Word, ...] = ()

    def append(self, utterance: Utterance) -> None:
        """Add a sentence at AUDIO_RATE after the ones before it."""
        with self._lock:
            start = len(self._audio) / AUDIO_RATE
            self._audio = np.concatenate([self._audio, utterance.audio])
            self._words += tuple(word.shifted(start) for word in utterance.words)

    def audio(self) -> np.ndarray:
        with self._lock:
            return self._audio

    def words(self) -> tuple[Word, ...]:
        with self._lock:
            return self._words


class Run:
    """A face saying one piece of speech through one engine; iterate `events()` to drive it.

    Frames go to one sink, chosen here: the live stream when the page plays one, else MP4 segments.
    """

    def __init__(
        self,
        face: Face,
        speech: SpeechSource,
        engine: LoadedEngine,
        work_dir: Path,
        segment_seconds: float = 1.0,
        first_segment_seconds: float = 0.4,
        live: Broadcast | None = None,
        max_video_side: int = 512,
    ) -> None:
        self.face = face
        self.max_video_side = max_video_side
        self.speech = speech
        self.engine = engine
        self.segment_frames = max(1, round(segment_seconds * FPS))
        self.first_segment_frames = max(1, min(round(first_segment_seconds * FPS), self.segment_frames))
        self.live = live
        work_dir.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="run-", dir=work_dir))
        self.sink: Sink = LiveSink(live) if live is not None else SegmentSink(self.folder)
        self.stats = RunStats(engine=f"{engine.info.label} ({engine.info.device})", voice=speech.label)
        self._cancel = threading.Event()
        self._timeline = _Timeline()
        self._started = 0.0

    def cancel(self) -> None:
        """Stop within one chunk; the threads notice and end, and the folder is removed."""
        self._cancel.set()

    def events(self) -> Iterator[CaptionsReady | SegmentReady | RunFinished]:
        """Segments as they are made, then the whole video; cleans up however it ends.

        Each event's files stay until the run ends: copy what must outlive it.
        """
        self._started = time.perf_counter()
        stages = Stages(self._cancel)
        # A source that is not made ahead (a recording's aligned pieces) is asked in the engine's thread.
        utterances = stages.stage("speech", self._speech, SPEECH_AHEAD) if self.speech.made_ahead else self._speech()
        frames = stages.stage("engine", lambda: self._frames(utterances), FRAMES_AHEAD)
        try:
            yield from stages.stage("encoder", lambda: self._encode(frames))
        finally:
            stages.stop()
            shutil.rmtree(self.folder, ignore_errors=True)

    def _speech(self) -> Generator[Utterance, None, None]:
        """The speech stage: each piece made, kept at full quality for the video, handed to the engine (which
        takes it to 16 kHz); in a thread of its own when the source is made ahead, else as the engine asks."""
        for utterance in self.speech.utterances():
            self._timeline.append(utterance.resampled(AUDIO_RATE))
            if not self.stats.speech_ready:
                self.stats.speech_ready = time.perf_counter() - self._started
            yield utterance

    def _frames(self, utterances: Iterable[Utterance]) -> Generator[np.ndarray, None, None]:
        """The engine stage: frames of each piece of speech as soon as it is made, in the face's framing.

        The one place framing happens, after any engine drew its square (here, batched, on ZeroGPU or
        on a replica): the whole photo gets the animated face put back; a close-up passes through.
        """
        framed: Compositor | None = None
        for frames in animate(self.engine, self.face, utterances):
            framed = framed or compositor(self.face, frames.shape[1], self.max_video_side)
            yield framed.compose(frames)

    def words(self) -> tuple[Word, ...]:
        """Every word spoken so far, on the run's timeline (seconds from the video's start)."""
        return self._timeline.words()

    def _encode(
        self, chunks: Iterable[np.ndarray]
    ) -> Generator[CaptionsReady | SegmentReady | RunFinished, None, None]:
        """The encoder stage: frames into the sink as they come, a segment whenever enough are in, then the video.

        New words go on as captions before the frames that show them are encoded.
        """
        written = segmented = index = captioned = 0
        with closing(self.sink):
            for frames in chunks:
                words = self._timeline.words()
                if len(words) > captioned:
                    captioned = len(words)
                    yield CaptionsReady(cue_lines(words))
                self.sink.write(frames, self._timeline.audio(), written)
                written += len(frames)
                while written - segmented >= (length := self._segment_length(index)):
                    yield self._segment(index, segmented, length)
                    segmented, index = segmented + length, index + 1
            if not written:
                raise UserFacingError("The voice produced no sound for this text. Please try other words.")
            if written > segmented:
                yield self._segment(index, segmented, written - segmented)
            audio = self._timeline.audio()
            cues = cue_lines(self._timeline.words(), until=written / FPS)
            subtitles = write_webvtt(cues, self.folder / "talking-photo.vtt") if cues else None
            video = self.sink.finish(audio, self.folder / "talking-photo.mp4", subtitles)
        self.stats.frames = written
        self.stats.audio_seconds = len(audio) / AUDIO_RATE
        self.stats.total = time.perf_counter() - self._started
        self.stats.notice = " ".join(part for part in (self.stats.notice, self.speech.notice) if part)
        yield RunFinished(video, self.stats, cues, subtitles)

    def _segment_length(self, index: int) -> int:
        """Frames in segment `index`: the first is short, so that it is ready sooner; the rest make fewer joins."""
        return self.segment_frames if index else self.first_segment_frames

    def _segment(self, index: int, first_frame: int, count: int) -> SegmentReady:
        path = self.sink.segment(self._timeline.audio(), first_frame, count)
        if not self.stats.first_segment:
            self.stats.first_segment = time.perf_counter() - self._started
        return SegmentReady(path, index, first_frame / FPS, count / FPS)
