"""A third engine, used only by the tests: the face, still, for as long as the speech lasts.

It proves that an engine is one folder plus one registration line: nothing else in the app names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from avatar.config import env_int
from avatar.engines.base import Engine, FaceCrop, SpeechChunk
from avatar.engines.placement import Unbatched
from avatar.engines.spec import EngineSettings, EngineSpec, Progress


@dataclass(frozen=True)
class StillPhotoSettings(EngineSettings):
    sessions: int = 3

    @classmethod
    def from_env(cls) -> StillPhotoSettings:
        return cls(sessions=env_int("AVATAR_STILL_PHOTO_SESSIONS", cls.sessions))


class StillPhotoEngine(Engine):
    """Every frame is the crop itself."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def open(self, face: FaceCrop) -> np.ndarray:
        return face.pixels

    def draw_one(self, state: np.ndarray, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        yield np.repeat(state[None], chunk.frames, axis=0)


def _build(settings: StillPhotoSettings, device: torch.device, progress: Progress | None) -> Unbatched:
    return Unbatched(StillPhotoEngine(device))


SPEC = EngineSpec(
    key="still-photo",
    title="Still photo",
    note="test engine",
    name="the still photo",
    needs_cuda=False,
    read_settings=StillPhotoSettings.from_env,
    build=_build,
)
