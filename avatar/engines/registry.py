"""Which engines this machine can run, which one to preselect and why, one loaded instance of each.

Everything it knows of an engine comes from the engine's `EngineSpec` (see catalogue.py). Engines are
built in this process, or, with AVATAR_SERVE=ray, served by the replicas of a cluster handed in from
above (avatar/serving's `join_cluster`): the registry never imports the serving layer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

import torch

from avatar import zerogpu
from avatar.config import Settings
from avatar.engines import catalogue
from avatar.engines.base import EngineUnavailable
from avatar.engines.devices import choose_device
from avatar.engines.handles import handle_of
from avatar.engines.loaded import LoadedEngine
from avatar.engines.spec import EngineSettings, EngineSpec, Progress


@dataclass(frozen=True)
class EngineOption:
    key: str
    label: str


class Cluster(Protocol):
    """Hosts whose replicas serve the engines (avatar/serving's `RayCluster`), as the registry uses them."""

    @property
    def has_gpus(self) -> bool: ...

    def replicas(self, spec: EngineSpec) -> int:
        """How many replicas serve engine `spec`."""

    def serve(self, spec: EngineSpec, progress: Progress | None = None) -> LoadedEngine:
        """Engine `spec`, drawing on the replicas."""


class EngineRegistry:
    """Loads engines on first use and keeps them; remembers why an engine could not load."""

    def __init__(
        self,
        settings: Settings,
        cuda_available: bool | None = None,
        specs: list[EngineSpec] | None = None,
        cluster: Cluster | None = None,
    ) -> None:
        if cluster is None and settings.serve != "off":
            raise ValueError(f"AVATAR_SERVE={settings.serve}: hand in the cluster avatar.serving.join_cluster joins")
        self.settings = settings
        # With AVATAR_SERVE=ray, engines run as replicas on this Ray cluster and its GPUs are what counts.
        self.cluster = cluster
        if cuda_available is None:
            cuda_available = self.cluster.has_gpus if self.cluster else torch.cuda.is_available()
        self.cuda = cuda_available
        self.specs = {spec.key: spec for spec in (catalogue.SPECS if specs is None else specs)}
        self.fallback = next(iter(self.specs))
        self.engine_settings: dict[str, EngineSettings] = {key: s.read_settings() for key, s in self.specs.items()}
        self._lock = threading.Lock()
        self._engines: dict[str, LoadedEngine] = {}
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
        """Every engine that can run here: those that need CUDA only where there is a CUDA GPU."""
        keys = [key for key, spec in self.specs.items() if self.cuda or not spec.needs_cuda]
        if self.sealed:
            keys = [key for key in keys if key in self._engines]
        return [EngineOption(key, self.specs[key].label) for key in keys]

    def sessions(self, key: str) -> int:
        """How many sessions engine `key` runs at once: its running slots in the waiting line (all replicas')."""
        replicas = self.cluster.replicas(self.specs[key]) if self.cluster else 1
        return self.engine_settings[key].sessions * replicas

    def preferred(self) -> str:
        """AVATAR_ENGINE when it names an engine this machine offers; with "auto", the first engine that
        can run here and asks to be preselected (its weights are on this computer), else the fallback."""
        offered = [option.key for option in self.options()]
        wanted = self.settings.engine
        if wanted in offered:
            return wanted
        if wanted == "auto":
            return next((key for key in offered if self.engine_settings[key].preselect()), self.fallback)
        return self.fallback

    def explain(self) -> str:
        """Why the preselected engine was chosen, in the page's words."""
        chosen = self.specs[self.preferred()]
        needs_gpu = _listed([spec.name for spec in self.specs.values() if spec.needs_cuda])
        if zerogpu.ACTIVE:
            return (
                f"{_first_up(chosen.name)} is preselected. This is a ZeroGPU Space: engines that need a GPU book a "
                "shared one for each run; the others run on the CPU."
            )
        if chosen.key != self.fallback:
            return f"{_first_up(chosen.name)} is preselected: a CUDA GPU is here and its weights are on this computer."
        if not self.cuda and needs_gpu:
            return f"No CUDA GPU here, so {chosen.name} runs; {needs_gpu} need one."
        if self.cuda and needs_gpu:
            return f"GPU found: {needs_gpu} can be picked (their weights load on first use)."
        return f"{_first_up(chosen.name)} is preselected."

    def loaded(self, key: str) -> LoadedEngine | None:
        """The engine `key` if it is already loaded (never starts a load)."""
        with self._lock:
            return self._engines.get(key)

    def get(self, key: str, progress: Progress | None = None) -> LoadedEngine:
        """The engine `key`, loading it if needed; raises `EngineUnavailable` with the reason."""
        spec = self.specs.get(key)
        if spec is None:
            raise EngineUnavailable(f"There is no engine called {key!r}.")
        with self._lock:
            if key not in self._engines:
                if self.sealed:
                    reason = self.problems.get(key, f"{spec.label} was not loaded when this app started.")
                    raise EngineUnavailable(reason)
                try:
                    if self.cluster:
                        self._engines[key] = self.cluster.serve(spec, progress)
                    else:
                        device = choose_device(self.settings.device, spec.label, spec.needs_cuda, self.cuda)
                        self._engines[key] = spec.load(device, self.engine_settings[key], progress)
                    handle_of(self._engines[key])  # known by handle before ZeroGPU's worker forks
                except EngineUnavailable as error:
                    self.problems[key] = str(error)
                    raise
            return self._engines[key]


def _listed(names: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _first_up(text: str) -> str:
    return text[:1].upper() + text[1:]
