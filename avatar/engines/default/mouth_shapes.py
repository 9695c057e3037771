"""Speech -> mouth shape per video frame: how open, how wide or rounded, lower lip tucked.

Driven by phoneme timings when the voice gives them (visemes with coarticulation), else by
the audio itself (loudness for opening, spectral centroid for wide versus rounded). Either
way the mouth closes in silence and moves smoothly: targets are blended with a Gaussian of
about two frames, never snapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from avatar.config import FPS
from avatar.speech.utterance import Phone

# Shape targets: (open 0..1, spread -1 round .. +1 wide, lower-lip tuck 0..1).
CLOSED = (0.0, 0.0, 0.0)
VISEMES: dict[str, tuple[float, float, float]] = {}


def _viseme(symbols: str, shape: tuple[float, float, float]) -> None:
    for symbol in symbols.split():
        VISEMES[symbol] = shape


_viseme("p b m", (0.0, 0.0, 0.0))
_viseme("f v", (0.08, 0.1, 1.0))
_viseme("a ɑ æ ɐ ʌ ɒ", (1.0, 0.15, 0.0))
_viseme("ɛ e ɜ", (0.65, 0.45, 0.0))
_viseme("i ɪ j ᵻ", (0.32, 0.85, 0.0))
_viseme("o ɔ", (0.7, -0.75, 0.0))
_viseme("u ʊ w ʍ", (0.3, -1.0, 0.0))
_viseme("ə ɚ ɝ", (0.45, 0.0, 0.0))
_viseme("θ ð", (0.22, 0.2, 0.0))
_viseme("s z ʃ ʒ ɕ ʑ", (0.14, 0.45, 0.0))
_viseme("t d n l ɾ ɹ r k ɡ g ŋ x h ʔ ç", (0.3, 0.1, 0.0))
# Silence, pauses and sentence marks close the mouth.
_viseme("^ $ _ , . ! ? ; : …", CLOSED)
# Stress and length marks carry no shape of their own: they continue the phone before them.
MODIFIERS = set("ˈˌːˑ‿͡")

# Smoothing of the targets (seconds) and how far ahead the lips anticipate a sound.
COARTICULATION_SIGMA = 0.05
ANTICIPATION = 0.04
# Loudness range (dB below the utterance's peak) mapped onto opening 1..0.
LOUDNESS_RANGE_DB = 32.0
SILENCE_DB = -40.0
# How much of a phone's opening depends on how loud it is spoken: most of it, so that the jaw
# follows the syllables' loudness and the viseme mainly sets the shape.
LOUDNESS_SHARE = 0.75
# Lips part visibly for nearly every spoken sound: small openings are enlarged (a power under one),
# the wide ones hardly, and a closed mouth stays closed.
OPENING_GAMMA = 0.7
# The faint tails of the smoothing into silence and closures stay shut rather than enlarged.
CLOSED_BELOW = 0.02
# Frames quieter than this (dB of full scale) are silence whatever came before them.
QUIET_DBFS = -60.0


@dataclass(frozen=True)
class MouthTrack:
    """Per-frame mouth parameters for a stretch of speech, plus loudness for emphasis."""

    open: np.ndarray
    spread: np.ndarray
    tuck: np.ndarray
    loudness: np.ndarray

    def __len__(self) -> int:
        return len(self.open)


def frame_levels(audio: np.ndarray, sample_rate: int, frames: int) -> np.ndarray:
    """RMS level of each 40 ms frame in dB of full scale."""
    hop = sample_rate // FPS
    padded = np.zeros(frames * hop, np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    rms = np.sqrt(np.mean(padded.reshape(frames, hop) ** 2, axis=1) + 1e-12)
    return 20 * np.log10(rms)


def frame_loudness(audio: np.ndarray, sample_rate: int, frames: int, reference: float = QUIET_DBFS) -> np.ndarray:
    """RMS level of each 40 ms frame in dB under the loudest frame, or under `reference` if that is louder.

    The reference is the loudest speech heard so far: a few leftover samples at the end of a
    run are then as quiet as they are, not the "peak" of their own tiny stretch.
    """
    level = frame_levels(audio, sample_rate, frames)
    return level - max(float(level.max()), reference) if frames else level


def _spectral_centroid(audio: np.ndarray, sample_rate: int, frames: int) -> np.ndarray:
    hop = sample_rate // FPS
    padded = np.zeros(frames * hop, np.float32)
    padded[: min(len(audio), len(padded))] = audio[: len(padded)]
    spectrum = np.abs(np.fft.rfft(padded.reshape(frames, hop) * np.hanning(hop), axis=1))
    freqs = np.fft.rfftfreq(hop, 1 / sample_rate)
    return (spectrum * freqs).sum(axis=1) / (spectrum.sum(axis=1) + 1e-9)


def _phone_targets(phones: tuple[Phone, ...], times: np.ndarray) -> np.ndarray:
    """Piecewise-constant viseme targets sampled at `times` (seconds)."""
    targets = np.zeros((len(times), 3), np.float32)
    previous = CLOSED
    starts, shapes = [], []
    for phone in phones:
        if phone.symbol in MODIFIERS or phone.symbol == " ":
            shape = previous if phone.symbol in MODIFIERS else CLOSED
        else:
            shape = VISEMES.get(phone.symbol, VISEMES.get(phone.symbol[:1], (0.35, 0.0, 0.0)))
        starts.append(phone.start - ANTICIPATION)
        shapes.append(shape)
        previous = shape
    if not starts:
        return targets
    index = np.searchsorted(np.asarray(starts), times, side="right") - 1
    valid = (index >= 0) & (times < phones[-1].end)
    targets[valid] = np.asarray(shapes, np.float32)[index[valid]]
    return targets


def mouth_track(
    audio: np.ndarray, sample_rate: int, phones: tuple[Phone, ...], frames: int, reference: float = QUIET_DBFS
) -> MouthTrack:
    """Mouth parameters for `frames` frames of `audio` (phones, when given, share its timeline).

    `reference` is the loudest frame level (dBFS) heard before, so loudness is judged across sentences.
    """
    loudness = frame_loudness(audio, sample_rate, frames, reference)
    voiced = np.clip((loudness + LOUDNESS_RANGE_DB) / LOUDNESS_RANGE_DB, 0.0, 1.0)
    voiced[loudness < SILENCE_DB] = 0.0
    sigma = COARTICULATION_SIGMA * FPS
    if phones:
        # Sampled at 100 Hz so that short phones still count, then smoothed and taken per frame.
        fine_times = np.arange(frames * 4) / (FPS * 4)
        targets = _phone_targets(phones, fine_times)
        targets = gaussian_filter1d(targets, sigma * 4, axis=0, mode="nearest")
        targets = targets.reshape(frames, 4, 3).mean(axis=1)
        # The viseme sets the shape; the loudness, slightly smoothed, sets how far it opens.
        opening = targets[:, 0] * (1 - LOUDNESS_SHARE + LOUDNESS_SHARE * gaussian_filter1d(voiced, 1.0, mode="nearest"))
        opening = np.clip((opening - CLOSED_BELOW) / (1 - CLOSED_BELOW), 0.0, 1.0) ** OPENING_GAMMA
        spread, tuck = targets[:, 1], targets[:, 2]
    else:
        centroid = _spectral_centroid(audio, sample_rate, frames)
        opening = voiced**1.3
        spread = np.clip((centroid - 1500.0) / 1500.0, -1.0, 1.0) * (voiced > 0)
        tuck = np.zeros(frames, np.float32)
        opening = gaussian_filter1d(opening, sigma, mode="nearest")
        spread = gaussian_filter1d(spread, sigma * 1.5, mode="nearest")
    return MouthTrack(
        open=np.clip(opening, 0.0, 1.0).astype(np.float32),
        spread=np.clip(spread, -1.0, 1.0).astype(np.float32),
        tuck=np.clip(tuck, 0.0, 1.0).astype(np.float32),
        loudness=voiced.astype(np.float32),
    )
