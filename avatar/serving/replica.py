"""One replica of an engine's Ray Serve deployment: the real engine, built once, serving replica sessions by key.

The replica holds no engine logic: it loads the engine from its `EngineSpec` as the registry would
(in its own placement: batched on its device thread, or not), and its `open`/`step` are the loaded
engine's. Each session's drawing state stays here, under a key that names this replica (see router.py).
Steps of many sessions run at once in the replica's engine threads, so an engine behind a batching
scheduler sees them together on its GPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import ray
from ray import serve

from avatar.engines.base import FaceCrop, SpeechChunk
from avatar.engines.devices import choose_device
from avatar.engines.spec import EngineSpec
from avatar.serving.router import OPENERS, SESSIONS, session_key

# A session untouched this long is dropped: its app process ended without closing it.
SESSION_IDLE_SECONDS = 600
# Engine threads per session a replica serves: one step in flight, and room for opens.
THREADS_PER_SESSION = 2

Result = TypeVar("Result")


class SessionLost(Exception):
    """A call for a session this replica does not hold: the replica that held it stopped."""


@dataclass(frozen=True)
class ReplicaInfo:
    """What the app needs to know of the engine a replica serves."""

    chunk_frames: int | None
    device: str
    # Sessions the engine serves at once, as the replica's host sees it (an engine may size it by its GPU).
    sessions: int


@dataclass
class HeldState:
    """A replica session's drawing state, the app process that opened it, and when it was last used (to drop
    sessions their app forgot)."""

    state: object
    opener: str
    used: float = field(default_factory=time.monotonic)


class EngineReplica:
    """The deployment's class: `cluster.py` deploys it with one GPU (or some CPUs) per replica."""

    def __init__(self, spec: EngineSpec) -> None:
        self.settings = spec.read_settings()
        device = choose_device("cuda" if ray.get_gpu_ids() else "cpu", spec.label, spec.needs_cuda)
        # The build's progress (weights fetched, sizes compiled: minutes for FlashHead) goes to the replica's
        # log, which Ray shows in the output of the app that deployed it.
        self.engine = spec.load(device, self.settings, lambda fraction, what: print(f"{spec.label}: {what}"))
        self.replica_id = serve.get_replica_context().replica_id.unique_id
        self.sessions: dict[str, HeldState] = {}
        self.threads = ThreadPoolExecutor(THREADS_PER_SESSION * self.settings.sessions, thread_name_prefix="engine")

    def describe(self) -> ReplicaInfo:
        return ReplicaInfo(self.engine.chunk_frames, str(self.engine.info.device), self.settings.sessions)

    async def open(self, face: FaceCrop, opener: str) -> str:
        """Open a session of `face` for app process `opener`; its key names this replica."""
        # Ray hands arrays over read-only (straight from its object store); the engine may expect its own.
        face = FaceCrop(face.pixels.copy(), face.landmarks.copy(), face.photo_scale)
        state = await self._in_thread(self.engine.open, face)
        self._drop_idle()
        key = session_key(self.replica_id)
        self.sessions[key] = HeldState(state, opener)
        return key

    async def step(self, key: str, chunk: SpeechChunk) -> AsyncIterator[np.ndarray]:
        """The engine's step for session `key`, streamed back piece by piece as the engine yields it."""
        held = self.sessions.get(key)
        if held is None:
            raise SessionLost(key)
        held.used = time.monotonic()
        frames = self.engine.step(held.state, chunk)
        pending: Future | None = None
        try:
            while True:
                pending = self.threads.submit(next, frames, None)
                piece = await asyncio.wrap_future(pending)
                if piece is None:
                    return
                yield piece
        finally:
            # Cancelled (the visitor stopped): close the engine's generator once its current piece is drawn.
            if pending is None or pending.done():
                self.threads.submit(frames.close)
            else:
                pending.add_done_callback(lambda _: frames.close())

    def close(self, key: str) -> None:
        self.sessions.pop(key, None)

    def record_routing_stats(self) -> dict[str, object]:
        """Serve asks every few seconds; the routers send new sessions where there are fewest."""
        return {SESSIONS: len(self.sessions), OPENERS: dict(Counter(held.opener for held in self.sessions.values()))}

    async def _in_thread(self, work: Callable[..., Result], *args: object) -> Result:
        return await asyncio.wrap_future(self.threads.submit(work, *args))

    def _drop_idle(self) -> None:
        now = time.monotonic()
        for key in [key for key, held in self.sessions.items() if now - held.used > SESSION_IDLE_SECONDS]:
            del self.sessions[key]
