"""Engines drawn on Ray Serve replicas: a placement, so a run holds the same `LoadedEngine` and cannot tell.

`open` sends the face crop (never the photo) to the least-loaded replica, which keeps the face's drawing
state as a replica session; `step` sends one 16 kHz chunk to that replica and yields its frames as they
stream back. Speech is cut into chunks here, by the run's `TalkingFace`, exactly as for an engine in this
process.

A replica that dies takes its sessions with it: their visitors get a plain message (the run's speech and
photo are still here, so pressing Generate again works), and Serve sends new sessions to live replicas.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

import numpy as np
from ray.exceptions import RayActorError, RayTaskError
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle

from avatar.engines.base import FaceCrop, SpeechChunk
from avatar.errors import UserFacingError
from avatar.serving.replica import ReplicaInfo, SessionLost
from avatar.serving.router import APP_PROCESS

REPLICA_STOPPED = "The server drawing your video stopped. Nothing of yours is lost: press Generate to try again."
NO_REPLICA = "The servers that draw the videos are all busy or restarting. Please try again in a minute."
# How long a new session waits for a replica to take it.
OPEN_SECONDS = 120
# What can go wrong on the way to a replica and back (as opposed to a bug in this process).
REMOTE_ERRORS = (RayActorError, RayTaskError, RayServeException)


class ReplicaSession:
    """A face's drawing state, held by one replica; its key names that replica. Closed there once the run lets
    go of it."""

    def __init__(self, key: str, close: Callable[[str], object]) -> None:
        self.key = key
        weakref.finalize(self, close, key).atexit = False


class ServedReplicas:
    """The placement of an engine on the replicas of one Ray Serve deployment (see cluster.py)."""

    # No engine in this process, so it books no GPU here (ZeroGPU's path stays off): frames arrive as arrays.
    engine = None

    def __init__(self, handle: DeploymentHandle, about: ReplicaInfo, replicas: int) -> None:
        self.handle = handle
        self.chunk_frames = about.chunk_frames
        # Faces all replicas draw at once, as their hosts size them.
        self.sessions = about.sessions * replicas
        self.where = f"Ray Serve, {replicas} replica{'s' if replicas != 1 else ''} on {about.device}"

    def prepare(self, face: FaceCrop) -> None:
        """Nothing ahead of time: the face is sent with the run."""
        return

    def open(self, face: FaceCrop) -> ReplicaSession:
        try:
            key = self.handle.open.remote(face, APP_PROCESS).result(timeout_s=OPEN_SECONDS)
        except TimeoutError as error:
            raise UserFacingError(NO_REPLICA) from error
        except REMOTE_ERRORS as error:
            raise as_raised_here(error) from error
        return ReplicaSession(key, self._close)

    def step(self, state: ReplicaSession, chunk: SpeechChunk) -> Iterator[np.ndarray]:
        """The frames of one chunk, streamed from the replica that holds the session."""
        frames = self.handle.options(stream=True, session_id=state.key).step.remote(state.key, chunk)
        try:
            yield from frames
        except GeneratorExit:
            frames.cancel()
            raise
        except REMOTE_ERRORS as error:
            raise as_raised_here(error) from error

    def _close(self, key: str) -> None:
        self.handle.options(session_id=key).close.remote(key)


def as_raised_here(error: Exception) -> BaseException:
    """What the in-process engine would have raised: a lost replica becomes a plain message for the visitor,
    and an engine's own error (a `UserFacingError`, running out of GPU memory) is raised as itself."""
    if isinstance(error, (SessionLost, RayActorError)):
        return UserFacingError(REPLICA_STOPPED)
    if isinstance(error, RayServeException):
        return UserFacingError(NO_REPLICA)
    return error.cause
