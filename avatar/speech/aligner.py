"""Forced alignment: the words a visitor typed, timed against their own recording, offline.

pocketsphinx (BSD) ships an English acoustic model and pronunciation dictionary in its wheel, so
nothing is downloaded. Words are kept as the user wrote them ("42", "Dr."); what the decoder
listens for is each word's pronunciation: the dictionary's (with its variants) for a plain word,
else espeak's reading of the written word (numbers, abbreviations, names), the same reading Piper
uses, mapped onto the model's phone set.

A recording is aligned stretch by stretch (`Aligner.heard`), so the first piece is timed without
waiting for the whole file. Each stretch is decoded against a grammar of the remaining words that
may stop after any word, so the first words are timed from the first seconds alone; the caller
cuts its piece between two heard words and the next stretch starts there. The last stretch must
say every remaining word.
"""

from __future__ import annotations

import queue
import re
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

from avatar.speech.utterance import Word
from avatar.speech.word_timing import written_words

# The acoustic model's rate and its frame step (pocketsphinx's -frate 100).
ALIGN_RATE = 16_000
SECONDS_PER_FRAME = 0.01
# Wider beams than pocketsphinx's defaults (1e-48, 7e-29): a grammar of one path is cheap to search, and
# the default beams drop the right path on unusual voices (measured on eSpeak's), leaving no result.
# No lattice rescoring (-bestpath): it may pick a path the grammar does not allow, dropping words.
# topn 8 rather than 4 Gaussians a senone: with 4 the search loses every path on some eSpeak sentences.
DECODER_OPTIONS = {
    "beam": 1e-80, "pbeam": 1e-80, "wbeam": 1e-60, "bestpath": False, "fsgusefiller": False, "topn": 8,
}
# Pauses and noises may come between words, with pocketsphinx's own probabilities (-silprob, -fillprob). They are
# added here rather than by pocketsphinx (-fsgusefiller), which puts them on the final state too, where
# the search can then rest and skip the words still to come.
FILLERS = (("<sil>", 0.005), ("[NOISE]", 1e-8))
# Nobody says more than this many words a second; a piece's grammar need not look further ahead.
MAX_WORDS_PER_SECOND = 8
# espeak's symbols (en-us) as the model's phones, longest first; stress, length and syllabic marks are dropped.
_ARPABET = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "ɔɪ": "OY", "tʃ": "CH", "dʒ": "JH",
    "iə": "IY", "ɪə": "IH", "ʊə": "UH", "eə": "EH",
    "ɑ": "AA", "ɒ": "AA", "æ": "AE", "a": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɔ": "AO",
    "ɛ": "EH", "e": "EH", "ɚ": "ER", "ɜ": "ER", "ɝ": "ER", "ɪ": "IH", "ᵻ": "IH", "i": "IY",
    "o": "OW", "ʊ": "UH", "u": "UW",
    "b": "B", "d": "D", "f": "F", "ɡ": "G", "g": "G", "h": "HH", "j": "Y", "k": "K", "l": "L",
    "ɫ": "L", "ɬ": "L", "m": "M", "n": "N", "ŋ": "NG", "p": "P", "ɹ": "R", "r": "R", "s": "S",
    "ʃ": "SH", "t": "T", "ɾ": "T", "ʔ": "T", "θ": "TH", "ð": "DH", "v": "V", "w": "W", "ʍ": "W",
    "z": "Z", "ʒ": "ZH", "x": "K", "ç": "HH",
}
_LONGEST = max(len(symbol) for symbol in _ARPABET)
_DICTIONARY_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
_ALTERNATE = re.compile(r"\(\d+\)$")


def arpabet(ipa: str) -> list[str]:
    """espeak's IPA for one spoken word as the model's phones; symbols with no counterpart are left out."""
    symbols = "".join(ch for ch in unicodedata.normalize("NFD", ipa) if ch.isalpha() and ch not in "ːˑ")
    phones: list[str] = []
    i = 0
    while i < len(symbols):
        for size in range(min(_LONGEST, len(symbols) - i), 0, -1):
            phone = _ARPABET.get(symbols[i : i + size])
            if phone is not None:
                phones.append(phone)
                i += size
                break
        else:
            i += 1
    return phones


