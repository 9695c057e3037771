"""Where a run's speech comes from, as one shape: utterances in order, with who spoke and what to tell the user.

A run (`avatar/runs/run.py`) asks its source for utterances and knows nothing of voices or files, so
typed text spoken by a voice and a visitor's own recording travel the same path to the engines.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from avatar.speech.text import split_sentences
from avatar.speech.utterance import Utterance
from avatar.speech.voices import Speaker

# A first sentence longer than this is spoken in two parts, split at its first comma, so that
# its opening clause (synthesised in about half the time) reaches the engine sooner.
QUICK_START_CHARS = 24


def quick_start(sentences: list[str]) -> list[str]:
    """The sentences with the first one cut after its first comma, when that leaves two real parts."""
    if not sentences or len(sentences[0]) <= QUICK_START_CHARS:
        return sentences
    first = sentences[0]
    cut = min((first.find(mark) for mark in (", ", "; ", ": ") if first.find(mark) >= 8), default=-1)
    if cut < 0 or len(first) - cut < 8:
        return sentences
    return [first[: cut + 1], first[cut + 2 :], *sentences[1:]]


class SpeechSource(ABC):
    """A run's speech: `utterances()` in order, `label` for who spoke, `notice` for what the user should know."""

    # The words as the visitor gave them ("" when there are none), for a shared video's page.
    text: str = ""
    # Whether the run makes pieces ahead of the engine, in a thread of their own: right for a voice, which
    # lets go of Python's lock while it speaks (onnxruntime, the network), so the engine draws meanwhile. A
    # source whose pieces hold that lock while they are made (the aligner's search) is asked for each piece
    # only when the engine needs it: made ahead, on 2 cores, they kept the first frames waiting.
    made_ahead: bool = True

    @property
    @abstractmethod
    def label(self) -> str:
        """Who speaks, as the status line names it."""

    @property
    @abstractmethod
    def summary(self) -> str:
        """What is being spoken and by whom, for the status line while it is made."""

    @property
    def notice(self) -> str:
        """Anything that happened to the speech that the user should know, once it is made ("" if nothing)."""
        return ""

    @abstractmethod
    def utterances(self) -> Iterator[Utterance]:
        """The speech, piece by piece, as soon as each is ready."""


class TypedSpeech(SpeechSource):
    """Typed text spoken sentence by sentence by one voice (online, or the offline voice it falls back to)."""

    def __init__(self, text: str, speaker: Speaker) -> None:
        self.text = text
        self.speaker = speaker
        self.sentences = quick_start(split_sentences(text))

    @property
    def label(self) -> str:
        return self.speaker.option.label

    @property
    def summary(self) -> str:
        return f"{len(self.sentences)} sentence(s) with {self.label}"

    @property
    def notice(self) -> str:
        return self.speaker.notice

    def utterances(self) -> Iterator[Utterance]:
        for sentence in self.sentences:
            yield self.speaker.speak(sentence)
