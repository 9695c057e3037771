"""Checking what the user typed and splitting it into sentences that can be spoken one by one."""

from __future__ import annotations

import html
import re
import unicodedata

from avatar.errors import UserFacingError

# A sentence ends at . ! ? … (or their CJK forms) followed by space, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])[\"'”’)\]]*\s+|\n+")
_ABBREVIATIONS = ("mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "e.g.", "i.e.", "etc.", "no.")
# Sentences longer than this are cut at a comma or space so the first video comes quickly.
MAX_SENTENCE_CHARS = 240
# Unicode categories no voice can say: control, format (zero-width, bidi overrides), surrogate,
# private use, unassigned. Left in, some crash a voice (NUL) or hide text from the reader.
_UNSPEAKABLE_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn")
# Piper reads "[[ ... ]]" as raw phonemes; a space between the brackets keeps such text literal.
_PHONEME_BLOCK_MARKS = re.compile(r"\[(?=\[)|\](?=\])")
# SSML or HTML markup: comments, declarations (<?xml ...?>, <!DOCTYPE ...>) and tags such as <speak>,
# </prosody> or <break time="5s"/>. A tag's attributes must have values, as SSML's always do, so that
# "if x<y and y>z" stays text.
_MARKUP = re.compile(
    r"<!--.*?(?:-->|$)|<[?!][^<>]*>"
    r"|</?[A-Za-z][\w:.-]*(?:\s+[\w:.-]+\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'<>=]+))*\s*/?>",
    re.DOTALL,
)
_SPACE_BEFORE_PUNCTUATION = re.compile(r"\s+(?=[,.;:!?…])")
MARKUP_REMOVED = "Markup tags were removed from the text; only its words are spoken."


def _speakable_characters(text: str) -> str:
    """NFKC-folded text (fancy "𝐛𝐨𝐥𝐝" letters become plain ones) without characters no voice can say."""
    folded = unicodedata.normalize("NFKC", text)
    kept = "".join(ch for ch in folded if ch.isspace() or unicodedata.category(ch) not in _UNSPEAKABLE_CATEGORIES)
    return _PHONEME_BLOCK_MARKS.sub(lambda mark: f"{mark.group()} ", kept)


def has_markup(text: str | None) -> bool:
    """Whether `text` holds SSML or HTML tags, which `check_text` removes."""
    return bool(_MARKUP.search(_speakable_characters(text or "")))


def remove_markup(text: str) -> str:
    """The words of `text` without its tags, entities such as "&amp;" decoded; text without tags is unchanged.

    No voice here obeys markup (Edge's service gets the text escaped, Piper reads it), so tags
    would be read aloud, brackets, attributes and all.
    """
    if not _MARKUP.search(text):
        return text
    words = html.unescape(_MARKUP.sub(" ", text))
    return _SPACE_BEFORE_PUNCTUATION.sub("", " ".join(words.split()))


def markup_notice(text: str | None) -> str:
    """The status line's note when `check_text` removed markup from `text`, else ""."""
    return MARKUP_REMOVED if has_markup(text) else ""


def check_text(text: str | None, max_chars: int) -> str:
    """The text to speak, tidied and safe for every voice, or a `UserFacingError` saying what is wrong.

    Markup (SSML or HTML tags) is removed and only its words are kept; `markup_notice` says so.
    """
    speakable = _speakable_characters(text or "")
    # Again after the markup is gone: its entities may spell characters no voice can say ("&#x202e;").
    cleaned = " ".join(_speakable_characters(remove_markup(speakable)).split())
    if not cleaned and has_markup(speakable):
        raise UserFacingError("The text holds only markup tags and no words to speak. Please type the words to say.")
    if not cleaned:
        raise UserFacingError("Please type something for the face to say.")
    if len(cleaned) > max_chars:
        raise UserFacingError(
            f"The text is {len(cleaned)} characters long; the limit is {max_chars}. "
            "Please shorten it (nothing was cut)."
        )
    if not any(unicodedata.category(ch)[0] in "LN" for ch in cleaned):
        raise UserFacingError("The text has no words to speak (only symbols or emoji). Please type a sentence.")
    return cleaned


def latin_share(text: str) -> float:
    """The share of letters in `text` that are Latin script (1.0 when there are no letters)."""
    letters = [ch for ch in text if unicodedata.category(ch).startswith("L")]
    if not letters:
        return 1.0
    latin = sum(1 for ch in letters if "LATIN" in unicodedata.name(ch, ""))
    return latin / len(letters)


def _split_long(sentence: str) -> list[str]:
    parts: list[str] = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        window = sentence[:MAX_SENTENCE_CHARS]
        cut = max(window.rfind(", "), window.rfind("; "), window.rfind(": "))
        if cut < MAX_SENTENCE_CHARS // 3:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = MAX_SENTENCE_CHARS - 1
        parts.append(sentence[: cut + 1].strip())
        sentence = sentence[cut + 1 :].strip()
    if sentence:
        parts.append(sentence)
    return parts


def split_sentences(text: str) -> list[str]:
    """Sentences in speaking order; common abbreviations ("Dr.", "e.g.") do not end a sentence."""
    pieces = [piece.strip() for piece in _SENTENCE_END.split(text) if piece and piece.strip()]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and sentences[-1].lower().endswith(_ABBREVIATIONS):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return [part for sentence in sentences for part in _split_long(sentence)]