class _Espeak:
    """espeak's reading of a written word (Piper's own espeak-ng, already loaded for the offline voice)."""

    _lock = threading.Lock()
    _phonemizer = None

    @classmethod
    def spoken_words(cls, written: str) -> list[str]:
        """The IPA of each word espeak says for `written` ("42" -> two words)."""
        with cls._lock:
            if cls._phonemizer is None:
                from piper.phonemize_espeak import EspeakPhonemizer

                cls._phonemizer = EspeakPhonemizer()
            sentences = cls._phonemizer.phonemize("en-us", written)
        return "".join(symbol for sentence in sentences for symbol in sentence).split()


class _Decoders:
    """pocketsphinx decoders kept between runs: loading the model takes a fifth of a second."""

    _idle: queue.SimpleQueue = queue.SimpleQueue()

    @classmethod
    @contextmanager
    def one(cls) -> Iterator[object]:
        try:
            decoder = cls._idle.get_nowait()
        except queue.Empty:
            from pocketsphinx import Decoder

            decoder = Decoder(lm=None, loglevel="FATAL", **DECODER_OPTIONS)
        try:
            yield decoder
        finally:
            cls._idle.put(decoder)


def warm_up() -> None:
    """Load a decoder and espeak before the first run needs them (a fifth of a second on 2 cores)."""
    with _Decoders.one():
        _Espeak.spoken_words("ready")


def _dictionary_key(written: str) -> str:
    """The written word as the dictionary spells it: lower case, curly apostrophes straight, no outer punctuation."""
    folded = unicodedata.normalize("NFKC", written).lower().replace("’", "'")
    return re.sub(r"^[^\w']+|[^\w']+$", "", folded).strip("'")


def _tokens(decoder, written: str) -> tuple[str, ...]:
    """The dictionary words the decoder listens for when `written` is said.

    A plain word the dictionary knows is looked up, with its variants ("Dr." is "drive" or
    "doctor" there); anything else (numbers, "e.g.", names it lacks) is read by espeak, each
    spoken word named by its phones ("F_AO_R_T_IY"), which `_add_readings` puts in a decoder's dictionary.
    """
    key = _dictionary_key(written)
    if _DICTIONARY_WORD.fullmatch(key) and decoder.lookup_word(key) is not None:
        return (key,)
    return tuple("_".join(phones) for phones in map(arpabet, _Espeak.spoken_words(written)) if phones)


def _add_readings(decoder, said: list[_Said]) -> None:
    """Put espeak's readings among `said` into this decoder's dictionary (each pooled decoder has its own)."""
    for token in {token for word in said for token in word.tokens}:
        if decoder.lookup_word(token) is None:
            decoder.add_word(token, token.replace("_", " "), True)


@dataclass(frozen=True)
class _Said:
    """One written word and the dictionary words it is said as (none: nothing to listen for)."""

    text: str
    tokens: tuple[str, ...]


