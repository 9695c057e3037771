"""The one interface every lip-sync engine implements.

An engine is loaded once per process. For each run it prepares the chosen face once
(`start`), then turns 16 kHz speech into 25 fps frames sentence by sentence (`push`), and
finally renders whatever audio is left (`finish`). Frames come out as soon as they exist,
so the page can start playing while later sentences are still being spoken.
"""

from __future__ import annotations

import uuid
import weakref
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


# Every engine of this process by handle, so that an engine can travel by pickle as a reference.
_ENGINES: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()


def _engine_by_handle(handle: str) -> Engine:
    engine = _ENGINES.get(handle)
    if engine is None:
        raise EngineUnavailable("This engine was loaded after the GPU worker started; please restart the app.")
    return engine


class Engine(ABC):
    """A lip-sync engine: turns a face plus speech into frames of that face talking."""

    info: EngineInfo
    # Whether the engine draws on a CUDA GPU (on ZeroGPU, such engines run inside `spaces.GPU`).
    uses_gpu: bool = False
    # GPU time a second of speech takes at most, for booking a ZeroGPU GPU (a shared GPU slice is slower).
    gpu_seconds_per_speech_second: float = 1.0

    def __new__(cls, *args: object, **kwargs: object) -> Engine:
        engine = super().__new__(cls)
        engine.handle = uuid.uuid4().hex
        _ENGINES[engine.handle] = engine
        return engine

    def __reduce__(self) -> tuple[object, tuple[str]]:
        """An engine pickles as a reference to itself, never its weights.

        ZeroGPU's GPU worker is forked from this process, so it already holds the same engine under
        the same handle; only the handle needs to travel.
        """
        return (_engine_by_handle, (self.handle,))

    @abstractmethod
    def start(self, face: Face) -> EngineSession:
        """Prepare `face` once for a run (encode it, find its rest pose)."""

    def prepare(self, face: Face) -> None:
        """Do the per-face work ahead of time (when the user picks a photo), for engines that keep it.

        Engines that prepare nothing reusable leave this as it is: a run then prepares at `start`.
        """
        return
