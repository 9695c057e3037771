"""Every kind of hostile input a public demo meets gets a clear answer: a usable picture or text, or a plain refusal.

Hostile files are made here, in the test, with Pillow and raw bytes; nothing is downloaded.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import pytest
from edge_tts import Communicate
from PIL import Image

from avatar.errors import UserFacingError
from avatar.images import load_photo
from avatar.speech.offline_voice import OfflineVoice
from avatar.speech.text import check_text, split_sentences
from avatar.speech.voices import OFFLINE_OPTION, Speaker
from tests.helpers import SMALL_LIMITS, bomb_png, encode, png_chunk

RED, GREEN = (220, 30, 30), (30, 200, 30)


def raw_png(pixels: np.ndarray, bit_depth: int, colour_type: int) -> bytes:
    """A PNG written byte by byte, for depths Pillow cannot save (16 bits per channel)."""
    height, width = pixels.shape[:2]
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def marked_picture() -> Image.Image:
    """300x200, red with a green block in the top-left corner, so any turn or flip shows."""
    image = Image.new("RGB", (300, 200), RED)
    image.paste(GREEN, (0, 0, 60, 40))
    return image


def is_green(pixel: np.ndarray) -> bool:
    return pixel[1] > 150 and pixel[0] < 100


# --- pictures ------------------------------------------------------------------------------


def test_a_file_over_the_byte_limit_is_refused_by_its_size_before_it_is_read(tmp_path):
    path = tmp_path / "huge.jpg"
    with path.open("wb") as file:
        file.truncate(SMALL_LIMITS["max_bytes"] + 1)
    with pytest.raises(UserFacingError, match=r"limit is 2 MB"):
        load_photo(path, **SMALL_LIMITS)


def test_a_picture_over_the_pixel_limit_is_refused():
    with pytest.raises(UserFacingError, match="more than the limit of 4 megapixels"):
        load_photo(encode(Image.new("L", (2500, 2000))), **SMALL_LIMITS)


def test_a_decompression_bomb_is_refused_without_being_decoded():
    data = bomb_png(20_000)
    assert len(data) < SMALL_LIMITS["max_bytes"]
    with pytest.raises(UserFacingError, match="megapixels"):
        load_photo(data, **SMALL_LIMITS)


@pytest.mark.parametrize(
    "data",
    [b"hello, this is text", b"%PDF-1.7\n" + b"0" * 500, b"<svg xmlns='http://www.w3.org/2000/svg'/>", bytes(1000)],
    ids=["text", "pdf", "svg", "zeros"],
)
def test_a_file_that_is_not_a_picture_is_refused(data):
    with pytest.raises(UserFacingError, match="not a picture"):
        load_photo(data, **SMALL_LIMITS)


def test_an_empty_file_is_refused():
    with pytest.raises(UserFacingError, match="empty"):
        load_photo(b"", **SMALL_LIMITS)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF"])
def test_a_truncated_picture_is_refused(fmt):
    noise = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    with pytest.raises(UserFacingError, match="damaged or incomplete|not a picture"):
        load_photo(data[: len(data) // 3], **SMALL_LIMITS)


def test_a_png_with_corrupt_picture_data_is_refused():
    noise = np.random.default_rng(1).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    data = bytearray(encode(Image.fromarray(noise)))
    middle = len(data) // 2
    data[middle : middle + 200] = b"\xff" * 200
    with pytest.raises(UserFacingError, match="damaged or incomplete"):
        load_photo(bytes(data), **SMALL_LIMITS)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_upright(orientation):
    upright = marked_picture()
    undo = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT], 3: [Image.Transpose.ROTATE_180], 4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE], 6: [Image.Transpose.ROTATE_90], 7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_270],
    }
    stored = upright
    for step in undo.get(orientation, []):
        stored = stored.transpose(step)
    exif = Image.Exif()
    exif[0x0112] = orientation
    array = load_photo(encode(stored, "PNG", exif=exif), **SMALL_LIMITS)
    assert array.shape == (200, 300, 3)
    assert is_green(array[5, 5]) and not is_green(array[-5, -5])


def test_a_photo_with_a_broken_exif_block_still_opens():
    data = encode(marked_picture(), "JPEG", exif=b"Exif\x00\x00" + b"\x13" * 64)
    assert load_photo(data, **SMALL_LIMITS).shape == (200, 300, 3)


def test_a_cmyk_jpeg_opens_with_its_colours():
    array = load_photo(encode(Image.new("CMYK", (300, 300), (0, 255, 255, 0)), "JPEG"), **SMALL_LIMITS)
    red, green, blue = array[150, 150].astype(int)
    assert red > 200 and green < 60 and blue < 60


def test_a_16_bit_greyscale_png_keeps_its_brightness():
    array = load_photo(encode(Image.fromarray(np.full((300, 300), 40_000, np.uint16))), **SMALL_LIMITS)
    assert array.dtype == np.uint8 and abs(int(array[0, 0, 0]) - round(40_000 / 65535 * 255)) <= 1


def test_a_16_bit_per_channel_colour_png_opens_as_8_bit_rgb():
    pixels = np.zeros((300, 300, 3), np.uint16)
    pixels[..., 0] = 65535
    array = load_photo(raw_png(pixels, 16, 2), **SMALL_LIMITS)
    assert tuple(array[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("mode", ["L", "1", "P", "I", "F"])
def test_greyscale_and_other_single_channel_pictures_open_as_rgb(mode):
    array = load_photo(encode(Image.new("L", (300, 300), 200).convert(mode), "TIFF"), **SMALL_LIMITS)
    assert array.shape == (300, 300, 3) and len(set(array[0, 0])) == 1


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_see_through_parts_become_grey_in_every_alpha_mode(mode):
    image = Image.new("RGBA", (300, 300), (255, 0, 0, 0)).convert(mode)
    array = load_photo(encode(image), **SMALL_LIMITS)
    assert tuple(array[0, 0]) == (128, 128, 128)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_a_palette_picture_with_a_transparent_colour_becomes_grey_there(fmt):
    image = Image.new("P", (300, 300), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    array = load_photo(encode(image, fmt, transparency=0), **SMALL_LIMITS)
    assert tuple(array[0, 0]) == (128, 128, 128)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_an_animated_picture_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (300, 300), colour) for colour in (RED, GREEN, (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    array = load_photo(buffer.getvalue(), **SMALL_LIMITS)
    assert array[150, 150, 0] > 180 and array[150, 150, 1] < 80


@pytest.mark.parametrize("size", [(3000, 200), (200, 3000)])
def test_an_extremely_stretched_picture_is_refused(size):
    with pytest.raises(UserFacingError, match="very stretched shape"):
        load_photo(encode(Image.new("RGB", size)), **SMALL_LIMITS)


def test_a_long_but_reasonable_panorama_still_opens():
    assert load_photo(encode(Image.new("RGB", (1600, 400))), **SMALL_LIMITS).shape == (400, 1600, 3)


def test_the_pixel_limit_of_one_call_does_not_leak_into_others():
    """Threads share Pillow's MAX_IMAGE_PIXELS: reading must neither change it nor depend on it."""
    before = Image.MAX_IMAGE_PIXELS
    picture = encode(Image.new("RGB", (2000, 1500)))
    outcomes: list[str] = []

    def read(max_pixels: int) -> None:
        for _ in range(20):
            try:
                load_photo(picture, max_pixels, SMALL_LIMITS["max_bytes"])
                outcomes.append(f"{max_pixels}: opened")
            except UserFacingError:
                outcomes.append(f"{max_pixels}: refused")

    threads = [threading.Thread(target=read, args=(limit,)) for limit in (1_000_000, 5_000_000)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(outcomes) == {"1000000: refused", "5000000: opened"}
    assert Image.MAX_IMAGE_PIXELS == before


# --- text ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "\n\t \r\n", "\u200b\u200b", None], ids=["empty", "spaces", "blank-lines",
                                                                                  "zero-width", "none"])
