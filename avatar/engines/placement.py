"""Where a face's chunks are drawn: in the run's own thread, batched on an engine's device thread, or on replicas.

A `Placement` is composed around an engine, as a diffusers pipeline composes a model and its scheduler:
`Unbatched` (here) draws each step at once in the thread that asks for it; `BatchScheduler`
(scheduler.py) batches the steps of concurrent runs on the engine's one device thread; avatar/serving's
`ServedReplicas` sends them to Ray Serve replicas that hold the engine. A `LoadedEngine` (loaded.py)
wraps any of them, so a run never knows which it draws through.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

import numpy as np

from avatar.engines.base import Engine, FaceCrop, SpeechChunk

EngineT = TypeVar("EngineT", bound=Engine)


class Placement(Protocol):
    """How a face's chunks reach an engine: `open` the face once, then `step` one chunk at a time."""

    @property
    def engine(self) -> Engine | None:
        """The engine itself, where it runs in this process; None where it runs on other hosts."""

    @property
    def chunk_frames(self) -> int | None:
        """Frames a step draws per face; None: any whole number of frames."""

    @property
    def where(self) -> str:
        """Where the engine runs, as the page says it ("CPU", "cuda:1", "Ray Serve, 2 replicas on CUDA")."""

    def prepare(self, face: FaceCrop) -> None:
        """The engine's per-face work ahead of time, where it keeps it."""

    def open(self, face: FaceCrop) -> object:
        """The face's drawing state, for its steps."""

    def step(self, state: object, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """One chunk of the face's speech, drawn: its frames, piece by piece."""


class InProcess(Generic[EngineT]):
    """A placement holding its engine in this process: where it runs and its chunk length are the engine's."""

    def __init__(self, engine: EngineT) -> None:
        self.engine = engine

    @property
    def chunk_frames(self) -> int | None:
        return self.engine.chunk_frames

    @property
    def where(self) -> str:
        device = self.engine.device
        return device.type.upper() if device.index is None else str(device)

    def prepare(self, face: FaceCrop) -> None:
        self.engine.prepare(face)


class Unbatched(InProcess[EngineT]):
    """Each step drawn at once in the thread that asks for it: runs draw side by side, each in its own thread."""

    def open(self, face: FaceCrop) -> object:
        return self.engine.open(face)

    def step(self, state: object, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        self.engine.check(state, chunk)
        for frames in self.engine.draw([state], [chunk]):
            yield frames[0]
