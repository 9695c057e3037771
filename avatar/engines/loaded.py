"""An engine as the app holds it: named by its spec, drawing through its placement, one `TalkingFace` per run.

This is the one object a run draws with, and the one the registry hands out: whether the engine draws
here one face at a time, batches the faces of concurrent runs on its device thread, or runs on Ray
Serve replicas is its placement's, which the run never sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from avatar.engines.base import Engine, FaceCrop, SpeechChunk, SpeechChunker
from avatar.engines.placement import Placement
from avatar.speech.utterance import Utterance


@dataclass(frozen=True)
class EngineInfo:
    """What the page tells the user about a loaded engine."""

    key: str
    label: str
    device: str


class TalkingFace:
    """One face talking through an engine for a run: sentences in, frames out as soon as each chunk is drawn."""

    def __init__(self, placement: Placement, face: FaceCrop) -> None:
        self.placement = placement
        self.state = placement.open(face)
        self.chunker = SpeechChunker(placement.chunk_frames)

    def push(self, utterance: Utterance) -> Iterator[np.ndarray]:
        """Frames for this sentence; a chunked engine holds back a tail until the next sentence or `finish`."""
        for chunk in self.chunker.push(utterance):
            yield from self._draw(chunk)

    def finish(self) -> Iterator[np.ndarray]:
        """The frames still owed for speech already pushed."""
        for chunk in self.chunker.finish():
            yield from self._draw(chunk)

    def _draw(self, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        for frames in self.placement.step(self.state, chunk):
            if len(frames):
                yield frames


@dataclass(frozen=True, eq=False)
class LoadedEngine:
    """An engine ready for runs, under its spec's key and label (`EngineSpec.loaded`)."""

    key: str
    label: str
    placement: Placement

    @property
    def engine(self) -> Engine | None:
        """The engine itself where it runs in this process; None where it runs on other hosts."""
        return self.placement.engine

    @property
    def info(self) -> EngineInfo:
        return EngineInfo(self.key, self.label, self.placement.where)

    @property
    def uses_gpu(self) -> bool:
        """Whether this process draws on a GPU for it (a ZeroGPU Space then books one per run)."""
        return self.engine is not None and self.engine.uses_gpu

    @property
    def gpu_seconds_per_speech_second(self) -> float:
        """GPU time a second of speech takes here at most, for booking ZeroGPU; none for an engine on other hosts."""
        return 0.0 if self.engine is None else self.engine.gpu_seconds_per_speech_second

    @property
    def chunk_frames(self) -> int | None:
        return self.placement.chunk_frames

    def prepare(self, face: FaceCrop) -> None:
        """Do the engine's per-face work now (when the user picks a photo), so that a run starts sooner."""
        self.placement.prepare(face)

    def start(self, face: FaceCrop) -> TalkingFace:
        """`face` talking for a run, fed sentence by sentence."""
        return TalkingFace(self.placement, face)

    def open(self, face: FaceCrop) -> object:
        """The face's drawing state, for `step` (a replica's way: it holds states for the app's runs)."""
        return self.placement.open(face)

    def step(self, state: object, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """One chunk of a face opened with `open`, drawn: its frames, piece by piece."""
        return self.placement.step(state, chunk)
