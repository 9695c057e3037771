"""torch.compile for FlashHead's models: fixed shapes, or one graph for every batch size from 2 up.

Compiling the transformer and the VAE for one batch size takes about 140 s on an H200, so warming each size
a step may have (1 to 8) would keep the app from starting for many minutes. With `any_batch`, the first
dimension of every tensor argument is marked dynamic whenever it is above 1: one compile serves every batch
size from 2 up (1 keeps its own, as torch specialises sizes 0 and 1), and with CUDA graphs each size records
its own graph in a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
from torch.utils._pytree import tree_leaves

F = TypeVar("F", bound=Callable)


def compiled(fn: F, any_batch: bool = False, mode: str | None = None) -> F:
    """`fn` compiled for the shapes it is called with; with `any_batch`, for any batch size (the first dimension)."""
    graph = torch.compile(fn, dynamic=False, mode=mode)
    if not any_batch:
        return graph

    def call(*args: object, **kwargs: object) -> object:
        for leaf in tree_leaves((args, kwargs)):
            if isinstance(leaf, torch.Tensor) and leaf.dim() and leaf.shape[0] > 1:
                torch._dynamo.maybe_mark_dynamic(leaf, 0)
        return graph(*args, **kwargs)

    return call  # type: ignore[return-value]
