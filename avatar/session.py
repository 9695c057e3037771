"""One run: text -> speech -> frames -> segments, as a pipeline of threads with bounded queues.

Sentence 2 is synthesised while sentence 1's frames are drawn, and frames are encoded the
moment they exist (into the live stream, or else into MP4 segments), so the first picture
comes long before the last word is spoken. The first segment is short, so that it is ready
sooner; the rest are longer, so that the player has fewer joins. Encoding has its own
thread: neither the engine nor a slow page waits for it. The run owns a temporary folder
that is removed when it ends, fails or is cancelled.
"""

from __future__ import annotations

import contextvars
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.config import ENGINE_SAMPLE_RATE, FPS
from avatar.engines.animate import animate
from avatar.engines.base import Engine
from avatar.errors import UserFacingError
from avatar.faces import Face
from avatar.live_stream import Broadcast, LiveEncoder
from avatar.media import AUDIO_RATE, audio_span, encode_segment, join_segments, remux
from avatar.speech.text import split_sentences
from avatar.speech.utterance import Utterance
from avatar.speech.voices import Speaker

QUEUE_SIZE = 4
# A first sentence longer than this is spoken in two parts, split at its first comma, so that
# its opening clause (synthesised in about half the time) reaches the engine sooner.
QUICK_START_CHARS = 24
POLL_SECONDS = 0.1
_DONE = object()


def quick_start(sentences: list[str]) -> list[str]:
    """The sentences with the first one cut after its first comma, when that leaves two real parts."""
    if not sentences or len(sentences[0]) <= QUICK_START_CHARS:
        return sentences
    first = sentences[0]
    cut = min((first.find(mark) for mark in (", ", "; ", ": ") if first.find(mark) >= 8), default=-1)
    if cut < 0 or len(first) - cut < 8:
        return sentences
    return [first[: cut + 1], first[cut + 2 :], *sentences[1:]]


class RunCancelled(Exception):
    """The user pressed Stop or left the page."""


@dataclass
class RunStats:
    """What the status line reports: who made it and how fast."""

    engine: str
    voice: str
    notice: str = ""
    speech_ready: float = 0.0
    first_frame: float = 0.0
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
class RunFinished:
    video: Path
    stats: RunStats


