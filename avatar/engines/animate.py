"""A run's engine work, as one function of small picklable values: the boundary between a run and its engine.

Here the run's `Face` becomes the `FaceCrop` the engine needs (never the whole photo). A run's
engine stage calls `animate`. Anywhere but ZeroGPU, frames are drawn right here, each
sentence as soon as it has been spoken. On a ZeroGPU Space the GPU exists only inside `spaces.GPU`
functions, which run in a worker process forked from the app: there a GPU engine books the GPU once
per run, hands over the engine (as a handle: the worker holds its own copy from the fork), the
face crop and all of the run's speech, and gets the frames back chunk by chunk as they are drawn. The
speech is made before the GPU is booked, so no GPU time is spent waiting for a voice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator

import numpy as np
import torch

from avatar import zerogpu
from avatar.engines.base import FaceCrop
from avatar.engines.handles import EngineHandle, handle_of
from avatar.engines.loaded import LoadedEngine
from avatar.errors import UserFacingError
from avatar.faces import Face
from avatar.speech.utterance import Utterance

# torch's CPU thread pool (OpenMP) hangs in a process forked after the pool was used, as ZeroGPU's
# worker is; so, as in torch's DataLoader workers, a forked process keeps to one CPU thread.
os.register_at_fork(after_in_child=lambda: torch.set_num_threads(1))

# Seconds booked on top of the drawing itself: the worker's start and the weights' move onto the GPU.
GPU_START_SECONDS = 20
# ZeroGPU refuses bookings longer than this (seconds).
LONGEST_BOOKING = 300


def face_crop(face: Face) -> FaceCrop:
    """What an engine may see of a face: the aligned crop, its mesh, and how much it was enlarged."""
    return FaceCrop(face.crop, face.landmarks, float(np.hypot(*face.crop_to_photo[:, 0])))


def draw_frames(engine: LoadedEngine, face: FaceCrop, utterances: Iterable[Utterance]) -> Iterator[np.ndarray]:
    """Frames of `face` saying each utterance in turn, as soon as each chunk is drawn."""
    try:
        talking = engine.start(face)
        for utterance in utterances:
            yield from talking.push(utterance)
        yield from talking.finish()
    except torch.OutOfMemoryError as error:
        raise UserFacingError(
            "The GPU ran out of memory for this run. Please try again in a minute, or with a shorter text."
        ) from error


def booked_seconds(engine: EngineHandle[LoadedEngine], face: FaceCrop, utterances: list[Utterance]) -> int:
    """How long to book the GPU for: the drawing's worst case plus the worker's start.

    Takes the same arguments as the task it books for, as `spaces.GPU(duration=...)` calls it.
    """
    speech = sum(utterance.duration for utterance in utterances)
    per_second = engine.engine.gpu_seconds_per_speech_second
    return min(LONGEST_BOOKING, GPU_START_SECONDS + math.ceil(speech * per_second))


@zerogpu.gpu_task(duration=booked_seconds)
def draw_frames_on_gpu(
    engine: EngineHandle[LoadedEngine], face: FaceCrop, utterances: list[Utterance]
) -> Iterator[np.ndarray | UserFacingError]:
    """`draw_frames` for the whole speech at once: on ZeroGPU, in the GPU worker.

    A message for the user comes back as a value: `spaces` would pass on only its class name.
    """
    try:
        yield from draw_frames(engine.engine, face, utterances)
    except UserFacingError as error:
        yield error


def raising_messages(items: Iterator[np.ndarray | UserFacingError]) -> Iterator[np.ndarray]:
    """Frames from the GPU worker, with a message it sent raised again here."""
    for item in items:
        if isinstance(item, UserFacingError):
            raise item
        yield item


def animate(engine: LoadedEngine, face: Face, utterances: Iterable[Utterance]) -> Iterator[np.ndarray]:
    """The frames of a run, drawn wherever this machine draws them."""
    crop = face_crop(face)
    if zerogpu.ACTIVE and engine.uses_gpu:
        return raising_messages(draw_frames_on_gpu(handle_of(engine), crop, list(utterances)))
    return draw_frames(engine, crop, utterances)
