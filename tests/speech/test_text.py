"""What users type is checked kindly and split into sentences that can be spoken one by one."""

import pytest

from avatar.errors import UserFacingError
from avatar.speech.text import MARKUP_REMOVED, MAX_SENTENCE_CHARS, check_text, markup_notice, split_sentences


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


# --- markup ----------------------------------------------------------------------------------


def test_ssml_tags_are_removed_and_only_their_words_are_spoken():
    text = "<speak><prosody rate='slow'>Hello <break/> world</prosody></speak>"
    assert check_text(text, 100) == "Hello world"
    assert markup_notice(text) == MARKUP_REMOVED


def test_an_xml_declaration_comments_and_entities_of_ssml_become_plain_words():
    text = '<?xml version="1.0"?><!-- greeting --><speak version="1.0" xml:lang="en-US">Fish &amp; chips.</speak>'
    assert check_text(text, 100) == "Fish & chips."


def test_html_tags_leave_no_space_before_punctuation():
    assert check_text("It is <emphasis level='strong'>really</emphasis>, <b>truly</b> fine.", 100) == (
        "It is really, truly fine."
    )


@pytest.mark.parametrize("text", ["3 < 5 and 7 > 2", "if x<y and y>z, stop", "I <3 you", "a -> b <- c"])
def test_angle_brackets_that_are_not_markup_stay_and_nothing_is_said_about_markup(text):
    assert check_text(text, 100) == text
    assert markup_notice(text) == ""


def test_text_that_is_only_markup_is_refused_saying_so():
    with pytest.raises(UserFacingError, match="only markup tags and no words"):
        check_text("<speak><break time='2s'/></speak>", 100)


def test_entities_that_spell_invisible_characters_are_dropped_too():
    assert check_text("<b>Hello</b> &#x202e;world&#x200b;", 100) == "Hello world"
