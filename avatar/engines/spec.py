"""How an engine declares itself: what it is, what it needs, how many sessions it runs at once, how it is built.

Each engine package holds one `EngineSpec` (its `spec.py`); the catalogue lists them. Nothing else in
the app knows an engine's details: the registry, the waiting line and the page read them from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from avatar.engines.base import Engine

# progress(fraction in [0, 1], what is happening): shown while weights are fetched or compiled.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class EngineSettings:
    """The settings every engine has; an engine's own `AVATAR_*` fields extend this in its package."""

    # Sessions the engine serves at once: its batch capacity, and the waiting line's running slots.
    sessions: int = 1

    def preselect(self) -> bool:
        """Whether "auto" should pick this engine where it can run (e.g. its weights are on this computer)."""
        return False


SettingsT = TypeVar("SettingsT", bound=EngineSettings)


@dataclass(frozen=True)
class EngineSpec(Generic[SettingsT]):
    """One engine, declared: the registry offers, explains, builds and schedules it from this alone."""

    key: str
    # The menu's entry ("FlashHead Lite (neural, GPU)") and the engine's name in a sentence ("FlashHead Lite").
    label: str
    name: str
    # Offered only where a CUDA GPU is present.
    needs_cuda: bool
    # Reads the engine's own AVATAR_* variables.
    read_settings: Callable[[], SettingsT]
    # Builds the engine on the device chosen for it; raises EngineUnavailable with a reason.
    build: Callable[[SettingsT, torch.device, Progress | None], Engine]
