"""What users type is checked kindly and split into sentences that can be spoken one by one."""

import pytest

from avatar.errors import UserFacingError
from avatar.speech.text import MAX_SENTENCE_CHARS, check_text, split_sentences


def test_sentences_are_split_at_their_ends_but_not_after_abbreviations():
    text = "Hello there, nice to meet you. Dr. Smith said hi! Really? Yes.\nA new line"
    expected = ["Hello there, nice to meet you.", "Dr. Smith said hi!", "Really?", "Yes.", "A new line"]
    assert split_sentences(text) == expected


def test_a_very_long_sentence_is_cut_at_a_comma_so_speech_starts_early():
    text = ", ".join(["a clause that goes on and on"] * 20) + "."
    parts = split_sentences(text)
    assert len(parts) > 1 and all(len(part) <= MAX_SENTENCE_CHARS for part in parts)
    assert " ".join(parts).replace("  ", " ") == text


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_refused(text):
    with pytest.raises(UserFacingError, match="type something"):
        check_text(text, 100)


def test_emoji_only_text_is_refused():
    with pytest.raises(UserFacingError, match="no words"):
        check_text("🙂🎉", 100)


def test_text_over_the_limit_is_refused_and_not_cut_silently():
    with pytest.raises(UserFacingError, match="limit is 10"):
        check_text("This is far too long.", 10)


def test_whitespace_is_tidied():
    assert check_text("  Hello \n  world  ", 100) == "Hello world"
