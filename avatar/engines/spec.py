"""How an engine declares itself: what it is, what it needs, how many faces it draws at once, how it is built.

Each engine package holds one `EngineSpec` (its `spec.py`); the catalogue lists them. Nothing else in
the app knows an engine's details: the registry, the waiting line and the page read them from here,
and the engine's key and names are written here only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import torch

from avatar.engines.loaded import LoadedEngine
from avatar.engines.placement import InProcess, Placement

# progress(fraction in [0, 1], what is happening): shown while weights are fetched or compiled.
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class EngineSettings:
    """The settings every engine has; an engine's own `AVATAR_*` fields extend this in its package."""

    # Talking faces the engine draws at once ("sessions"): its batch capacity, and the waiting line's running slots.
    sessions: int = 1

    def preselect(self) -> bool:
        """Whether "auto" should pick this engine where it can run (e.g. its weights are on this computer)."""
        return False


SettingsT = TypeVar("SettingsT", bound=EngineSettings)


@dataclass(frozen=True)
class EngineSpec(Generic[SettingsT]):
    """One engine, declared: the registry offers, explains, builds and schedules it from this alone."""

    key: str
    # The engine's name on the page ("FlashHead Lite"), what the menu adds to it ("neural, GPU"), and its name
    # in a sentence ("the embedded photo animator").
    title: str
    note: str
    name: str
    # Offered only where a CUDA GPU is present.
    needs_cuda: bool
    # Reads the engine's own AVATAR_* variables.
    read_settings: Callable[[], SettingsT]
    # Builds the engine on the device chosen for it, in its placement in this process (batched or not);
    # raises EngineUnavailable with a reason.
    build: Callable[[SettingsT, torch.device, Progress | None], InProcess]

    @property
    def label(self) -> str:
        """The menu's entry: "FlashHead Lite (neural, GPU)"."""
        return f"{self.title} ({self.note})"

    def loaded(self, placement: Placement) -> LoadedEngine:
        """The engine drawing through `placement`, under this spec's key and title."""
        return LoadedEngine(self.key, self.title, placement)

    def load(
        self, device: torch.device | str = "cpu", settings: SettingsT | None = None, progress: Progress | None = None
    ) -> LoadedEngine:
        """The engine built on `device` from `settings` (by default its own, from the environment), ready for runs."""
        chosen = self.read_settings() if settings is None else settings
        return self.loaded(self.build(chosen, torch.device(device), progress))
