"""The distilled 4-step flow sampler with motion-latent overwrite (the published schedule, shift 5).

Kept apart from the model: it only needs a callable velocity model, so it can be tested with a stub
and reused for batched sessions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

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
    pinned: torch.Tensor,
    reference: torch.Tensor,
    audio: torch.Tensor,
    draw_noise: Callable[[], torch.Tensor],
    timesteps: Sequence[float] | None = None,
) -> torch.Tensor:
    """Denoise (B, C, F, h, w) latents whose first frames are pinned to `motion` where `pinned` (B, 1, F, 1, 1) is set.

    Sessions may pin different numbers of frames (a first chunk one, a later chunk two) and still share each
    forward: `motion` is as long as `noise` and read only where pinned, so every session's latents are those
    it would have alone. Each step predicts x0 = x - v * t and re-noises it to the next time with fresh noise
    (`draw_noise`). t = time/1000 is exact here (the published sampler rounds it to bf16 on a GPU), and no
    noise is drawn after the last step, whose later time is 0 (the published one draws it and multiplies it by 0).
    """
    times = shifted_timesteps() if timesteps is None else list(timesteps)
    x = noise
    batch = x.shape[0]
    for now, later in itertools.pairwise(times):
        x = torch.where(pinned, motion, x)
        velocity = model(x, torch.full((batch,), now, device=x.device), audio, reference)
        x0 = x - velocity * (now / NUM_TIMESTEPS)
        x = x0 if later == 0 else (1 - later / NUM_TIMESTEPS) * x0 + (later / NUM_TIMESTEPS) * draw_noise()
    return torch.where(pinned, motion, x)


def pin_motion(motions: list[torch.Tensor], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each session's motion latents (1, C, m, h, w), m its own, as `sample` takes them: (B, C, frames, h, w)
    zero past each session's m, and the mask (B, 1, frames, 1, 1) of its first m frames."""
    padded = torch.cat([F.pad(motion, (0, 0, 0, 0, 0, frames - motion.shape[2])) for motion in motions])
    # Compared on the device with each length as a number: no host-to-device copy to wait for in a step.
    steps = torch.arange(frames, device=padded.device)
    pinned = torch.stack([steps < motion.shape[2] for motion in motions])
    return padded, pinned[:, None, :, None, None]
