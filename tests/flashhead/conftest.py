"""Shared pieces of the FlashHead tests: the fixtures folder and the seeded weight recipe of the parity fixtures."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"


def seeded_weights(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """The recipe the fixtures were made with: sorted names, one generator, scale by kind of tensor."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, tensor in sorted(module.state_dict().items()):
        if not tensor.is_floating_point():
            weights[name] = tensor
            continue
        r = torch.randn(tensor.shape, generator=generator)
        if tensor.dim() == 1 and name.endswith("weight"):
            weights[name] = 1 + 0.1 * r
        elif tensor.dim() == 1:
            weights[name] = 0.02 * r
        elif name.endswith("modulation"):
            weights[name] = 0.1 * r
        else:
            weights[name] = r / math.sqrt(math.prod(tensor.shape[1:]))
    return weights


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def seeded() -> Callable[[torch.nn.Module, int], dict[str, torch.Tensor]]:
    return seeded_weights