def test_empty_or_blank_text_is_refused(text):
    with pytest.raises(UserFacingError, match="type something"):
        check_text(text, 100)


@pytest.mark.parametrize("text", ["🙂🎉", "👨‍👩‍👧 ❤️", "!!! ??? ...", "★☆★"])
def test_emoji_or_symbols_only_text_is_refused(text):
    with pytest.raises(UserFacingError, match="no words"):
        check_text(text, 100)


def test_text_over_the_limit_is_refused_with_its_length_and_nothing_is_cut():
    with pytest.raises(UserFacingError, match=r"1001 characters long; the limit is 1000.*nothing was cut"):
        check_text("a" * 1001, 1000)


def test_control_and_invisible_characters_are_dropped_so_no_voice_chokes():
    assert check_text("Hello\x00 wo\u200brld\u202e\x07!", 100) == "Hello world!"


def test_fancy_unicode_letters_become_plain_words_a_voice_can_read():
    assert check_text("𝐇𝐞𝐥𝐥𝐨 ｗｏｒｌｄ", 100) == "Hello world"


def test_piper_phoneme_brackets_are_kept_literal():
    cleaned = check_text("Say [[ b ə n æ n ə ]] now", 100)
    assert "[[" not in cleaned and "]]" not in cleaned
    phonemes = OfflineVoice._load().phonemize(cleaned)
    assert "b ə n æ n ə" not in " ".join("".join(sentence) for sentence in phonemes)


MARKUP = "<speak><break time='5s'/>Hi &amp; <prosody rate='x-fast'>bye</prosody></speak>"


def test_markup_reaches_the_online_voice_as_its_words_only():
    communicate = Communicate(check_text(MARKUP, 200), "en-US-EmmaMultilingualNeural")
    sent = b"".join(communicate.texts).decode()
    assert "break" not in sent and "prosody" not in sent and "speak&gt;" not in sent
    assert "Hi &amp; bye" in sent


def test_markup_is_neither_obeyed_nor_read_aloud_by_the_offline_voice():
    spoken = OfflineVoice().speak(check_text("Hello <break time='5s'/> world.", 200))
    # Piper says "Hello world." in 0.77-0.88 s from run to run; a 5 s break or the tag read aloud is far longer.
    assert spoken.duration < 1.2, "the tag was obeyed or read aloud"
    assert [word.text for word in spoken.words] == ["Hello", "world."]


def test_text_with_characters_the_offline_voice_cannot_say_still_speaks_the_words():
    sentence = check_text("Hello 🍕 world\x00 ✓.", 100)
    utterance = OfflineVoice().speak(sentence)
    assert utterance.duration > 0.5 and np.abs(utterance.audio).max() > 0.05


@pytest.mark.parametrize("text", ["Привет, как дела?", "你好，很高兴认识你。", "مرحبا كيف حالك", "こんにちは"])
def test_a_language_the_offline_voice_does_not_speak_is_refused_before_any_work(text):
    speaker = Speaker(OFFLINE_OPTION, timeout=1.0)
    with pytest.raises(UserFacingError, match="speaks English only"):
        speaker.check_language(check_text(text, 100))


def test_a_long_text_without_punctuation_is_split_into_speakable_pieces():
    text = check_text(" ".join(["word"] * 200), 1000)
    assert " ".join(split_sentences(text)) == text and len(split_sentences(text)) > 1
