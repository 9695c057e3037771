"""The batching scheduler: sessions join and leave a running batch at chunk boundaries, on one device thread."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch

from avatar.engines.base import Engine, FaceCrop, SpeechChunk
from avatar.engines.scheduler import Batching, BatchScheduler, Playback

CHUNK_FRAMES = 50  # two seconds of playback a chunk: far more than any thread's timing jitter


class Voice:
    """One session of the tally engine: its number."""

    def __init__(self, number: int) -> None:
        self.number = number


class Tally(Engine):
    """Draws each session's chunk as frames filled with its number, and remembers the numbers of every step."""

    device = torch.device("cpu")
    chunk_frames = CHUNK_FRAMES

    def __init__(self) -> None:
        self.steps: list[list[int]] = []
        self.threads: set[str] = set()
        self.failing: set[int] = set()

    def open(self, face: FaceCrop) -> Voice:
        raise NotImplementedError

    def check(self, state: Voice, chunk: SpeechChunk) -> None:
        if chunk.frames > CHUNK_FRAMES:
            raise ValueError("too many frames")

    def draw(self, states: list[Voice], chunks: list[SpeechChunk]) -> Iterator[list[np.ndarray]]:
        self.steps.append([state.number for state in states])
        self.threads.add(threading.current_thread().name)
        if self.failing & {state.number for state in states}:
            raise RuntimeError("the device failed")
        pairs = zip(states, chunks, strict=True)
        yield [np.full((chunk.frames, 1, 1, 3), state.number, np.uint8) for state, chunk in pairs]


def tally(batching: Batching, engine: Tally | None = None) -> BatchScheduler[Tally]:
    """A tally engine behind its batching scheduler, whose device thread is called "tally-device"."""
    return BatchScheduler(engine or Tally(), "tally-device", batching)


def a_chunk(frames: int = CHUNK_FRAMES) -> SpeechChunk:
    return SpeechChunk(np.zeros(frames * 640, np.float32), frames)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


class Visitor(threading.Thread):
    """A session in a thread of its own: one chunk after another, the first `allowed` at once, then as allowed."""

    def __init__(
        self,
        scheduler: BatchScheduler[Tally],
        voice: Voice,
        chunks: int,
        allowed: int | None = None,
        stop_after: int | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.scheduler, self.voice, self.chunks, self.stop_after = scheduler, voice, chunks, stop_after
        self.frames: list[np.ndarray] = []
        self.error: Exception | None = None
        self.go = threading.Semaphore(chunks if allowed is None else allowed)
        self.start()

    def allow(self) -> None:
        self.go.release()

    def run(self) -> None:
        try:
            for index in range(self.chunks):
                self.go.acquire()
                steps = self.scheduler.step(self.voice, a_chunk(CHUNK_FRAMES + (self.voice.number < 0)))
                self.frames.append(next(steps))
                if index + 1 == self.stop_after:
                    steps.close()  # the visitor left: the frames were in hand, the step is not read to its end
                    return
                assert next(steps, None) is None
        except Exception as error:
            self.error = error

    def result(self) -> list[np.ndarray]:
        self.join(timeout=10)
        assert not self.is_alive()
        return self.frames


class Held:
    """Keeps the device thread busy with a call until released, so that chunks pile up meanwhile."""

    def __init__(self, scheduler: BatchScheduler[Tally]) -> None:
        self.scheduler = scheduler
        self.release = threading.Event()
        started = threading.Event()
        self.thread = threading.Thread(
            target=scheduler.call, args=(lambda: (started.set(), self.release.wait()),), daemon=True
        )
        self.thread.start()
        started.wait(10)

    def until_waiting(self, chunks: int) -> None:
        wait_until(lambda: self.scheduler.waiting() == chunks)
        self.release.set()


def numbers(visitor: Visitor) -> set[int]:
    return {int(frames.flat[0]) for frames in visitor.result()}


def test_sessions_that_hand_in_chunks_together_share_one_step_and_each_gets_its_own_frames():
    scheduler = tally(Batching(largest=4))
    held = Held(scheduler)
    visitors = [Visitor(scheduler, Voice(n), chunks=1) for n in (1, 2, 3)]
    held.until_waiting(3)
    assert [numbers(v) for v in visitors] == [{1}, {2}, {3}]
    assert [sorted(step) for step in scheduler.engine.steps] == [[1, 2, 3]]
    assert all(v.result()[0].shape == (CHUNK_FRAMES, 1, 1, 3) for v in visitors)


def test_a_session_that_arrives_during_a_step_starts_its_first_chunk_in_the_next_step():
    scheduler = tally(Batching(largest=4))
    first = Visitor(scheduler, Voice(1), chunks=3, allowed=1)
    wait_until(lambda: len(first.frames) == 1)
    held = Held(scheduler)
    first.allow()
    newcomer = Visitor(scheduler, Voice(2), chunks=1)
    held.until_waiting(2)
    first.allow()
    assert numbers(newcomer) == {2} and numbers(first) == {1}
    assert scheduler.engine.steps[0] == [1] and 2 in scheduler.engine.steps[1]


def test_new_sessions_go_first_then_the_one_whose_viewer_runs_out_of_frames_soonest():
    assert Playback().deadline(asked=5.0) == 5.0
    played = Playback()
    played.drawn(50, now=10.0)
    assert played.deadline(asked=99.0) == 12.0  # 50 frames at 25 fps last two seconds

    scheduler = tally(Batching(largest=1))
    ahead = Visitor(scheduler, Voice(1), chunks=3, allowed=2)
    behind = Visitor(scheduler, Voice(2), chunks=2, allowed=1)
    wait_until(lambda: len(ahead.frames) == 2 and len(behind.frames) == 1)  # 4 s of frames against 2 s
    held = Held(scheduler)
    ahead.allow()
    behind.allow()
    newcomer = Visitor(scheduler, Voice(3), chunks=1)
    held.until_waiting(3)
    for visitor in (ahead, behind, newcomer):
        visitor.result()
    assert scheduler.engine.steps[-3:] == [[3], [2], [1]]


def test_a_step_takes_every_waiting_session_up_to_the_largest_batch():
    assert [Batching(largest=8).take(waiting) for waiting in range(1, 11)] == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8]


