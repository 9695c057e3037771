"""Engines by reference, for ZeroGPU's GPU worker: an engine travels by pickle as a small handle.

ZeroGPU's worker is forked from this process, so it already holds the same engines (weights
included) under the same handles; only the handle needs to travel. Engines are remembered when
they are loaded, before the worker forks. A handle refers to a `LoadedEngine` (a run's) or to an
engine itself (FlashHead's compile ahead of time).
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass
from typing import Generic, TypeVar

from avatar.engines.base import EngineUnavailable

T = TypeVar("T")

_ENGINES: weakref.WeakValueDictionary[str, object] = weakref.WeakValueDictionary()
_HANDLES: weakref.WeakKeyDictionary[object, EngineHandle] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class EngineHandle(Generic[T]):
    """A picklable reference to an engine loaded in this process (or in the process it was forked from)."""

    id: str

    @property
    def engine(self) -> T:
        engine = _ENGINES.get(self.id)
        if engine is None:
            raise EngineUnavailable("This engine was loaded after the GPU worker started; please restart the app.")
        return engine


def handle_of(engine: T) -> EngineHandle[T]:
    """The engine's handle, made the first time it is asked for."""
    handle = _HANDLES.get(engine)
    if handle is None:
        handle = EngineHandle(uuid.uuid4().hex)
        _ENGINES[handle.id] = engine
        _HANDLES[engine] = handle
    return handle
