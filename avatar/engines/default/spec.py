"""The embedded photo animator, declared: runs anywhere, needs no weights, several sessions side by side."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from avatar.config import env_int
from avatar.engines.placement import Unbatched
from avatar.engines.spec import EngineSettings, EngineSpec, Progress


@dataclass(frozen=True)
class AnimatorSettings(EngineSettings):
    """Runs at once (AVATAR_RUNS_AT_ONCE): on a CPU each run takes about one core for 4x real time."""

    sessions: int = 2

    @classmethod
    def from_env(cls) -> AnimatorSettings:
        return cls(sessions=env_int("AVATAR_RUNS_AT_ONCE", cls.sessions))


def _build(settings: AnimatorSettings, device: torch.device, progress: Progress | None) -> Unbatched:
    """The animator draws each run's steps in the run's own thread: runs on the CPU's cores side by side."""
    from avatar.engines.default.engine import DefaultEngine

    return Unbatched(DefaultEngine(device))


SPEC = EngineSpec(
    key="default",
    title="Embedded photo animator",
    note="any machine",
    name="the embedded photo animator",
    needs_cuda=False,
    read_settings=AnimatorSettings.from_env,
    build=_build,
)
