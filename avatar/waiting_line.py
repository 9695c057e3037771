"""A fair line for each engine: a few runs at once, a bounded number waiting, and each visitor told their place.

Gradio's own queue refuses a full queue with an error and cannot limit per engine; this
line lets the page say "you are number 3" while waiting and "busy, try again" when full.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from avatar.errors import UserFacingError

# How often a waiting visitor's place is re-announced, in seconds.
ANNOUNCE_SECONDS = 1.0


class Place:
    """One visitor's place; `wait()` yields how many are ahead until the run may start."""

    def __init__(self, line: WaitingLine, engine: str) -> None:
        self._line = line
        self.engine = engine
        self.admitted = False

    def wait(self) -> Iterator[int]:
        """Yield the visitor's number in line (1 = next) at once and then every few seconds; return once admitted."""
        while True:
            with self._line._changed:
                number = self._line._number_in_line(self)
            if number == 0:
                return
            yield number
            with self._line._changed:
                if self._line._number_in_line(self):
                    self._line._changed.wait(ANNOUNCE_SECONDS)


class WaitingLine:
    """Per-engine running slots (`slots[engine]`, one for an engine not named) and at most `max_waiting` waiting."""

    def __init__(self, max_waiting: int, slots: dict[str, int]) -> None:
        self.max_waiting = max_waiting
        self.slots = dict(slots)
        self._changed = threading.Condition()
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[Place]] = {}

    def waiting(self) -> int:
        with self._changed:
            return sum(len(line) for line in self._waiting.values())

    def _number_in_line(self, place: Place) -> int:
        """0 once `place` holds a slot (taking a free one if it is first), else its number in line."""
        if place.admitted:
            return 0
        line = self._waiting[place.engine]
        if line[0] is place and self._running.get(place.engine, 0) < self.slots.get(place.engine, 1):
            line.popleft()
            self._running[place.engine] = self._running.get(place.engine, 0) + 1
            place.admitted = True
            self._changed.notify_all()
            return 0
        return line.index(place) + 1

    @contextmanager
    def place(self, engine: str) -> Iterator[Place]:
        """A place in `engine`'s line, given up on leaving the block; `UserFacingError` when the line is full."""
        with self._changed:
            if self.waiting() >= self.max_waiting:
                raise UserFacingError(
                    f"The demo is busy: {self.max_waiting} people are already waiting. "
                    "Please try again in a minute."
                )
            place = Place(self, engine)
            self._waiting.setdefault(engine, deque()).append(place)
        try:
            yield place
        finally:
            with self._changed:
                if place.admitted:
                    self._running[engine] -= 1
                else:
                    self._waiting[engine].remove(place)
                self._changed.notify_all()
