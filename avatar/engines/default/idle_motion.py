"""The life around the mouth: blinks every 2 to 6 s, slow head sway, nods and brow lifts on emphasis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar.config import FPS

# Eyelid closure over one blink, a frame (40 ms) apart: about 120 ms fully or nearly closed.
BLINK_CURVE = np.array([0.35, 0.85, 1.0, 0.9, 0.45, 0.12], np.float32)
BLINK_INTERVAL = (2.0, 6.0)
# Head motion amplitudes: roll in degrees, sway and nod in pixels of a 512 crop.
ROLL_DEGREES = 0.9
SWAY_PIXELS = 1.6
NOD_PIXELS = 1.2
EMPHASIS_NOD_PIXELS = 2.5
EMPHASIS_BROW = 0.9


@dataclass(frozen=True)
class IdleTrack:
    """Per-frame values: eyelid closure 0..1, brow lift 0..1, head roll (deg) and shift (px)."""

    blink: np.ndarray
    brow: np.ndarray
    roll: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray


def emphasis(loudness: np.ndarray) -> np.ndarray:
    """0..1 where speech is louder than its surroundings: the stressed words."""
    if len(loudness) == 0:
        return loudness
    short = gaussian_filter1d(loudness, 1.0, mode="nearest")
    long = gaussian_filter1d(loudness, 8.0, mode="nearest")
    return np.clip(gaussian_filter1d((short - long) * 3.0, 1.5, mode="nearest"), 0.0, 1.0)


class IdleMotion:
    """Continues seamlessly from one call to the next, so sentences join without a jump."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.frame = 0
        self.next_blink = int(self.rng.uniform(0.8, 2.5) * FPS)
        self.phases = self.rng.uniform(0, 2 * np.pi, size=5)
        self.pending_blink = np.zeros(0, np.float32)

    def _blinks(self, count: int) -> np.ndarray:
        closure = np.zeros(count, np.float32)
        carried = self.pending_blink[:count]
        closure[: len(carried)] = carried
        self.pending_blink = self.pending_blink[count:]
        while self.next_blink < self.frame + count:
            start = self.next_blink - self.frame
            stop = min(start + len(BLINK_CURVE), count)
            closure[start:stop] = np.maximum(closure[start:stop], BLINK_CURVE[: stop - start])
            self.pending_blink = BLINK_CURVE[stop - start :].copy()
            self.next_blink += int(self.rng.uniform(*BLINK_INTERVAL) * FPS)
        return closure

    def next(self, loudness: np.ndarray) -> IdleTrack:
        """Values for the next len(loudness) frames."""
        count = len(loudness)
        t = (self.frame + np.arange(count)) / FPS
        stress = emphasis(loudness)
        p = self.phases
        roll = ROLL_DEGREES * (0.65 * np.sin(2 * np.pi * 0.21 * t + p[0]) + 0.35 * np.sin(2 * np.pi * 0.47 * t + p[1]))
        sway = SWAY_PIXELS * np.sin(2 * np.pi * 0.16 * t + p[2])
        nod = NOD_PIXELS * np.sin(2 * np.pi * 0.29 * t + p[3]) + EMPHASIS_NOD_PIXELS * stress
        track = IdleTrack(
            blink=self._blinks(count),
            brow=(EMPHASIS_BROW * stress).astype(np.float32),
            roll=roll.astype(np.float32),
            shift_x=sway.astype(np.float32),
            shift_y=nod.astype(np.float32),
        )
        self.frame += count
        return track
