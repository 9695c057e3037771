"""Any common picture opens upright as RGB; anything unusable is refused in plain words."""


import numpy as np
import pytest
from PIL import Image

from avatar.errors import UserFacingError
from avatar.images import load_photo
from tests.helpers import SMALL_LIMITS, encode


def test_a_png_opens_as_rgb():
    data = encode(Image.new("RGB", (300, 200), (10, 20, 30)))
    array = load_photo(data, **SMALL_LIMITS)
    assert array.shape == (200, 300, 3) and array.dtype == np.uint8


def test_a_photo_rotated_by_its_exif_tag_is_turned_upright():
    image = Image.new("RGB", (300, 200), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    array = load_photo(encode(image, "JPEG", exif=exif), **SMALL_LIMITS)
    assert array.shape == (300, 200, 3)


def test_transparent_parts_become_grey_not_black():
    image = Image.new("RGBA", (300, 300), (255, 0, 0, 0))
    array = load_photo(encode(image), **SMALL_LIMITS)
    assert tuple(array[0, 0]) == (128, 128, 128)


def test_a_file_that_is_not_a_picture_is_refused():
    with pytest.raises(UserFacingError, match="not a picture"):
        load_photo(b"hello, this is text", **SMALL_LIMITS)


def test_a_truncated_picture_is_refused():
    data = encode(Image.new("RGB", (400, 400), (1, 2, 3)), "JPEG")
    with pytest.raises(UserFacingError, match="damaged or incomplete"):
        load_photo(data[: len(data) // 2], **SMALL_LIMITS)


def test_a_picture_over_the_pixel_limit_is_refused():
    data = encode(Image.new("L", (3000, 3000)))
    with pytest.raises(UserFacingError, match="megapixels"):
        load_photo(data, **SMALL_LIMITS)


def test_a_tiny_picture_is_refused():
    with pytest.raises(UserFacingError, match="only 20x20 pixels"):
        load_photo(encode(Image.new("RGB", (20, 20))), **SMALL_LIMITS)
