"""GPU work wrapped for Hugging Face ZeroGPU Spaces, unchanged everywhere else.

On a ZeroGPU Space a GPU is attached only while a function decorated with `spaces.GPU`
runs; the `spaces` package is installed there. Elsewhere the package is usually missing,
and where it is installed but the Space has no ZeroGPU, `spaces.GPU` returns the function
as it is. So `on_gpu` costs nothing off ZeroGPU.

Mind what ZeroGPU does: the decorated function runs in a forked worker, so its arguments
and results (or yielded items) must pickle, and it must be decorated at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

try:
    import spaces
except ImportError:
    spaces = None

Task = TypeVar("Task", bound=Callable)
# The longest a single decorated call may hold the GPU, in seconds (ZeroGPU's default is 60).
DEFAULT_GPU_SECONDS = 120


def on_gpu(task: Task | None = None, *, duration: int = DEFAULT_GPU_SECONDS) -> Task | Callable[[Task], Task]:
    """`spaces.GPU(duration=...)` when the `spaces` package imports, the task itself otherwise.

    Usable bare (`@on_gpu`) or with a duration (`@on_gpu(duration=60)`).
    """

    def wrap(function: Task) -> Task:
        if spaces is None:
            return function
        return spaces.GPU(function, duration=duration)

    return wrap(task) if task is not None else wrap

