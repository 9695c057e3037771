"""Engines by reference, for ZeroGPU's GPU worker: an engine travels by pickle as a small handle.

ZeroGPU's worker is forked from this process, so it already holds the same engines (weights
included) under the same handles; only the handle needs to travel. Engines are remembered when
they are loaded, before the worker forks.
"""

from __future__ import annotations

import uuid
import weakref
from dataclasses import dataclass

from avatar.engines.base import Engine, EngineUnavailable

_ENGINES: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()
_HANDLES: weakref.WeakKeyDictionary[Engine, EngineHandle] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class EngineHandle:
    """A picklable reference to an engine loaded in this process (or in the process it was forked from)."""

    id: str

    @property
    def engine(self) -> Engine:
        engine = _ENGINES.get(self.id)
        if engine is None:
            raise EngineUnavailable("This engine was loaded after the GPU worker started; please restart the app.")
        return engine


def handle_of(engine: Engine) -> EngineHandle:
    """The engine's handle, made the first time it is asked for."""
    handle = _HANDLES.get(engine)
    if handle is None:
        handle = EngineHandle(uuid.uuid4().hex)
        _ENGINES[handle.id] = engine
        _HANDLES[engine] = handle
    return handle
