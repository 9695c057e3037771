"""The distilled 4-step flow sampler with motion-latent overwrite (the published schedule, shift 5).

Kept apart from the model: it only needs a callable velocity model, so it can be tested with a stub
and reused for batched sessions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch

NUM_TIMESTEPS = 1000
DISTILLED_STEPS = (1000.0, 750.0, 500.0, 250.0)
SHIFT = 5.0

VelocityModel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def shifted_timesteps(steps: Sequence[float] = DISTILLED_STEPS, shift: float = SHIFT) -> list[float]:
    """The step times plus the final 0, each mapped by t <- T * shift*u / (1 + (shift-1)*u), u = t/T."""
    shifted = []
    for t in (*steps, 0.0):
        u = t / NUM_TIMESTEPS
        shifted.append(NUM_TIMESTEPS * shift * u / (1 + (shift - 1) * u))
    return shifted


def sample(
    model: VelocityModel,
    noise: torch.Tensor,
    motion: torch.Tensor,
    reference: torch.Tensor,
    audio: torch.Tensor,
    draw_noise: Callable[[], torch.Tensor],
    timesteps: Sequence[float] | None = None,
) -> torch.Tensor:
    """Denoise (B, C, F, h, w) latents whose first motion.shape[2] frames are pinned to `motion`.

    Each step predicts x0 = x - v * t and re-noises it to the next time with fresh noise (`draw_noise`).
    t = time/1000 is exact here (the published sampler rounds it to bf16 on a GPU), and no noise is drawn
    after the last step, whose later time is 0 (the published one draws it and multiplies it by 0).
    """
    times = shifted_timesteps() if timesteps is None else list(timesteps)
    pinned = motion.shape[2]
    x = noise.clone()
    batch = x.shape[0]
    for now, later in itertools.pairwise(times):
        x[:, :, :pinned] = motion
        velocity = model(x, torch.full((batch,), now, device=x.device), audio, reference)
        x0 = x - velocity * (now / NUM_TIMESTEPS)
        x = x0 if later == 0 else (1 - later / NUM_TIMESTEPS) * x0 + (later / NUM_TIMESTEPS) * draw_noise()
    x[:, :, :pinned] = motion
    return x
