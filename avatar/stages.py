"""Threads joined by bounded queues and stopped by one flag: the shape of a run's pipeline.

Each stage runs in its own thread and hands what it makes to the next through a bounded
queue, so a fast stage waits for a slow one instead of filling memory. Every queue
operation polls the shared cancel flag, so Stop ends every thread within one item. An error
in a stage travels down the queue in place of the next item and is raised where the next
stage reads it, so it reaches the caller with its own type and traceback.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Generic, TypeVar

# How often a waiting queue operation looks at the cancel flag: the longest a stage
# waits after Stop, beyond the item it is working on.
POLL_SECONDS = 0.1
# How long stopping waits for each thread; a thread still stuck in a library call after
# that is a daemon and dies with the process.
JOIN_SECONDS = 5.0

Item = TypeVar("Item")


class RunCancelled(Exception):
    """The user pressed Stop or left the page."""


class _Done:
    """Put after a stage's last item, so the reader knows the stream ended rather than stalled."""


_DONE = _Done()


class Handover(Generic[Item]):
    """A bounded queue between two stages whose every wait gives way to the cancel flag.

    Iterating it yields the items until the stage before it is done, and raises that stage's
    error, if it failed, or RunCancelled once the run is cancelled.
    """

    def __init__(self, cancel: threading.Event, size: int) -> None:
        self._cancel = cancel
        self._queue: queue.Queue[Item | BaseException | _Done] = queue.Queue(size)

    def put(self, item: Item | BaseException | _Done) -> None:
        while not self._cancel.is_set():
            try:
                self._queue.put(item, timeout=POLL_SECONDS)
                return
            except queue.Full:
                continue
        raise RunCancelled

    def __iter__(self) -> Iterator[Item]:
        while not self._cancel.is_set():
            try:
                item = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if isinstance(item, _Done):
                return
            if isinstance(item, BaseException):
                raise item
            yield item
        raise RunCancelled


class Stages:
    """The threads of one run: start each with `stage`, read the last handover, then `stop`."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._threads: list[threading.Thread] = []

    def stage(self, name: str, produce: Callable[[], Generator[Item, None, None]], size: int = 0) -> Handover[Item]:
        """Run the generator `produce` in a thread of its own; what it yields comes out of the returned handover.

        On cancel or error the generator is closed, so its `finally` blocks release what it holds.

        `size` bounds the handover (0: unbounded, for the last stage, whose reader is the page).
        The thread runs in a copy of the caller's context, so the visitor's request goes with
        the work (ZeroGPU charges a GPU booking to the visitor it finds there).
        """
        output: Handover[Item] = Handover(self._cancel, size)
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(self._hand_on, produce, output), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()
        return output

    def stop(self) -> None:
        """Cancel whatever still runs and wait for every thread to notice."""
        self._cancel.set()
        for thread in self._threads:
            thread.join(timeout=JOIN_SECONDS)

    @staticmethod
    def _hand_on(produce: Callable[[], Generator[Item, None, None]], output: Handover[Item]) -> None:
        """Hand on all that `produce` makes, then the end; an error goes on instead, to be raised downstream."""
        try:
            with closing(produce()) as items:
                for item in items:
                    output.put(item)
            output.put(_DONE)
        except RunCancelled:
            return
        except BaseException as error:  # handed to the reader, which raises it
            try:
                output.put(error)
            except RunCancelled:
                pass
