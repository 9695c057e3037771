"""Which engines this machine can run, which one to preselect and why, one loaded instance of each."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from avatar import zerogpu
from avatar.config import Settings
from avatar.engines.base import Engine, EngineUnavailable
from avatar.engines.default.engine import DefaultEngine

DEFAULT_KEY = "default"
FLASHHEAD_KEYS = {"flashhead-lite": "lite", "flashhead-pro": "pro"}
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class EngineOption:
    key: str
    label: str


def _load_default(settings: Settings, progress: Progress | None) -> Engine:
    # On ZeroGPU the animator stays on the CPU: it is faster than real time there, and a run that
    # books no GPU neither waits for one nor spends the visitor's GPU quota.
    device = "cpu" if zerogpu.ACTIVE and settings.device == "auto" else settings.device
    return DefaultEngine(device)


def _flashhead_loader(variant: str) -> Callable[[Settings, Progress | None], Engine]:
    def load(settings: Settings, progress: Progress | None) -> Engine:
        from avatar.engines.flashhead.engine import FlashHeadEngine

        # ZeroGPU lends the GPU for single runs only, so there is no GPU at load time to compile on.
        return FlashHeadEngine.from_settings(
            replace(settings, flashhead_variant=variant), progress, compile_models=False if zerogpu.ACTIVE else None
        )

    return load


_LOADERS: dict[str, Callable[[Settings, Progress | None], Engine]] = {
    DEFAULT_KEY: _load_default,
    **{key: _flashhead_loader(variant) for key, variant in FLASHHEAD_KEYS.items()},
}
_LABELS = {
    DEFAULT_KEY: "Embedded photo animator (any machine)",
    "flashhead-lite": "FlashHead Lite (neural, GPU)",
    "flashhead-pro": "FlashHead Pro (neural, GPU)",
}


class EngineRegistry:
    """Loads engines on first use and keeps them; remembers why an engine could not load."""

    def __init__(self, settings: Settings, cuda_available: bool | None = None) -> None:
        self.settings = settings
        self.cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
        self._lock = threading.Lock()
        self._engines: dict[str, Engine] = {}
        self.problems: dict[str, str] = {}
        self.sealed = False

    def seal(self) -> None:
        """Load nothing more: what is loaded now is all there will be.

        On ZeroGPU, weights can be placed on the GPU only while the app starts, in its main thread;
        after that, an engine that was not loaded is not offered.
        """
        with self._lock:
            self.sealed = True

    def options(self) -> list[EngineOption]:
        """The default engine everywhere; FlashHead only where there is a CUDA GPU to run it."""
        keys = [DEFAULT_KEY, *(FLASHHEAD_KEYS if self.cuda else ())]
        if self.sealed:
            keys = [key for key in keys if key in self._engines]
        return [EngineOption(key, _LABELS[key]) for key in keys]

    def preferred(self) -> str:
        """AVATAR_ENGINE when it names an engine this machine offers; with "auto", FlashHead when
        there is a GPU and the weights are in a local folder, else the default engine."""
        offered = {option.key for option in self.options()}
        wanted = self.settings.engine
        if wanted in offered:
            return wanted
        local_weights = Path(self.settings.flashhead_weights).is_dir()
        flashhead = f"flashhead-{self.settings.flashhead_variant}"
        if wanted == "auto" and self.cuda and local_weights and flashhead in offered:
            return flashhead
        return DEFAULT_KEY

    def explain(self) -> str:
        """Why the preselected engine was chosen, in the page's words."""
        chosen = self.preferred()
        if zerogpu.ACTIVE:
            return (
                f"{_LABELS[chosen]} preselected. This is a ZeroGPU Space: the embedded animator runs on the CPU, "
                "and FlashHead, when AVATAR_ENGINE loads it, books a shared GPU for each run."
            )
        if chosen != DEFAULT_KEY:
            return f"{_LABELS[chosen]} preselected: a CUDA GPU is here and AVATAR_ENGINE / local weights ask for it."
        if not self.cuda:
            return "No CUDA GPU here, so the embedded animator runs (FlashHead needs a GPU)."
        if self.settings.engine in FLASHHEAD_KEYS or self.settings.engine == "auto":
            return "GPU found; FlashHead can be picked (its weights load on first use)."
        return "The embedded animator is preselected (AVATAR_ENGINE=default)."

    def loaded(self, key: str) -> Engine | None:
        """The engine `key` if it is already loaded (never starts a load)."""
        with self._lock:
            return self._engines.get(key)

    def get(self, key: str, progress: Progress | None = None) -> Engine:
        """The engine `key`, loading it if needed; raises `EngineUnavailable` with the reason."""
        loader = _LOADERS.get(key)
        if loader is None:
            raise EngineUnavailable(f"There is no engine called {key!r}.")
        with self._lock:
            if key not in self._engines:
                if self.sealed:
                    reason = self.problems.get(key, f"{_LABELS[key]} was not loaded when this app started.")
                    raise EngineUnavailable(reason)
                try:
                    self._engines[key] = loader(self.settings, progress)
                except EngineUnavailable as error:
                    self.problems[key] = str(error)
                    raise
            return self._engines[key]
