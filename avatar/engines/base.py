"""The one interface every lip-sync engine implements.

An engine is loaded once per process. For each run it prepares the chosen face once
(`start`), then turns 16 kHz speech into 25 fps frames sentence by sentence (`push`), and
finally renders whatever audio is left (`finish`). Frames come out as soon as they exist,
so the page can start playing while later sentences are still being spoken.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avatar.faces import Face
from avatar.speech.utterance import Utterance


class EngineUnavailable(Exception):
    """An engine cannot run here (no GPU, no weights, no network); the message says which and why."""


@dataclass(frozen=True)
class EngineInfo:
    """What the page tells the user about an engine."""

    key: str
    label: str
    device: str


class EngineSession(ABC):
    """One face speaking: holds the per-run state (audio context, motion, rest pose)."""

    @abstractmethod
    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        """Frames for this sentence (16 kHz audio), as uint8 arrays (n, size, size, 3).

        An engine that works in fixed chunks may hold back a tail and emit it with the next
        sentence or at `finish`; over a whole run, the frame count is ceil(samples / 640).
        """

    @abstractmethod
    def finish(self) -> Iterator[np.ndarray]:
        """The frames still owed for audio already pushed."""


class Engine(ABC):
    """A lip-sync engine: turns a face plus speech into frames of that face talking."""

    info: EngineInfo

    @abstractmethod
    def start(self, face: Face) -> EngineSession:
        """Prepare `face` once for a run (encode it, find its rest pose)."""

    def prepare(self, face: Face) -> None:
        """Do the per-face work ahead of time (when the user picks a photo), for engines that keep it.

        Engines that prepare nothing reusable leave this as it is: a run then prepares at `start`.
        """
        return
