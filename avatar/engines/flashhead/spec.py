"""FlashHead Lite and Pro, declared: neural, CUDA only, weights from a local folder or the hub.

Their settings are in settings.py; on ZeroGPU the transformer is compiled ahead of time (ahead.py).
"""

from __future__ import annotations

import torch

from avatar import zerogpu
from avatar.engines.flashhead.settings import VARIANTS, FlashHeadSettings
from avatar.engines.scheduler import BatchScheduler
from avatar.engines.spec import EngineSpec, Progress


def _title(variant: str) -> str:
    """The variant's name on the page: "FlashHead Lite"."""
    return f"FlashHead {variant.capitalize()}"


def _build(settings: FlashHeadSettings, device: torch.device, progress: Progress | None) -> BatchScheduler:
    from avatar.engines.flashhead.engine import load_batched

    if not zerogpu.ACTIVE:
        return load_batched(settings, device, progress)
    # ZeroGPU lends the GPU for single calls only: nothing to torch.compile on at load, and a run's worker would lose
    # what it compiled. So the transformer is compiled ahead of time in one call (left uncompiled if that fails).
    from avatar.engines.flashhead.ahead import compile_ahead

    scheduler = load_batched(settings, device, progress, compile_models=False)
    compile_ahead(scheduler.engine, _title(settings.variant), progress)
    return scheduler


def _spec(variant: str) -> EngineSpec[FlashHeadSettings]:
    return EngineSpec(
        key=f"flashhead-{variant}",
        title=_title(variant),
        note="neural, GPU",
        name=_title(variant),
        needs_cuda=True,
        read_settings=lambda: FlashHeadSettings.from_env(variant),
        build=_build,
    )


LITE, PRO = (_spec(variant) for variant in VARIANTS)
