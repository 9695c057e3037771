"""Which engines this machine can run, and one loaded instance of each per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from avatar.config import Settings
from avatar.engines.base import Engine, EngineUnavailable
from avatar.engines.default.engine import DefaultEngine

DEFAULT_KEY = "default"


@dataclass(frozen=True)
class EngineOption:
    key: str
    label: str


def _load_default(settings: Settings, progress: Callable[[float, str], None] | None) -> Engine:
    return DefaultEngine(settings.device)


_LOADERS: dict[str, Callable[[Settings, Callable[[float, str], None] | None], Engine]] = {
    DEFAULT_KEY: _load_default,
}
_LABELS = {DEFAULT_KEY: "Embedded photo animator (any machine)"}


class EngineRegistry:
    """Loads engines on first use and keeps them; remembers why an engine could not load."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self.problems: dict[str, str] = {}

    def options(self) -> list[EngineOption]:
        return [EngineOption(key, label) for key, label in _LABELS.items()]

    def preferred(self) -> str:
        """The engine asked for by AVATAR_ENGINE, else the default."""
        wanted = self.settings.engine
        return wanted if wanted in _LOADERS else DEFAULT_KEY

    def get(self, key: str, progress: Callable[[float, str], None] | None = None) -> Engine:
        """The engine `key`, loading it if needed; raises `EngineUnavailable` with the reason."""
        loader = _LOADERS.get(key)
        if loader is None:
            raise EngineUnavailable(f"There is no engine called {key!r}.")
        with self._lock:
            if key not in self._engines:
                try:
                    self._engines[key] = loader(self.settings, progress)
                except EngineUnavailable as error:
                    self.problems[key] = str(error)
                    raise
            return self._engines[key]
