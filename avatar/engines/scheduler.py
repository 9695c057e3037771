"""Continuous batching of talking faces on an engine's one device thread: a placement composed around an engine.

Many visitors speak at once, and a GPU draws a batch of faces in little more time than one. So
each talking face hands in one chunk at a time (`step`), and before every step the thread takes the
chunks that are waiting, most urgent first, and draws them as one batch; each face gets its
frames as soon as that batch is drawn, and hands in its next chunk. Faces join and leave the
running batch at these chunk boundaries without a word: a run that finished, was stopped or
whose visitor left simply hands in no more chunks.

The same thread makes the engine's other device calls (`call`: opening a face, warming up) between
steps: CUDA graphs belong to the thread that recorded them, and one thread keeps one step in flight.
The engine itself knows nothing of this thread. A process forked from this one (ZeroGPU's GPU worker)
inherits no threads, so it starts its own.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from avatar.config import FPS
from avatar.engines.base import Engine, FaceCrop, SpeechChunk
from avatar.engines.placement import EngineT, InProcess

T = TypeVar("T")

# How long a step waits for the sessions of the step before to hand in their next chunk. They do so as
# soon as their frames are passed on (well under a millisecond, a few with busy threads); without the
# wait, the first to come back would start a batch of one and the others would ride the step after.
# A session that has ended costs the next step this wait once.
GATHER_SECONDS = 0.01


@dataclass(frozen=True)
class Batching:
    """How many sessions a step draws: every waiting one, up to `largest`, the most urgent first; the others
    ride the next step. A step waits up to `gather` seconds for the sessions of the step before (see
    GATHER_SECONDS)."""

    largest: int = 1
    gather: float = GATHER_SECONDS

    def take(self, waiting: int) -> int:
        """How many of `waiting` sessions (at least one) the next step draws."""
        return min(waiting, self.largest)


@dataclass(eq=False)
class Playback:
    """Where one session's playback stands, as if it started the moment its first frames were drawn."""

    started: float | None = None
    frames: int = 0

    def deadline(self, asked: float) -> float:
        """When the session's viewer runs out of frames; for a new session, when it asked for its first."""
        return asked if self.started is None else self.started + self.frames / FPS

    def drawn(self, frames: int, now: float) -> None:
        if self.started is None:
            self.started = now
        self.frames += frames


@dataclass(eq=False)
class _Request:
    """One session's chunk, waiting for a step or in one; its frames come back through `replies`."""

    state: object
    chunk: SpeechChunk
    playback: Playback
    asked: float
    replies: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    withdrawn: bool = False

    def urgency(self) -> tuple[bool, float]:
        """New sessions first (a visitor waits for the first picture), then the earliest playback deadline."""
        return self.playback.started is not None, self.playback.deadline(self.asked)


_DONE = object()


