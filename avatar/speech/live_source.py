"""A visitor's microphone as a run's speech, live: samples from the page in, small pieces out as they come.

The page (`ui/live_microphone.js`) posts what the microphone heard every tenth of a second; `push`
takes it to the run's rate (`avatar.media.AUDIO_RATE`) and `utterances` hands the run everything that
came since its last piece, so the face speaks a moment after the visitor does. Between words the sound
is gated to silence, so the face rests (blinks and head motion go on) instead of mouthing the room's
hiss; speech is brought to the voices' level by a gain that follows the speech heard so far, so a quiet
microphone animates like a voice. The session ends when the visitor stops or leaves, at the time
limit, or when the microphone or its sound stops coming, and then says why in one sentence.

Typed words become the captions of the finished take: they are aligned (`avatar/speech/aligner.py`)
once the take is whole, since a tenth of a second holds no word to align.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import numpy as np
from scipy.signal import resample_poly

from avatar.errors import UserFacingError
from avatar.media import AUDIO_RATE
from avatar.speech.aligner import Aligner
from avatar.speech.recording import (
    MIN_SPEECH_RANGE_DB,
    PEAK_DBFS,
    SILENT_DBFS,
    SPEECH_RANGE_DB,
    TARGET_SPEECH_DBFS,
    aligned_pieces,
    frame_levels,
)
from avatar.speech.sources import SpeechSource
from avatar.speech.text import latin_share
from avatar.speech.utterance import Utterance, Word

# The gate judges the sound every 10 ms: a word's start is let through within one block.
BLOCK_SECONDS = 0.01
# The room's floor is the quietest block of the last two seconds (minimum statistics): a steady fan
# or hiss that starts mid-session is floor, not speech, two seconds later.
FLOOR_SECONDS = 2.0
# The gate stays open this long after the last block loud enough to be speech, so a word's soft end
# and the short quiet inside words (a stop's closure) are kept.
HOLD_SECONDS = 0.25
# A quiet microphone is raised by at most this much: more would mostly raise its noise.
MAX_GAIN_DB = 30.0
# Pieces are at least a video frame of sound: less only wakes the engine for nothing.
MIN_PIECE_SECONDS = 0.04
# How long the page may take to send the first sound (the visitor answering the browser's question
# about the microphone), and how long the sound may then stop before the session is over.
FIRST_SOUND_SECONDS = 30.0
STALL_SECONDS = 3.0
# How often a wait for sound looks at the clock.
POLL_SECONDS = 0.1
# The rates a page may send at (its audio context's: 44.1 or 48 kHz on most machines), and the most one
# post may carry (several seconds, sent at once after a network hiccup).
RATES = (8_000, 192_000)
MAX_POST_BYTES = 2_000_000

# Why the page ended a session (ui/live_microphone.js sends the word), and what the visitor is told
# ("": nothing went wrong).
ENDINGS = {
    "stopped": "",
    "left": "",
    "denied": (
        "The microphone was not allowed, so the live session could not go on: "
        "allow it for this page and press Start again."
    ),
    "missing": "No microphone was found: connect one (or choose one in the browser's settings) and press Start again.",
    "lost": "The microphone stopped sending sound (unplugged or switched off), so the live session ended.",
    "failed": "This browser could not record from the microphone, so the live session ended.",
}
STALLED = "The sound from your microphone stopped reaching the server (a network problem?), so the live session ended."
NO_SOUND = "No sound came from the microphone in time, so the live session ended: allow it and press Start again."
TIME_LIMIT = "Live sessions last up to {seconds:.0f} seconds, and this one reached that."
NOTHING_HEARD = "The live session ended before any sound came from the microphone: press Start, then talk."


def pcm_samples(data: bytes) -> np.ndarray:
    """16-bit little-endian PCM, as the page sends it, as float32 samples in [-1, 1]."""
    return np.frombuffer(data[: len(data) // 2 * 2], "<i2").astype(np.float32) / 32768


class StreamResampler:
    """One stream from `rate` to `target`, piece by piece, giving the samples resampling it whole would give.

    Each piece is resampled with as much of the input before it as the filter reaches (resample_poly's:
    ten taps a side for each step of the larger rate), and the last few input samples wait for the next
    piece, or `flush`, so the filter can reach past them.
    """

    def __init__(self, rate: int, target: int = AUDIO_RATE) -> None:
        divisor = math.gcd(rate, target)
        self.rate = rate
        self.up, self.down = target // divisor, rate // divisor
        self.reach = math.ceil(10 * max(self.up, self.down) / self.up) + 1
        self._input = np.zeros(0, np.float32)
        self._first = 0  # the input sample that self._input starts with
        self._received = 0
        self._made = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The output samples that `samples` completes."""
        if self.up == self.down:
            return samples.astype(np.float32)
        self._input = np.concatenate([self._input, samples.astype(np.float32)])
        self._received += len(samples)
        ready = (self._received - 1 - self.reach) * self.up // self.down + 1
        return self._make(ready)

    def flush(self) -> np.ndarray:
        """The rest, as the stream's end (silence past it, as resampling it whole would have)."""
        if self.up == self.down:
            return np.zeros(0, np.float32)
        return self._make(-(-self._received * self.up // self.down))

    def _make(self, until: int) -> np.ndarray:
        if until <= self._made:
            return np.zeros(0, np.float32)
        start = self._window_start()
        window = self._input[start - self._first :]
        made = resample_poly(window, self.up, self.down)
        offset = start // self.down * self.up
        out = made[self._made - offset : until - offset].astype(np.float32)
        self._made = until
        keep = self._window_start()
        self._input, self._first = self._input[keep - self._first :], keep
        return out

    def _window_start(self) -> int:
        """An input sample at which the output grid starts afresh, far enough before the next output for the filter."""
        return max(0, (self._made * self.down - self.reach * self.up) // (self.up * self.down)) * self.down


class Leveller:
    """Silence between words and speech at the voices' level: a gate and a gain that follow the sound so far.

    The gate opens where a 10 ms block is MIN_SPEECH_RANGE_DB above the room's floor (and above the
    level of a muted microphone) and closes HOLD_SECONDS after; closed, the sound is digital silence,
    which every engine draws as a mouth at rest. The gain brings the speech heard so far to the
    recordings' level (`avatar/speech/recording.py`) and its loudest sample under PEAK_DBFS; it moves
    only while the visitor speaks, never raising the room in a pause. Both change along a ramp, so
    neither clicks.
    """

    def __init__(self, rate: int = AUDIO_RATE) -> None:
        self.rate = rate
        self.block = round(BLOCK_SECONDS * rate)
        self._rest = np.zeros(0, np.float32)
        self._recent: deque[float] = deque(maxlen=round(FLOOR_SECONDS / BLOCK_SECONDS))
        self._speech: list[float] = []
        self._peak = 0.0
        self._hold = round(HOLD_SECONDS / BLOCK_SECONDS)
        self._quiet_blocks = self._hold + 1
        self._gate = 0.0
        self._gain = 1.0

    @property
    def gain_db(self) -> float:
        return 20 * math.log10(self._gain)

    def level(self, audio: np.ndarray, final: bool = False) -> np.ndarray:
        """`audio` gated and levelled, in whole blocks; a part block waits for the next call, or `final`."""
        audio = np.concatenate([self._rest, audio.astype(np.float32)])
        whole = len(audio) if final else len(audio) // self.block * self.block
        audio, self._rest = audio[:whole], audio[whole:]
        if not whole:
            return audio
        padded = np.concatenate([audio, np.zeros(-whole % self.block, np.float32)])
        levels = frame_levels(padded, self.rate, BLOCK_SECONDS)
        blocks = padded.reshape(-1, self.block)
        heard_before = bool(self._speech)
        judged = [self._judge(float(level), block) for level, block in zip(levels, blocks, strict=True)]
        gates = np.asarray(judged, np.float32)
        gate = self._ramp(self._gate, gates, whole)
        gain = self._next_gain()
        # The first speech gets its gain at once; after that the gain glides, so it never jumps mid-word.
        glide = heard_before and gain != self._gain
        ramp = np.linspace(self._gain, gain, whole, endpoint=False, dtype=np.float32) if glide else gain
        self._gate, self._gain = float(gates[-1]), gain
        return np.clip(audio * gate * ramp, -1.0, 1.0).astype(np.float32)

    def _judge(self, level: float, block: np.ndarray) -> float:
        """1 where the gate is open for this block, else 0; what is let through counts as speech."""
        self._recent.append(level)
        loud = level > max(min(self._recent) + MIN_SPEECH_RANGE_DB, SILENT_DBFS)
        self._quiet_blocks = 0 if loud else self._quiet_blocks + 1
        if self._quiet_blocks > self._hold:
            return 0.0
        self._speech.append(level)
        self._peak = max(self._peak, float(np.abs(block).max()))
        return 1.0

    def _ramp(self, before: float, gates: np.ndarray, length: int) -> np.ndarray:
        """Per-sample gate: each block's value reached along a line from the one before."""
        starts = np.concatenate([[before], gates[:-1]])
        fraction = np.arange(self.block, dtype=np.float32) / self.block
        ramp = starts[:, None] + (gates - starts)[:, None] * fraction[None, :]
        return ramp.reshape(-1)[:length]

    def _next_gain(self) -> float:
        """The gain for the speech so far: its level (as `speech_level` judges it) to TARGET_SPEECH_DBFS."""
        if not self._speech:
            return self._gain
        levels = np.asarray(self._speech)
        level = float(np.percentile(levels[levels >= levels.max() - SPEECH_RANGE_DB], 90))
        peak_db = 20 * math.log10(max(self._peak, 1e-6))
        return 10 ** (min(TARGET_SPEECH_DBFS - level, PEAK_DBFS - peak_db, MAX_GAIN_DB) / 20)


class LiveSpeech(SpeechSource):
    """The visitor's microphone, live: the page `push`es what it hears, the run takes it as it comes.

    Thread-safe: the page's requests push, the run's speech thread reads, the page's Stop finishes.
    """

    def __init__(
        self, max_seconds: float, words: str = "", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.token = secrets.token_urlsafe(16)
        self.max_seconds = max_seconds
        self.text = words.strip()
        self._clock = clock
        self._condition = threading.Condition()
        self._resampler: StreamResampler | None = None
        self._leveller = Leveller()
        self._pending: list[np.ndarray] = []
        self._take: list[np.ndarray] = []
        self._received = 0
        self._deadline: float | None = None  # set when the run first asks for sound
        self._ending: str | None = None  # None while live; then why it ended ("" when nothing went wrong)
        self._aligner: Aligner | None = None

    @property
    def label(self) -> str:
        return "you, live"

    @property
    def summary(self) -> str:
        return f"live from your microphone (up to {self.max_seconds:.0f} s)"

    @property
    def ended(self) -> bool:
        return self._ending is not None

    @property
    def notice(self) -> str:
        """Why the session ended, if something ended it, and what became of the captions."""
        return " ".join(part for part in (self._ending or "", self._captions_notice()) if part)

    def push(self, samples: np.ndarray, rate: int) -> bool:
        """Take mono samples in [-1, 1] at `rate`; False once the session has ended (the page then stops sending)."""
        if not RATES[0] <= rate <= RATES[1]:
            raise ValueError(f"a microphone's rate is {RATES[0]} to {RATES[1]} Hz, not {rate}")
        with self._condition:
            if self._ending is not None:
                return False
            if self._resampler is None or self._resampler.rate != rate:
                tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, np.float32)
                self._resampler = StreamResampler(rate)
                self._add(tail)
            self._add(self._resampler.push(samples))
            self._deadline = self._clock() + STALL_SECONDS
            self._condition.notify_all()
            return self._ending is None

    def finish(self, why: str = "stopped") -> None:
        """End the session for the page's reason (a key of ENDINGS; an unknown one counts as "failed")."""
        with self._condition:
            self._end(ENDINGS.get(why, ENDINGS["failed"]))

    def _add(self, resampled: np.ndarray, final: bool = False) -> None:
        """Level and keep new sound; at the time limit, keep what fits and end."""
        levelled = self._leveller.level(resampled, final)
        room = round(self.max_seconds * AUDIO_RATE) - self._received
        full = len(levelled) >= room and not final
        if full:
            levelled = levelled[:room]
        if len(levelled):
            self._pending.append(levelled)
            if self.text:
                self._take.append(levelled)
            self._received += len(levelled)
        if full:  # what the resampler and the gate still hold is past the limit
            self._end(TIME_LIMIT.format(seconds=self.max_seconds), keep=False)

    def _end(self, sentence: str, keep: bool = True) -> None:
        """The first ending counts; with `keep`, what the resampler and the gate hold goes in as the last sound."""
        if self._ending is not None:
            return
        self._ending = sentence
        if keep and self._resampler is not None:
            self._add(self._resampler.flush(), final=True)
        self._condition.notify_all()

    def utterances(self) -> Iterator[Utterance]:
        """Pieces of sound as they come, then (with typed words) the captions; no phones: engines animate the sound.

        No sound at all ends the run with the reason's sentence instead.
        """
        while (piece := self._next_piece()) is not None:
            yield Utterance(text="", audio=piece, sample_rate=AUDIO_RATE)
        if not self._received:
            raise UserFacingError(self._ending or NOTHING_HEARD)
        if self.text and not self._captions_notice():
            yield self._captions()

    def _next_piece(self) -> np.ndarray | None:
        """Everything that came since the last piece, once there is a frame's worth; None when the session is over."""
        least = round(MIN_PIECE_SECONDS * AUDIO_RATE)
        with self._condition:
            if self._deadline is None:
                self._deadline = self._clock() + FIRST_SOUND_SECONDS
            while sum(map(len, self._pending)) < least and self._ending is None:
                if self._clock() > self._deadline:
                    self._end(STALLED if self._received else NO_SOUND)
                else:
                    self._condition.wait(POLL_SECONDS)
            if not self._pending:
                return None
            piece, self._pending = np.concatenate(self._pending), []
            return piece

    def _captions(self) -> Utterance:
        """The typed words aligned against the whole take, as a soundless last utterance.

        A run places an utterance's words after the sound before it, so each time here is counted back
        from the take's end.
        """
        take = np.concatenate(self._take)
        self._aligner = Aligner(self.text)
        words: list[Word] = []
        for start, _, heard in aligned_pieces(take, AUDIO_RATE, self._aligner):
            words += [word.shifted(start / AUDIO_RATE - len(take) / AUDIO_RATE) for word in heard]
        return Utterance(
            text=self.text, audio=np.zeros(0, np.float32), sample_rate=AUDIO_RATE, words=tuple(words)
        )

    def _captions_notice(self) -> str:
        if not self.text:
            return "There are no captions: type the words you will say before Start to get them."
        if latin_share(self.text) < 0.5:
            return "There are no captions: they can be matched to English speech only, and these words are not."
        if self._aligner is not None and self._aligner.unheard:
            return (
                f"{self._aligner.unheard} of the typed words could not be found in what you said; "
                "their captions are placed between their neighbours'."
            )
        return ""


class LiveMicrophones:
    """Live sessions by unguessable token, so only the page that started one can feed it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, LiveSpeech] = {}

    def add(self, speech: LiveSpeech) -> None:
        with self._lock:
            for token in [token for token, session in self._sessions.items() if session.ended]:
                del self._sessions[token]
            self._sessions[speech.token] = speech

    def get(self, token: str) -> LiveSpeech | None:
        with self._lock:
            return self._sessions.get(token)
