"""FlashHead's settings: what its spec reads and its engine is built from, each read once from the environment.

- AVATAR_FLASHHEAD_WEIGHTS: a folder holding Model_Lite/, Model_Pro/, VAE_LTX/, VAE_Wan/, or a hub id;
- AVATAR_WAV2VEC2_WEIGHTS: the wav2vec2-base-960h folder or hub id;
- AVATAR_FLASHHEAD_VARIANT: which of the two "auto" preselects when the weights are on this computer;
- AVATAR_FLASHHEAD_SESSIONS: sessions drawn at once (its batch capacity; by default from the GPU's size);
- AVATAR_FLASHHEAD_SIZE: the frame size (the model was trained at 512);
- AVATAR_FLASHHEAD_BATCHING: "any" (one compile at load serves every batch size from 2 up; a step draws just
  the sessions waiting) or "padded" (each of AVATAR_FLASHHEAD_WARM_SIZES compiled at load, about 140 s each on
  an H200, and a step padded up to the next of them);
- AVATAR_FLASHHEAD_FP8: "off" (bfloat16 throughout) or "on" (float8 matrix products in the transformer's blocks,
  where the GPU has FP8 tensor cores and the models are compiled). Off by default: on an H200 it drew 13% more
  frames at 8 sessions, but moved the frames of random weights to 36.9 dB PSNR against bfloat16 (bench/RESULTS.md),
  so it waits for a comparison on the real weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from avatar import zerogpu
from avatar.config import check_choice, env_int, env_str
from avatar.engines.spec import EngineSettings

VARIANTS = ("lite", "pro")
# Sessions at once by GPU memory (GiB at least -> sessions), memory standing for the GPU's class. Lite draws
# about 430 useful frames/s batched on an H100 or H200 (bench/RESULTS.md): 16 sessions of 25 fps; a 40-48 GiB
# card (A100 40GB, L40S) about half that; smaller ones a few. Not from any GPU: 1 (ZeroGPU books a GPU per run).
SESSIONS_BY_GPU_GIB = ((70, 16), (40, 8), (0, 2))
BATCHINGS = ("any", "padded")
FP8_CHOICES = ("on", "off")
# Padded, compiled at load: a lone visitor's step, and a full one that every step of 2 to 8 is padded up to.
# Measured on an H200 (bench/RESULTS.md): 140 s of compiling a size, so 1, 2, 4 and 8 would keep the app from
# starting for over nine minutes.
WARM_SIZES = (1, 8)


def default_sessions() -> int:
    """Sessions at once for this machine's first GPU; 1 without one, and on ZeroGPU (no GPU outside a run)."""
    if zerogpu.ACTIVE or not torch.cuda.is_available():
        return 1
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return next(sessions for least, sessions in SESSIONS_BY_GPU_GIB if gib >= least)


@dataclass(frozen=True)
class FlashHeadSettings(EngineSettings):
    """One variant's settings; `preferred_variant` is what AVATAR_FLASHHEAD_VARIANT asks "auto" to pick."""

    variant: str = "lite"
    weights: str = "Soul-AILab/SoulX-FlashHead-1_3B"
    wav2vec2_weights: str = "facebook/wav2vec2-base-960h"
    preferred_variant: str = "lite"
    size: int = 512
    batching: str = "any"
    warm_sizes: tuple[int, ...] = WARM_SIZES
    fp8: str = "off"

    def __post_init__(self) -> None:
        check_choice("AVATAR_FLASHHEAD_BATCHING", self.batching, BATCHINGS)
        check_choice("AVATAR_FLASHHEAD_FP8", self.fp8, FP8_CHOICES)

    def wants_fp8(self, supported: bool) -> bool:
        """Whether the transformer multiplies in float8, given whether the GPU has FP8 tensor cores."""
        return self.fp8 == "on" and supported

    @classmethod
    def from_env(cls, variant: str) -> FlashHeadSettings:
        defaults = cls()
        return cls(
            sessions=env_int("AVATAR_FLASHHEAD_SESSIONS", default_sessions()),
            variant=variant,
            weights=env_str("AVATAR_FLASHHEAD_WEIGHTS", defaults.weights),
            wav2vec2_weights=env_str("AVATAR_WAV2VEC2_WEIGHTS", defaults.wav2vec2_weights),
            preferred_variant=env_str("AVATAR_FLASHHEAD_VARIANT", defaults.preferred_variant).lower(),
            size=env_int("AVATAR_FLASHHEAD_SIZE", defaults.size),
            batching=env_str("AVATAR_FLASHHEAD_BATCHING", defaults.batching).lower(),
            warm_sizes=batch_sizes(env_str("AVATAR_FLASHHEAD_WARM_SIZES", ",".join(map(str, defaults.warm_sizes)))),
            fp8=env_str("AVATAR_FLASHHEAD_FP8", defaults.fp8).lower(),
        )

    def preselect(self) -> bool:
        """Preselected where it can run when its weights are in a local folder (nothing to download)."""
        return self.variant == self.preferred_variant and Path(self.weights).expanduser().is_dir()


def batch_sizes(text: str) -> tuple[int, ...]:
    """"1,8" -> (1, 8): batch sizes, 1 always among them."""
    return tuple(sorted({1, *(int(part) for part in text.split(",") if part.strip())}))
