"""ZeroGPU, Hugging Face's shared-GPU Spaces: there the GPU is lent only inside `spaces.GPU` functions.

Such a function runs in a worker process forked from the app, so its arguments and results travel
by pickle, and CUDA works only inside it; weights placed on "cuda" at start-up are held back by
`spaces` and moved onto the GPU in the worker. Off ZeroGPU, and where the `spaces` package is not
installed, `gpu_task` leaves a function exactly as it is.

Compiled code does not survive a worker either, so what should run compiled is compiled ahead of time in one
longer call at start-up, with `spaces`' AoTI functions (see avatar/engines/flashhead/ahead.py).

Import this module before anything touches CUDA: on ZeroGPU, importing `spaces` is what patches torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

try:
    import spaces
except ModuleNotFoundError as missing:
    if missing.name != "spaces":  # installed but broken: on ZeroGPU, running without it would fail later
        raise
    spaces = None

F = TypeVar("F", bound=Callable)

# True only on a ZeroGPU Space: `spaces` is installed and the Space set SPACES_ZERO_GPU.
ACTIVE: bool = spaces is not None and spaces.config.Config.zero_gpu
# The longest booking ZeroGPU grants, and only while the Space starts: room for compiling ahead of time
# (huggingface.co/blog/zerogpu-aoti). A visitor's calls are held to far less.
STARTUP_BOOKING = 1500


def gpu_task(duration: Callable[..., int]) -> Callable[[F], F]:
    """Book a ZeroGPU GPU for each call, for `duration(*args)` seconds at most; elsewhere a no-op."""

    def wrap(function: F) -> F:
        if spaces is None:
            return function
        return spaces.GPU(function, duration=duration)

    return wrap


def startup_booking(*args: object, **kwargs: object) -> int:
    """The booking of work done once while the Space starts (`gpu_task(duration=startup_booking)`)."""
    return STARTUP_BOOKING


def failure(error: Exception) -> str:
    """A failed GPU call in one line. `spaces` raises a gradio Error with a title and a message (for a failure in
    ZeroGPU's worker, "ZeroGPU worker error" and the class name of what was raised there; it prints the worker's
    traceback itself); any other error is told by its class and text."""
    label = getattr(error, "title", None) or type(error).__name__
    text = getattr(error, "message", None) or str(error)
    return f"{label}: {text}" if text else label
