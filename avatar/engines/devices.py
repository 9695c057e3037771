"""Where an engine runs: the one place that turns AVATAR_DEVICE and the machine into a torch device."""

from __future__ import annotations

import torch

from avatar import zerogpu
from avatar.engines.base import EngineUnavailable


def choose_device(setting: str, label: str, needs_cuda: bool, cuda_available: bool | None = None) -> torch.device:
    """The device for an engine from AVATAR_DEVICE ("auto", "cuda", "cuda:N", "cpu").

    "auto" means the GPU when there is one, except that on ZeroGPU an engine that does not need CUDA
    stays on the CPU: there a run that books no GPU neither waits for one nor spends the visitor's quota.
    """
    cuda = torch.cuda.is_available() if cuda_available is None else cuda_available
    if setting in ("", "auto"):
        device = torch.device("cuda" if cuda and (needs_cuda or not zerogpu.ACTIVE) else "cpu")
    else:
        device = torch.device(setting)
    if device.type == "cuda" and not cuda:
        raise EngineUnavailable(f"{label} was asked to run on a GPU (AVATAR_DEVICE), but no CUDA GPU is available.")
    if device.type != "cuda" and needs_cuda:
        raise EngineUnavailable(f"{label} needs an NVIDIA GPU (CUDA); none was found here.")
    return device
