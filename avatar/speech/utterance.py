"""What a voice hands on: one sentence of audio with its text, and phoneme and word timings."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy.signal import resample_poly


@dataclass(frozen=True)
class Phone:
    """One spoken phoneme (IPA symbol) and when it sounds, in seconds from the sentence start."""

    symbol: str
    start: float
    end: float


@dataclass(frozen=True)
class Word:
    """One word as the user wrote it ("42", "Dr."), and when it is said, in seconds.

    From the start of its sentence in an `Utterance`; from the start of the run on a run's timeline.
    """

    text: str
    start: float
    end: float

    def shifted(self, seconds: float) -> Word:
        return Word(self.text, self.start + seconds, self.end + seconds)


@dataclass(frozen=True)
class Utterance:
    """A sentence as speech: mono float32 audio in [-1, 1], plus timings when the voice gives them.

    `words` are the sentence's written words in order, each once, when the voice reports its timing.
    """

    text: str
    audio: np.ndarray
    sample_rate: int
    phones: tuple[Phone, ...] = ()
    words: tuple[Word, ...] = ()

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def resampled(self, sample_rate: int) -> Utterance:
        """The same sentence at another rate (the engines take 16 kHz); timings are unchanged."""
        if sample_rate == self.sample_rate:
            return self
        divisor = np.gcd(sample_rate, self.sample_rate)
        audio = resample_poly(self.audio, sample_rate // divisor, self.sample_rate // divisor)
        return replace(self, audio=np.clip(audio, -1.0, 1.0).astype(np.float32), sample_rate=sample_rate)