def test_sessions_beyond_the_largest_batch_ride_the_next_step_most_urgent_first():
    scheduler = tally(Batching(largest=2))
    first = Visitor(scheduler, Voice(1), chunks=2, allowed=1)
    wait_until(lambda: len(first.frames) == 1)  # two seconds of frames in hand: less urgent than a newcomer
    held = Held(scheduler)
    first.allow()
    newcomers = [Visitor(scheduler, Voice(n), chunks=1) for n in (2, 3)]
    held.until_waiting(3)
    for visitor in (first, *newcomers):
        visitor.result()
    assert [sorted(step) for step in scheduler.engine.steps[1:]] == [[2, 3], [1]]


def test_a_refused_chunk_fails_its_own_session_and_no_other():
    scheduler = tally(Batching(largest=4))
    held = Held(scheduler)
    refused, fine = Visitor(scheduler, Voice(-1), chunks=1), Visitor(scheduler, Voice(2), chunks=2)
    held.until_waiting(1)
    assert numbers(fine) == {2} and not fine.error
    assert refused.result() == [] and isinstance(refused.error, ValueError)
    assert all(-1 not in step for step in scheduler.engine.steps)


def test_a_step_that_fails_fails_its_sessions_only_and_the_next_step_is_drawn():
    scheduler = tally(Batching(largest=4))
    scheduler.engine.failing = {1}
    failed = Visitor(scheduler, Voice(1), chunks=1)
    assert failed.result() == [] and str(failed.error) == "the device failed"
    later = Visitor(scheduler, Voice(2), chunks=2)
    assert numbers(later) == {2} and not later.error


def thread_name() -> str:
    return threading.current_thread().name


class Nesting(Tally):
    """Makes a call of its scheduler inside each step."""

    nested: list[str] = []
    scheduler: BatchScheduler[Tally]

    def draw(self, states: list[Voice], chunks: list[SpeechChunk]) -> Iterator[list[np.ndarray]]:
        self.nested = [*self.nested, self.scheduler.call(thread_name)]
        yield from super().draw(states, chunks)


def test_calls_and_steps_run_on_one_thread_and_a_call_made_on_it_runs_at_once():
    nesting = Nesting()
    scheduler = nesting.scheduler = tally(Batching(largest=2), nesting)
    assert scheduler.call(thread_name) == "tally-device"
    assert numbers(Visitor(scheduler, Voice(1), chunks=1)) == {1}
    assert nesting.nested == ["tally-device"] and nesting.threads == {"tally-device"}


def test_the_next_step_waits_for_the_sessions_of_the_step_before_but_not_for_one_that_left():
    scheduler = tally(Batching(largest=4, gather=5.0))
    held = Held(scheduler)
    pair = [Visitor(scheduler, Voice(1), chunks=3), Visitor(scheduler, Voice(2), chunks=3)]
    held.until_waiting(2)
    for visitor in pair:
        visitor.result()
    assert [sorted(step) for step in scheduler.engine.steps] == [[1, 2]] * 3

    scheduler.engine.steps.clear()
    held = Held(scheduler)
    leaving, staying = Visitor(scheduler, Voice(3), chunks=2, stop_after=1), Visitor(scheduler, Voice(4), chunks=2)
    held.until_waiting(2)
    start = time.monotonic()
    assert numbers(staying) == {4} and numbers(leaving) == {3}
    assert time.monotonic() - start < 2.5  # not held up by the 5 s wait for the visitor who left
    assert [sorted(step) for step in scheduler.engine.steps] == [[3, 4], [4]]


def test_the_device_thread_ends_when_its_scheduler_is_dropped():
    scheduler = BatchScheduler(Tally(), "tally-dropped", Batching())
    scheduler.call(lambda: None)
    (thread,) = [t for t in threading.enumerate() if t.name == "tally-dropped"]
    del scheduler
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
