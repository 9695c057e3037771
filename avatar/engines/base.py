"""The one interface every lip-sync engine implements, for one face or many at once.

An engine is loaded once per process (or once per replica, on another host). `open` prepares a face
once; then its speech, cut into chunks (`SpeechChunker`), is drawn a step at a time: `draw` turns the
chunks of several faces into frames in one step. An engine that cannot batch implements `draw_one` and
gets the loop over faces for free. Where and when the steps are drawn (in the run's own thread, batched
on the engine's device thread, on a Ray Serve replica) is its placement's business (placement.py), and
what a run holds is a `LoadedEngine` (loaded.py). Everything that crosses this interface is small and
plain (a face crop with its landmarks, 16 kHz audio, uint8 frames), so an engine may live in another
process or on another host.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
from avatar.speech.utterance import Phone, Utterance


class EngineUnavailable(Exception):
    """An engine cannot run here (no GPU, no weights, no network); the message says which and why."""


@dataclass(frozen=True)
class FaceCrop:
    """What an engine needs of a face, and nothing more: never the whole photo.

    `pixels` is the aligned square crop (size, size, 3) uint8, `landmarks` its 478-point mesh in crop
    pixels, and `photo_scale` how many photo pixels one crop pixel spans (below 1 the crop was enlarged).
    """

    pixels: np.ndarray
    landmarks: np.ndarray
    photo_scale: float = 1.0

    @property
    def size(self) -> int:
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class SpeechChunk:
    """One step of one face's speech: 16 kHz audio of whole frames, and the frames owed for it.

    The last chunk of a run is padded with silence to the engine's chunk length; `frames` then says
    how many of the drawn frames belong to the speech (the rest are dropped). Phones are on the chunk's
    own timeline (seconds from its first sample).
    """

    audio: np.ndarray
    frames: int
    phones: tuple[Phone, ...] = ()

    @property
    def drawn_frames(self) -> int:
        return len(self.audio) // SAMPLES_PER_FRAME


class Engine(ABC):
    """A lip-sync engine: a face plus speech in, frames of that face talking out.

    It implements one thing: `draw` (many faces in one step) or `draw_one` (one face; the loop comes free), with
    `open`, and `prepare` and `check` where it needs them. Its key and name are its spec's (spec.py), and how
    its steps are scheduled is its placement's (placement.py), not its own.
    """

    device: torch.device
    # Frames a step draws per face; None: any whole number of frames (all the speech that has arrived).
    chunk_frames: int | None = None
    # GPU time a second of speech takes at most, for booking a ZeroGPU GPU (a shared GPU slice is slower).
    gpu_seconds_per_speech_second: float = 1.0

    @property
    def uses_gpu(self) -> bool:
        return self.device.type == "cuda"

    @abstractmethod
    def open(self, face: FaceCrop) -> object:
        """Prepare `face` once for a run; the returned state (the face's drawing state) is handed back to `draw`."""

    def prepare(self, face: FaceCrop) -> None:
        """Do the per-face work ahead of time (when the user picks a photo), for engines that keep it."""
        return

    def draw(self, states: list[object], chunks: list[SpeechChunk]) -> Iterator[list[np.ndarray]]:
        """One step for several faces: yields, piece by piece, a list of frames (n, H, W, 3) per face.

        Each face's frames are trimmed to its chunk's `frames`. Engines that batch override this;
        the rest get this loop, one face after another.
        """
        for index, (state, chunk) in enumerate(zip(states, chunks, strict=True)):
            for frames in self.draw_one(state, chunk):
                yield [frames if i == index else _no_frames(frames) for i in range(len(states))]

    def draw_one(self, state: object, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """One step for one face: its frames, piece by piece (engines that do not batch implement this)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither draw nor draw_one")

    def check(self, state: object, chunk: SpeechChunk) -> None:
        """Raise if `chunk` cannot be drawn for `state`; asked before it joins a batch, so only its run fails."""
        return


def _no_frames(like: np.ndarray) -> np.ndarray:
    return np.zeros((0, *like.shape[1:]), like.dtype)


class SpeechChunker:
    """Cuts one talking face's sentences into an engine's chunks; the one place speech becomes 16 kHz.

    Leftover samples are carried to the next sentence; `finish` pads what is left with silence, so
    speech of `s` samples gets ceil(s / 640) frames in all.
    """

    def __init__(self, chunk_frames: int | None) -> None:
        self.chunk_frames = chunk_frames
        self.pending = np.zeros(0, np.float32)
        self.phones: list[Phone] = []
        self.samples_in = 0
        self.frames_out = 0

    def push(self, utterance: Utterance) -> list[SpeechChunk]:
        """Every whole chunk that the speech so far completes."""
        utterance = utterance.resampled(ENGINE_SAMPLE_RATE)
        lead = len(self.pending) / ENGINE_SAMPLE_RATE
        self.phones += [Phone(p.symbol, p.start + lead, p.end + lead) for p in utterance.phones]
        self.pending = np.concatenate([self.pending, utterance.audio.astype(np.float32)])
        self.samples_in += len(utterance.audio)
        step = (self.chunk_frames or len(self.pending) // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME
        chunks = []
        while step and len(self.pending) >= step:
            chunks.append(self._take(step, step // SAMPLES_PER_FRAME))
        return chunks

    def finish(self) -> list[SpeechChunk]:
        """The frames still owed, padded with silence to a whole chunk."""
        owed = math.ceil(self.samples_in / SAMPLES_PER_FRAME) - self.frames_out
        if owed <= 0:
            return []
        step = (self.chunk_frames or owed) * SAMPLES_PER_FRAME
        audio = np.zeros(step, np.float32)
        audio[: len(self.pending)] = self.pending[:step]
        self.pending = audio
        return [self._take(step, owed)]

    def _take(self, samples: int, frames: int) -> SpeechChunk:
        audio, self.pending = self.pending[:samples], self.pending[samples:]
        end = samples / ENGINE_SAMPLE_RATE
        phones = tuple(p for p in self.phones if p.start < end)
        self.phones = [Phone(p.symbol, p.start - end, p.end - end) for p in self.phones if p.end > end]
        self.frames_out += frames
        return SpeechChunk(audio=audio, frames=frames, phones=phones)
