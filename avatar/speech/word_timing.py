"""Word timings: each word of a sentence as the user wrote it, with when the voice says it.

Captions show the text as typed ("42", "Dr."), not as spoken ("forty two", "doctor"), so the
written words are matched to what the voice reports:

- Piper reports how long each phoneme lasts, and its phonemizer (espeak) puts a space between
  spoken words. espeak joins some words ("out of" -> "aʊɾəv") and says others as several
  ("42" -> "fɔːɹɾi tuː"), and says a word a little differently in a sentence than alone ("to":
  "tə" / "tuː"), so words are not counted but aligned: each written word is phonemized alone,
  and that phoneme sequence is aligned with the sentence's by edit distance, spaces included,
  so word ends meet word ends wherever the two agree.
- edge-tts reports WordBoundary events (offset and duration in 100-ns ticks) that quote the
  words of the text it was given, so each is found in the sentence by its text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from html import unescape

import numpy as np

from avatar.speech.utterance import Phone, Word

# edge-tts's offsets and durations are in ticks of 100 ns.
TICKS_PER_SECOND = 10_000_000
# Stress marks are not sounds: they belong to the sound after them.
_STRESS = frozenset("ˈˌ")
# Between spoken words; also Piper's start (^) and end ($) of a sentence and punctuation, which are pauses.
_GAP = "|"
_PIECE = re.compile(r"\S+")


def _has_word(piece: str) -> bool:
    return any(unicodedata.category(ch)[0] in "LN" for ch in piece)


def written_spans(sentence: str) -> list[tuple[int, int]]:
    """Where each written word is in `sentence`: pieces between spaces.

    A piece with no letter or digit ("-", "&") goes with the word before it (the first word, if
    it comes first), so that every caption word has something to say.
    """
    spans: list[tuple[int, int]] = []
    leading: int | None = None
    for match in _PIECE.finditer(sentence):
        start, end = match.span()
        if _has_word(match.group()):
            spans.append((start if leading is None else leading, end))
            leading = None
        elif spans:
            spans[-1] = (spans[-1][0], end)
        elif leading is None:
            leading = start
    if leading is not None:  # symbols only: no word to join
        spans.append((leading, len(sentence.rstrip())))
    return spans


def written_words(sentence: str) -> list[str]:
    """The sentence's words as the user wrote them, punctuation attached ("there,")."""
    return [sentence[start:end] for start, end in written_spans(sentence)]


def _is_sound(symbol: str) -> bool:
    return symbol not in _STRESS and unicodedata.category(symbol)[0] in "LM"


def _spoken_sequence(phones: Sequence[Phone]) -> tuple[list[str], list[tuple[float, float]]]:
    """The sentence's sounds and gaps, in order, each sound with its time (a stress mark's time goes to the next).

    Runs of gaps become one.
    """
    symbols: list[str] = []
    times: list[tuple[float, float]] = []
    stress_start: float | None = None
    for phone in phones:
        if _is_sound(phone.symbol):
            start = phone.start if stress_start is None else stress_start
            symbols.append(phone.symbol)
            times.append((start, phone.end))
            stress_start = None
        elif phone.symbol in _STRESS:
            stress_start = phone.start if stress_start is None else stress_start
        elif symbols and symbols[-1] != _GAP:
            symbols.append(_GAP)
            times.append((phone.start, phone.end))
    return symbols, times


def _written_sequence(word_phonemes: Sequence[Sequence[str]]) -> tuple[list[str], list[int]]:
    """Every written word's phonemes in a row, gaps between and inside words; each symbol with its word's index."""
    symbols: list[str] = []
    owners: list[int] = []
    for index, phonemes in enumerate(word_phonemes):
        if symbols and symbols[-1] != _GAP:
            symbols.append(_GAP)
            owners.append(index)
        for symbol in phonemes:
            if _is_sound(symbol):
                symbols.append(symbol)
                owners.append(index)
            elif symbol not in _STRESS and symbols and symbols[-1] != _GAP:
                symbols.append(_GAP)
                owners.append(index)
    return symbols, owners


