"""Captions to read along with: a run's timed words as short lines, for the page, a WebVTT file and the MP4.

Reviewers watch muted and judge lip-sync by reading, so a line is short (one glance), appears
as its first word is said, and the page marks the word being said. The words are on the run's
own timeline (`avatar/session.py`), which is the video's: a word said at 1.2 s is seen at 1.2 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avatar.speech.utterance import Word

# A line holds at most this many characters (a common subtitle limit, and a phone's width at 16 px).
LINE_CHARS = 37
# A line that has reached this share of its length ends after a comma, semicolon or colon.
BREAK_AT_COMMA = 0.5
# A pause longer than this starts a new line: the next words belong to a new thought.
PAUSE_SECONDS = 0.6
# A line stays this long after its last word, unless the next line comes sooner.
LINGER_SECONDS = 0.8
_SENTENCE_END = (".", "!", "?", "…", "。", "！", "？")
_CLAUSE_END = (",", ";", ":")


@dataclass(frozen=True)
class Cue:
    """One line of captions: shown from `start` to `end`, its words with their own times."""

    start: float
    end: float
    words: tuple[Word, ...]

    @property
    def text(self) -> str:
        return " ".join(word.text for word in self.words)

    def word_at(self, seconds: float) -> Word | None:
        """The word being said at `seconds`, or None in a pause."""
        return next((word for word in self.words if word.start <= seconds < word.end), None)


def _text(words: Sequence[Word]) -> str:
    return " ".join(word.text for word in words)


def _ends_with(word: Word, marks: tuple[str, ...]) -> bool:
    return word.text.rstrip("\"'”’)]").endswith(marks)


def _phrases(words: Sequence[Word]) -> list[list[Word]]:
    """The words cut where a line must end: after a sentence, and at a long pause."""
    phrases: list[list[Word]] = [[]]
    for index, word in enumerate(words):
        phrases[-1].append(word)
        following = words[index + 1] if index + 1 < len(words) else None
        if following is not None and (
            _ends_with(word, _SENTENCE_END) or following.start - word.end > PAUSE_SECONDS
        ):
            phrases.append([])
    return [phrase for phrase in phrases if phrase]


def _balanced_lines(phrase: list[Word]) -> list[list[Word]]:
    """A phrase as lines of at most LINE_CHARS, about equally long, the first ending early after a comma.

    Each line takes its share of what is left ("Good morning, and welcome to the talking
    photo." is "Good morning," / "and welcome to the talking photo.", not a full line and two words).
    """
    lines: list[list[Word]] = []
    rest = list(phrase)
    while rest:
        total = len(_text(rest))
        if total <= LINE_CHARS:
            lines.append(rest)
            break
        share = -(-total // -(-total // LINE_CHARS))  # ceil(total / lines still needed)
        line = [rest[0]]
        for word in rest[1:]:
            if len(_text(line)) >= BREAK_AT_COMMA * share and _ends_with(line[-1], _CLAUSE_END):
                break
            if len(_text([*line, word])) > share:
                break
            line.append(word)
        lines.append(line)
        rest = rest[len(line) :]
    return lines


def cue_lines(words: Sequence[Word], until: float | None = None) -> tuple[Cue, ...]:
    """The words as lines, in order, each word once: a line ends at a sentence's end, a long pause or its length.

    A line is shown from its first word until the next line (at most LINGER_SECONDS after its
    last word); `until` (the video's length) ends the last one no later than the video.
    """
    lines = [line for phrase in _phrases(words) for line in _balanced_lines(phrase)]
    cues: list[Cue] = []
    for index, line in enumerate(lines):
        said = line[-1].end
        end = max(said, min(said + LINGER_SECONDS, until if until is not None else float("inf")))
        if index + 1 < len(lines):
            end = min(end, lines[index + 1][0].start)  # lines never overlap
        cues.append(Cue(line[0].start, end, tuple(line)))
    return tuple(cues)


def cue_at(cues: Sequence[Cue], seconds: float) -> Cue | None:
    """The line shown at `seconds`, or None."""
    return next((cue for cue in cues if cue.start <= seconds < cue.end), None)


def _timestamp(seconds: float) -> str:
    milliseconds = round(max(seconds, 0.0) * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def _plain(text: str) -> str:
    """Text safe in a WebVTT cue: no markup characters and no "-->"."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def webvtt(cues: Sequence[Cue]) -> str:
    """The cues as a WebVTT file, one line each."""
    blocks = [
        f"{index}\n{_timestamp(cue.start)} --> {_timestamp(cue.end)}\n{_plain(cue.text)}\n"
        for index, cue in enumerate(cues, start=1)
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def write_webvtt(cues: Sequence[Cue], path: Path) -> Path:
    path.write_text(webvtt(cues), encoding="utf-8")
    return path


def as_json(cues: Sequence[Cue]) -> list[dict]:
    """The cues as plain values for a page's script: times in seconds, to the millisecond."""
    return [
        {
            "start": round(cue.start, 3),
            "end": round(cue.end, 3),
            "words": [[word.text, round(word.start, 3), round(word.end, 3)] for word in cue.words],
        }
        for cue in cues
    ]
