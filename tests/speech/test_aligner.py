"""Captions for a recording: typed words timed against speech the aligner's model did not make (eSpeak NG)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avatar.speech.aligner import Aligner, arpabet
from bench.caption_alignment import SENTENCES, SPEAKERS, WITHIN, Espeak, caption_errors, speaker_recording


@pytest.fixture(scope="module")
def espeak() -> Espeak:
    return Espeak()


@pytest.mark.parametrize(
    ("voice", "rate", "noise_db"), SPEAKERS, ids=[f"{voice} {rate} noise {noise}" for voice, rate, noise in SPEAKERS]
)
def test_every_typed_word_in_order_starts_within_150_ms_of_where_it_is_said(
    voice, rate, noise_db, espeak, tmp_path: Path
):
    spoken, path = speaker_recording(espeak, voice, rate, noise_db, tmp_path)
    for sentence, errors in zip(SENTENCES, caption_errors(spoken, path, " ".join(SENTENCES)), strict=True):
        assert np.abs(errors).max() <= WITHIN, (sentence, np.round(errors, 3))


def test_words_keep_their_written_form(espeak):
    sentence = "Dr. Jones answered 17 questions before lunch."
    spoken = espeak.speak(sentence)
    words = Aligner(sentence).heard(spoken.audio, spoken.sample_rate, last=True)
    assert [word.text for word in words] == sentence.split()


def test_a_number_spans_every_word_said_for_it(espeak):
    sentence = "She is 42 today."
    spoken = espeak.speak(sentence)
    she, is_, number, today = Aligner(sentence).heard(spoken.audio, spoken.sample_rate, last=True)
    assert number.start == pytest.approx(spoken.word_starts[2], abs=WITHIN)
    assert number.end == pytest.approx(spoken.word_starts[3], abs=WITHIN), "forty and two"


def test_a_stretch_times_only_the_words_said_in_it_and_the_next_goes_on_from_there(espeak):
    sentence = SENTENCES[0]
    spoken = espeak.speak(sentence)
    aligner = Aligner(sentence)
    half = round(1.5 * spoken.sample_rate)
    first = aligner.heard(spoken.audio[:half], spoken.sample_rate, last=False)
    assert 0 < len(first) < len(sentence.split())
    assert [word.text for word in first] == sentence.split()[: len(first)]
    aligner.advance(len(first) - 1)
    rest = aligner.heard(spoken.audio[half:], spoken.sample_rate, last=True)
    assert [word.text for word in rest] == sentence.split()[len(first) - 1 :]


def test_typed_words_the_recording_does_not_say_are_placed_after_the_last_one_heard_and_counted(espeak):
    spoken = espeak.speak("Seven brown dogs.")
    aligner = Aligner("Seven brown dogs jumped over three fences near the old mill.")
    words = aligner.heard(spoken.audio, spoken.sample_rate, last=True)
    aligner.advance(len(words))
    assert len(words) == 11 and aligner.unheard == 8
    assert words[2].start == pytest.approx(spoken.word_starts[2], abs=WITHIN)
    assert all(word.start >= words[2].end for word in words[3:])


def test_espeaks_symbols_become_the_models_phones():
    assert arpabet("fˈɔːɹɾi") == ["F", "AO", "R", "T", "IY"]
    assert arpabet("dʒˈʌmpt") == ["JH", "AH", "M", "P", "T"]
    assert arpabet("nˈaɪntiːn") == ["N", "AY", "N", "T", "IY", "N"]