class _Timeline:
    """Full-quality speech so far, shared by the speech thread and the encoder.

    Joined as each sentence arrives, so the encoder's many reads cost nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._audio = np.zeros(0, np.float32)

    def append(self, audio: np.ndarray) -> None:
        with self._lock:
            self._audio = np.concatenate([self._audio, audio])

    def audio(self) -> np.ndarray:
        with self._lock:
            return self._audio


class Run:
    """A face speaking a text with one voice and one engine; iterate `events()` to drive it."""

    def __init__(
        self,
        face: Face,
        text: str,
        speaker: Speaker,
        engine: Engine,
        work_dir: Path,
        segment_seconds: float = 1.0,
        first_segment_seconds: float = 0.4,
        live: Broadcast | None = None,
    ) -> None:
        self.face = face
        self.sentences = quick_start(split_sentences(text))
        self.speaker = speaker
        self.engine = engine
        self.segment_frames = max(1, round(segment_seconds * FPS))
        self.first_segment_frames = max(1, min(round(first_segment_seconds * FPS), self.segment_frames))
        self.live = live
        self._live_encoder: LiveEncoder | None = None
        work_dir.mkdir(parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="run-", dir=work_dir))
        self.stats = RunStats(engine=f"{engine.info.label} ({engine.info.device})", voice=speaker.option.label)
        self._cancel = threading.Event()
        self._utterances: queue.Queue = queue.Queue(QUEUE_SIZE)
        self._frames: queue.Queue = queue.Queue(QUEUE_SIZE * 4)
        self._segments: queue.Queue = queue.Queue()
        self._timeline = _Timeline()
        self._started = 0.0

    def cancel(self) -> None:
        """Stop within one chunk; the threads notice and end, and the folder is removed."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _put(self, target: queue.Queue, item: object) -> None:
        while not self._cancel.is_set():
            try:
                target.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise RunCancelled

    def _get(self, source: queue.Queue) -> object:
        while not self._cancel.is_set():
            try:
                item = source.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, BaseException):
                raise item
            return item
        raise RunCancelled

    def _stage(self, produce: Callable[[], Iterator[object]], output: queue.Queue) -> None:
        """One stage's thread: hand on all it makes, then _DONE; an error goes on to be raised downstream."""
        try:
            with closing(produce()) as items:
                for item in items:
                    self._put(output, item)
            self._put(output, _DONE)
        except RunCancelled:
            return
        except BaseException as error:  # handed to the consumer, which re-raises it
            self._safe_put(output, error)

    def _speech(self) -> Iterator[Utterance]:
        for sentence in self.sentences:
            utterance = self.speaker.speak(sentence)
            self._timeline.append(utterance.resampled(AUDIO_RATE).audio)
            if not self.stats.speech_ready:
                self.stats.speech_ready = time.perf_counter() - self._started
            yield utterance.resampled(ENGINE_SAMPLE_RATE)

    def _spoken(self) -> Iterator[Utterance]:
        while (utterance := self._get(self._utterances)) is not _DONE:
            yield utterance

    def _frames_of_speech(self) -> Iterator[np.ndarray]:
        for frames in animate(self.engine, self.face, self._spoken()):
            if not self.stats.first_frame:
                self.stats.first_frame = time.perf_counter() - self._started
            yield frames

    def _safe_put(self, target: queue.Queue, item: object) -> None:
        try:
            self._put(target, item)
        except RunCancelled:
            pass

    def events(self) -> Iterator[SegmentReady | RunFinished]:
        """Segments as they are encoded, then the whole video; cleans up however it ends.

        Each event's files stay until the run ends: copy what must outlive it.
        """
        self._started = time.perf_counter()
        stages = (
            ("speech", self._speech, self._utterances),
            ("engine", self._frames_of_speech, self._frames),
            ("encoder", self._segments_of_frames, self._segments),
        )
        # Each thread runs in a copy of the caller's context, so the visitor's request goes with the
        # work (ZeroGPU charges a GPU booking to the visitor it finds there).
        threads = [
            threading.Thread(
                target=contextvars.copy_context().run, args=(self._stage, produce, output), name=name, daemon=True
            )
            for name, produce, output in stages
        ]
        for thread in threads:
            thread.start()
        try:
            while (event := self._get(self._segments)) is not _DONE:
                yield event
        finally:
            self._cancel.set()
            for thread in threads:
                thread.join(timeout=5)
            shutil.rmtree(self.folder, ignore_errors=True)

    def _close_live(self) -> None:
        if self._live_encoder is not None:
            self._live_encoder.close()
            self._live_encoder = None
        elif self.live is not None:
            self.live.close()

    def _stream_live(self, frames: np.ndarray, first_frame: int) -> None:
        if self._live_encoder is None:
            self._live_encoder = LiveEncoder(frames.shape[2], frames.shape[1], self.live)
        self._live_encoder.write(frames, self._timeline.audio(), first_frame)

    def _segments_of_frames(self) -> Iterator[SegmentReady | RunFinished]:
        try:
            yield from self._encode_segments()
        finally:
            self._close_live()

    def _encode_segments(self) -> Iterator[SegmentReady | RunFinished]:
        """Frames into the live stream as they come, or else into MP4 segments; then the whole video.

        With a live stream, the segments are only counted (for progress: frames are not kept) and the
        final MP4 is the live stream remuxed, so every frame is encoded once.
        """
        pending: list[np.ndarray] = []
        pending_count = 0
        written = 0
        segments: list[Path] = []
        index = 0
        finished = False
        while not finished:
            item = self._get(self._frames)
            if item is _DONE:
                finished = True
            else:
                if self.live is not None:
                    self._stream_live(item, written + pending_count)
                else:
                    pending.append(item)
                pending_count += len(item)
            wanted = self.first_segment_frames if not index else self.segment_frames
            while pending_count >= wanted or (finished and pending_count):
                count = min(wanted, pending_count)
                path = None
                if self.live is None:
                    batch = np.concatenate(pending)
                    pending = [batch[count:]] if len(batch) > count else []
                    path = self.folder / f"segment-{index:04d}.mp4"
                    encode_segment(batch[:count], audio_span(self._timeline.audio(), written, count), path)
                    segments.append(path)
                pending_count -= count
                if not self.stats.first_segment:
                    self.stats.first_segment = time.perf_counter() - self._started
                yield SegmentReady(path, index, written / FPS, count / FPS)
                index += 1
                written += count
                wanted = self.segment_frames
        if not written:
            raise UserFacingError("The voice produced no sound for this text. Please try other words.")
        audio = self._timeline.audio()
        final = self.folder / "talking-photo.mp4"
        if self.live is None:
            video = join_segments(segments, audio, final)
        else:
            self._close_live()
            video = remux(self.live.contents(), final)
        self.stats.frames = written
        self.stats.audio_seconds = len(audio) / AUDIO_RATE
        self.stats.total = time.perf_counter() - self._started
        self.stats.notice = " ".join(part for part in (self.stats.notice, self.speaker.notice) if part)
        yield RunFinished(video, self.stats)