class BatchScheduler(InProcess[EngineT]):
    """The one thread that does an engine's device work, batching the steps of concurrent talking faces."""

    def __init__(self, engine: EngineT, name: str, batching: Batching | None = None) -> None:
        super().__init__(engine)
        self.name = name
        self.batching = batching or Batching()
        self._lock = threading.Lock()
        self._worker: _Worker | None = None

    def call(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the device thread, between steps; its result or error comes back here."""
        worker = self._running()
        if threading.current_thread() is worker.thread:
            return fn(*args)
        future: Future = Future()
        worker.add_call(fn, args, future)
        return future.result()

    def open(self, face: FaceCrop) -> object:
        return self.call(self.engine.open, face)

    def step(self, state: object, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """One session's chunk, drawn in the next step that takes it; its frames, piece by piece.

        A chunk the engine refuses fails here, in the session's own thread, before it joins a batch.
        Closing the iterator early drops the frames still to come; then, as after a refusal, the next
        step does not wait for this session.
        """
        worker = self._running()
        try:
            self.engine.check(state, chunk)
        except Exception:
            worker.leave(state)
            raise
        request = worker.submit(state, chunk)
        while (item := request.replies.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            try:
                yield item
            except GeneratorExit:
                worker.withdraw(request)
                raise

    def waiting(self) -> int:
        """Chunks handed in and not yet taken into a step (for monitoring and tests)."""
        return self._running().waiting()

    def _running(self) -> _Worker:
        """This process's device thread, started on first use (and again in a forked process)."""
        with self._lock:
            if self._worker is None or self._worker.pid != os.getpid():
                self._worker = _Worker(self)
            return self._worker


class _Worker:
    """The device thread of one process, with what waits for it: calls, and chunks of sessions."""

    def __init__(self, scheduler: BatchScheduler) -> None:
        self.pid = os.getpid()
        # Weakly, so that a dropped engine (and its scheduler) frees its GPU memory and its thread ends.
        self._scheduler = weakref.ref(scheduler)
        self._changed = threading.Condition()
        self._calls: deque[tuple[Callable, tuple, Future]] = deque()
        self._waiting: list[_Request] = []
        self._playbacks: dict[int, tuple[weakref.ref, Playback]] = {}
        # Sessions of the last step that have not handed in their next chunk yet, and until when to wait for them.
        self._expected: set[Playback] = set()
        self._gather_until = 0.0
        self._stopped = False
        self.thread = threading.Thread(target=self._serve, name=scheduler.name, daemon=True)
        self.thread.start()
        finaliser = weakref.finalize(scheduler, self.stop)
        finaliser.atexit = False

    def stop(self) -> None:
        if os.getpid() != self.pid:  # a forked copy: its thread was never started here
            return
        with self._changed:
            self._stopped = True
            self._changed.notify_all()

    def add_call(self, fn: Callable, args: tuple, future: Future) -> None:
        with self._changed:
            self._calls.append((fn, args, future))
            self._changed.notify_all()

    def submit(self, state: object, chunk: SpeechChunk) -> _Request:
        with self._changed:
            request = _Request(state, chunk, self._playback(state), time.monotonic())
            self._waiting.append(request)
            self._expected.discard(request.playback)
            self._changed.notify_all()
            return request

    def withdraw(self, request: _Request) -> None:
        """The session stopped listening to a chunk's frames: it is not expected back."""
        with self._changed:
            request.withdrawn = True
            self._expected.discard(request.playback)
            self._changed.notify_all()

    def leave(self, state: object) -> None:
        """The session of `state` hands in no chunk now: it is not expected back."""
        with self._changed:
            known = self._playbacks.get(id(state))
            if known is not None and known[0]() is state:
                self._expected.discard(known[1])
                self._changed.notify_all()

    def waiting(self) -> int:
        with self._changed:
            return len(self._waiting)

    def _playback(self, state: object) -> Playback:
        """The session's playback, known by its state for as long as the state lives."""
        key = id(state)
        known = self._playbacks.get(key)
        if known is None or known[0]() is not state:

            def forget(_: weakref.ref) -> None:
                self._playbacks.pop(key, None)

            known = (weakref.ref(state, forget), Playback())
            self._playbacks[key] = known
        return known[1]

    def _serve(self) -> None:
        while True:
            with self._changed:
                while not (self._calls or self._waiting or self._stopped):
                    self._changed.wait()
                if self._stopped:
                    return
                call = self._calls.popleft() if self._calls else None
            if call is not None:
                self._run_call(*call)
                continue
            scheduler = self._scheduler()
            if scheduler is None:
                return
            batch = self._next_batch(scheduler.batching)
            if batch:
                self._draw(scheduler.engine, batch, scheduler.batching.gather)
            del scheduler

    @staticmethod
    def _run_call(fn: Callable, args: tuple, future: Future) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn(*args))
        except BaseException as error:
            future.set_exception(error)

    def _next_batch(self, batching: Batching) -> list[_Request]:
        """The next step's chunks: the most urgent sessions'."""
        with self._changed:
            while self._gathering(batching):
                self._changed.wait(max(0.0, self._gather_until - time.monotonic()))
            if self._calls or not self._waiting:
                return []
            waiting = sorted(self._waiting, key=_Request.urgency)
            batch = waiting[: batching.take(len(waiting))]
            for request in batch:
                self._waiting.remove(request)
            return batch

    def _gathering(self, batching: Batching) -> bool:
        """Whether to wait a moment longer for the last step's sessions before starting the next step.

        Not for a new session (its first chunk starts at once), nor once the waiting chunks fill a step.
        """
        if self._calls or self._stopped or not self._expected or time.monotonic() >= self._gather_until:
            return False
        if any(request.playback.started is None for request in self._waiting):
            return False
        return len(self._waiting) < batching.largest

    def _draw(self, engine: Engine, batch: list[_Request], gather: float) -> None:
        """One step: every session of the batch gets its frames (or the step's error) as soon as there are some.

        The sessions are expected back before they are told the step is over, so none is back before that.
        """
        end: object = _DONE
        try:
            for pieces in engine.draw([r.state for r in batch], [r.chunk for r in batch]):
                now = time.monotonic()
                for request, frames in zip(batch, pieces, strict=True):
                    if len(frames):
                        request.playback.drawn(len(frames), now)
                        request.replies.put(frames)
        except Exception as error:
            end = error
        with self._changed:
            self._expected = {r.playback for r in batch if not r.withdrawn} if end is _DONE else set()
            self._gather_until = time.monotonic() + gather
        for request in batch:
            request.replies.put(end)