def _align(spoken: list[str], written: list[str]) -> list[int | None]:
    """For each spoken symbol, the written symbol it aligns with (None: said but not written), by edit distance.

    A sound for a sound costs 0 when they are the same, else 1; a gap never stands for a sound;
    leaving a symbol out costs 1. Rows are computed with numpy (the insertions along a row as a
    running minimum), so a 240-character sentence takes a few milliseconds.
    """
    vocabulary = {symbol: index for index, symbol in enumerate(sorted(set(spoken) | set(written)))}
    a = np.array([vocabulary[s] for s in spoken], np.int32)
    b = np.array([vocabulary[s] for s in written], np.int32)
    a_gap = np.array([s == _GAP for s in spoken])
    b_gap = np.array([s == _GAP for s in written])
    n, m = len(a), len(b)
    steps = np.arange(m + 1, dtype=np.int32)
    table = np.empty((n + 1, m + 1), np.int32)
    table[0] = steps
    substitution = np.empty((n, m), np.int32)
    for i in range(1, n + 1):
        cost = (a[i - 1] != b).astype(np.int32)
        cost[a_gap[i - 1] != b_gap] = 2  # never cheaper than leaving both out
        substitution[i - 1] = cost
        row = np.empty(m + 1, np.int32)
        row[0] = i
        row[1:] = np.minimum(table[i - 1, 1:] + 1, table[i - 1, :-1] + cost)
        table[i] = np.minimum.accumulate(row - steps) + steps
    pairs: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if table[i, j] == table[i - 1, j - 1] + substitution[i - 1, j - 1]:
            pairs[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif table[i, j] == table[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs


def _fill_unheard(texts: Sequence[str], times: Sequence[tuple[float, float] | None]) -> tuple[Word, ...]:
    """Words with their times; a word no timing reached gets the pause before the next one (or after the last)."""
    words: list[Word] = []
    for index, (text, time) in enumerate(zip(texts, times, strict=True)):
        if time is None:
            before = words[-1].end if words else 0.0
            after = next((t[0] for t in times[index + 1 :] if t is not None), before)
            time = (before, max(before, after))
        words.append(Word(text, *time))
    return tuple(words)


def words_from_phones(
    texts: Sequence[str], word_phonemes: Sequence[Sequence[str]], phones: Sequence[Phone]
) -> tuple[Word, ...]:
    """The written words `texts` timed by the sentence's `phones`, given each word's phonemes said alone.

    A word's time runs from its first sound (with the stress mark before it) to its last; a
    sound the alignment cannot place goes to the word of the sound before it in the same spoken
    word (else the one after).
    """
    spoken, spoken_times = _spoken_sequence(phones)
    written, owners = _written_sequence(word_phonemes)
    pairs = _align(spoken, written)
    owner_of: list[int | None] = [
        owners[j] if j is not None and written[j] != _GAP and spoken[i] != _GAP else None for i, j in enumerate(pairs)
    ]
    _place_unaligned_sounds(spoken, owner_of)
    times: list[tuple[float, float] | None] = [None] * len(texts)
    for symbol, owner, (start, end) in zip(spoken, owner_of, spoken_times, strict=True):
        if symbol == _GAP or owner is None:
            continue
        known = times[owner]
        times[owner] = (start, end) if known is None else (min(known[0], start), max(known[1], end))
    return _fill_unheard(texts, times)


def _place_unaligned_sounds(spoken: list[str], owner_of: list[int | None]) -> None:
    """Give each sound the alignment left without a word the word of a neighbour in its spoken word."""
    for forward in (True, False):
        order = range(len(spoken)) if forward else range(len(spoken) - 1, -1, -1)
        last: int | None = None
        for i in order:
            if spoken[i] == _GAP:
                last = None
            elif owner_of[i] is None:
                owner_of[i] = last
            else:
                last = owner_of[i]
    # A spoken word none of whose sounds aligned: the word before it (the alignment is in order).
    last = None
    for i, symbol in enumerate(spoken):
        if symbol != _GAP and owner_of[i] is None:
            owner_of[i] = last
        elif owner_of[i] is not None:
            last = owner_of[i]


def words_from_boundaries(sentence: str, boundaries: Iterable[dict]) -> tuple[Word, ...]:
    """The written words of `sentence` timed by edge-tts's WordBoundary events.

    Each event quotes a word of the text ("42", "Dr"); it is looked for from where the last one
    was found, and its time goes to the written word it falls in. An event whose text is not
    found goes to the word after the last one found.
    """
    spans = written_spans(sentence)
    times: list[tuple[float, float] | None] = [None] * len(spans)
    lowered = sentence.lower()
    cursor = 0
    owner = -1
    for event in boundaries:
        if event.get("type", "WordBoundary") != "WordBoundary":
            continue
        quoted = unescape(str(event.get("text", ""))).strip().lower()
        found = lowered.find(quoted, cursor) if quoted else -1
        if found >= 0:
            owner = next((k for k, (_, end) in enumerate(spans) if found < end), len(spans) - 1)
            cursor = found + len(quoted)
        else:
            owner = min(owner + 1, len(spans) - 1)
        if owner < 0:
            continue
        start = event["offset"] / TICKS_PER_SECOND
        end = (event["offset"] + event["duration"]) / TICKS_PER_SECOND
        known = times[owner]
        times[owner] = (start, end) if known is None else (min(known[0], start), max(known[1], end))
    return _fill_unheard([sentence[start:end] for start, end in spans], times)