class Aligner:
    """Times a transcript's written words, in order, against consecutive stretches of one recording.

    `heard` times the next words in a stretch; the caller decides how many of them its piece keeps
    (`advance`), so a piece can be cut between two words the aligner has heard. Not thread-safe: one
    run, one aligner.
    """

    def __init__(self, transcript: str) -> None:
        self._texts: list[str] = written_words(transcript)
        self._said: list[_Said] | None = None
        self._untimed: list[bool] = []
        # Words kept with no time of their own (placed between their neighbours), for the user to be told.
        self.unheard = 0

    @property
    def remaining(self) -> int:
        """Written words not yet kept by a piece."""
        return len(self._texts) if self._said is None else len(self._said)

    def heard(self, audio: np.ndarray, sample_rate: int, last: bool) -> tuple[Word, ...]:
        """The next words said in `audio`, timed from its start: as many as were heard, or every one left if `last`.

        A word the decoder could not place (the recording does not say it, or with `last` the search
        found no path through them all) gets the gap between its neighbours, and counts in `unheard`.
        """
        if not self.remaining:
            return ()
        seconds = len(audio) / sample_rate
        with _Decoders.one() as decoder:
            if self._said is None:
                self._said = [_Said(text, _tokens(decoder, text)) for text in self._texts]
            _add_readings(decoder, self._said)
            pcm = _pcm(audio, sample_rate)
            window = self._said[: int(seconds * MAX_WORDS_PER_SECOND) + 2]
            times = _decode(decoder, pcm, self._said, forced=True) if last else None
            if times is None:
                times = _decode(decoder, pcm, window, forced=False) or []
        heard = [index for index, time in enumerate(times) if time is not None]
        count = len(self._said) if last else (heard[-1] + 1 if heard else 0)
        times = (times + [None] * count)[:count]
        self._untimed = [time is None for time in times]
        return _fill_untimed([said.text for said in self._said[:count]], times, seconds)

    def advance(self, count: int) -> None:
        """The first `count` words of the last `heard` are kept by a piece: the next stretch starts after them."""
        self.unheard += sum(self._untimed[:count])
        del self._said[:count]


def _pcm(audio: np.ndarray, sample_rate: int) -> bytes:
    """The model's input: 16-bit mono at 16 kHz, dithered.

    Stretches of digital silence (exact zeros, as synthesised speech and some recorders write)
    otherwise derail the search after a pause. The dither is seeded, so a stretch always aligns the same.
    """
    if sample_rate != ALIGN_RATE:
        divisor = np.gcd(ALIGN_RATE, sample_rate)
        audio = resample_poly(audio, ALIGN_RATE // divisor, sample_rate // divisor)
    samples = np.round(np.clip(audio, -1.0, 1.0) * 32766) + np.random.default_rng(0).integers(-1, 2, len(audio))
    return samples.astype("<i2").tobytes()


def _decode(decoder, pcm: bytes, window: list[_Said], forced: bool) -> list[tuple[float, float] | None] | None:
    """Each window word's (start, end) as the decoder heard it (None: a word with nothing to listen for, or
    after the last word heard); None if the search found no path.

    The grammar is the window's dictionary words in a row, fillers between them. It ends after the
    last one when `forced`, else it may end after any word.
    """
    path = [(index, token) for index, said in enumerate(window) for token in said.tokens]
    ends = len(path) + 1
    transitions = [(k, k + 1, 1.0, token) for k, (_, token) in enumerate(path)]
    transitions += [(k, k, probability, filler) for k in range(len(path) + 1) for filler, probability in FILLERS]
    if forced:
        transitions.append((len(path), ends, 1.0))
    else:
        boundaries = [k for k in range(len(path) + 1) if k in (0, len(path)) or path[k][0] != path[k - 1][0]]
        transitions += [(k, ends, 1.0) for k in boundaries]
    decoder.add_fsg("piece", decoder.create_fsg("piece", 0, ends, transitions))
    decoder.activate_search("piece")
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return None
    times: list[tuple[float, float] | None] = [None] * len(window)
    k = 0
    for segment in decoder.seg():
        if k < len(path) and _ALTERNATE.sub("", segment.word) == path[k][1]:
            index = path[k][0]
            start, end = segment.start_frame * SECONDS_PER_FRAME, (segment.end_frame + 1) * SECONDS_PER_FRAME
            known = times[index]
            times[index] = (start, end) if known is None else (known[0], end)
            k += 1
    return times


def _fill_untimed(texts: list[str], times: list[tuple[float, float] | None], duration: float) -> tuple[Word, ...]:
    """Words with their times; a word not heard gets the gap between its neighbours (the stretch's end after the last).
    """
    words: list[Word] = []
    for index, (text, time) in enumerate(zip(texts, times, strict=True)):
        if time is None:
            before = words[-1].end if words else 0.0
            after = next((t[0] for t in times[index + 1 :] if t is not None), duration)
            time = (before, max(before, after))
        words.append(Word(text, min(time[0], duration), min(time[1], duration)))
    return tuple(words)
