"""Word timings: every written word, as the user wrote it, with when the voice says it (Piper and edge-tts)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from avatar.media import ffmpeg_exe
from avatar.speech import online_voice
from avatar.speech.offline_voice import OfflineVoice
from avatar.speech.online_voice import OnlineVoice
from avatar.speech.utterance import Phone
from avatar.speech.word_timing import TICKS_PER_SECOND, written_words

# Within this of its first phoneme, a word's caption lights up: a frame and a bit at 25 fps.
WITHIN = 0.080
# Numbers, an abbreviation, an amount, and words espeak runs together ("I am" -> "aɪɐm", "to be" -> "təbi").
HARD = "Dr. Smith paid $3.50 for 42 apples, and I am going to be there."


def spoken_words(phones: tuple[Phone, ...]) -> list[list[Phone]]:
    """The voice's own words: its phonemes between espeak's word separators (spaces, pauses, start and end)."""
    groups: list[list[Phone]] = [[]]
    for phone in phones:
        if phone.symbol in " ^$,.;:!?":
            groups.append([])
        else:
            groups[-1].append(phone)
    return [group for group in groups if group]


def test_the_offline_voice_times_every_written_word_once_in_order_within_the_audio():
    utterance = OfflineVoice().speak(HARD)
    words = utterance.words
    assert [word.text for word in words] == HARD.split()
    assert all(0 <= word.start < word.end <= utterance.duration for word in words)
    assert all(before.end <= after.start + 1e-9 for before, after in zip(words, words[1:], strict=False))


def test_a_words_time_starts_within_80_ms_of_its_first_phoneme():
    sentence = "Seven brown dogs jumped over three fences."
    utterance = OfflineVoice().speak(sentence)
    spoken = spoken_words(utterance.phones)
    assert len(spoken) == len(sentence.split()), "espeak said these words one by one"
    for word, phones in zip(utterance.words, spoken, strict=True):
        assert word.start == pytest.approx(phones[0].start, abs=WITHIN), word
        assert word.end == pytest.approx(phones[-1].end, abs=WITHIN), word


def test_a_number_keeps_its_written_form_and_spans_every_word_said_for_it():
    utterance = OfflineVoice().speak("She is 42 today.")
    she, is_, forty, two, today = spoken_words(utterance.phones)
    assert [word.text for word in utterance.words] == ["She", "is", "42", "today."]
    number = utterance.words[2]
    assert number.start == pytest.approx(forty[0].start, abs=WITHIN)
    assert number.end == pytest.approx(two[-1].end, abs=WITHIN)


def test_a_piece_with_no_letters_goes_with_the_word_before_it():
    assert written_words("I'm fine - thanks.") == ["I'm", "fine -", "thanks."]
    assert written_words("— Hello there") == ["— Hello", "there"]


def ticks(seconds: float) -> int:
    return round(seconds * TICKS_PER_SECOND)


def boundary(text: str, start: float, end: float) -> dict:
    """A WordBoundary message as edge-tts 7.3 streams it."""
    return {"type": "WordBoundary", "offset": ticks(start), "duration": ticks(end - start), "text": text}


def tone_mp3(seconds: float) -> bytes:
    """A real MP3 (as the service sends: 24 kHz mono), made with the bundled ffmpeg."""
    result = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=220:duration={seconds}:sample_rate=24000",
         "-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k", "-f", "mp3", "pipe:1"],
        capture_output=True, check=True,
    )
    return result.stdout


class RecordedService:
    """edge_tts.Communicate, answering with recorded messages instead of the network, and noting what it was asked."""

    asked: dict = {}
    messages: list[dict] = []

    def __init__(self, text: str, voice: str, **options) -> None:
        RecordedService.asked = {"text": text, "voice": voice, **options}

    async def stream(self):
        for message in RecordedService.messages:
            yield message


def test_an_online_voice_times_the_written_words_by_the_services_word_boundaries(monkeypatch):
    sentence = "Dr. Smith has 42 apples & pears."
    RecordedService.messages = [
        {"type": "audio", "data": tone_mp3(2.0)},
        # The service quotes the words of the text, without their punctuation, unescaped by edge-tts.
        boundary("Dr", 0.10, 0.45),
        boundary("Smith", 0.50, 0.80),
        boundary("has", 0.85, 1.00),
        boundary("42", 1.05, 1.40),
        boundary("apples", 1.45, 1.70),
        boundary("&", 1.72, 1.80),
        boundary("pears", 1.82, 1.95),
    ]
    monkeypatch.setattr(online_voice.edge_tts, "Communicate", RecordedService)
    utterance = OnlineVoice("en-US-EmmaMultilingualNeural", timeout=1).speak(sentence)
    assert RecordedService.asked["boundary"] == "WordBoundary"
    assert utterance.duration == pytest.approx(2.0, abs=0.1) and np.abs(utterance.audio).max() > 0.1
    timed = [(word.text, round(word.start, 3), round(word.end, 3)) for word in utterance.words]
    assert timed == [
        ("Dr.", 0.10, 0.45), ("Smith", 0.50, 0.80), ("has", 0.85, 1.00), ("42", 1.05, 1.40),
        ("apples &", 1.45, 1.80), ("pears.", 1.82, 1.95),
    ]


def test_a_word_the_service_did_not_time_takes_the_pause_before_the_next_one(monkeypatch):
    RecordedService.messages = [
        {"type": "audio", "data": tone_mp3(1.0)},
        boundary("Hello", 0.1, 0.4),
        boundary("world", 0.7, 0.9),
    ]
    monkeypatch.setattr(online_voice.edge_tts, "Communicate", RecordedService)
    words = OnlineVoice("en-US-EmmaMultilingualNeural", timeout=1).speak("Hello big world.").words
    assert [(word.text, round(word.start, 3), round(word.end, 3)) for word in words] == [
        ("Hello", 0.1, 0.4), ("big", 0.4, 0.7), ("world.", 0.7, 0.9)
    ]
