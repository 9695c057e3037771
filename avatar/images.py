"""Reading a user's picture safely: any common format in, an upright RGB array out, or a clear refusal.

Safe with many users at once: the limits are checked here, for each call, rather than by
changing Pillow's process-wide `MAX_IMAGE_PIXELS` or the warnings filters, which threads share.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from avatar.errors import UserFacingError

# File names taken for photos (sample faces, photos inside a trial's zip).
PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff")
MIN_SIDE = 32
MAX_ASPECT = 8.0
# Modes whose plain conversion to RGB is visibly wrong: they go through a colour profile instead.
_PROFILED_MODES = ("CMYK", "LAB")
# What Pillow's decoders raise on broken or hostile files (found by feeding them such files).
_DECODE_ERRORS = (
    OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, ZeroDivisionError, struct.error,
)
_SRGB = ImageCms.createProfile("sRGB")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Put a transparent picture on neutral grey, so that see-through parts do not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _profiled_to_rgb(image: Image.Image) -> Image.Image:
    """CMYK through its embedded profile (print colours), Lab through the Lab profile; naive if that fails."""
    try:
        if image.mode == "LAB":
            source = ImageCms.createProfile("LAB")
        elif image.info.get("icc_profile"):
            source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        else:
            return image.convert("RGB")
        return ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image.convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    if image.mode in _PROFILED_MODES:
        return _profiled_to_rgb(image)
    if image.mode.startswith("I;16"):
        array = np.asarray(image, dtype=np.float32)
        return Image.fromarray((array / 65535.0 * 255.0).round().astype(np.uint8)).convert("RGB")
    if image.mode == "I":
        array = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray((array.clip(0, peak) / peak * 255.0).round().astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.nan_to_num(np.asarray(image, dtype=np.float32))
        span = max(float(array.max() - array.min()), 1e-9)
        return Image.fromarray(((array - array.min()) / span * 255.0).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _upright(image: Image.Image) -> Image.Image:
    """Turned as its EXIF orientation says; a broken EXIF block is ignored rather than refusing the photo."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        return image


def _read_bytes(source: str | Path | bytes, max_bytes: int) -> bytes:
    """The file's bytes, refusing an oversized file by its size before reading any of it."""
    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if size == 0:
        raise UserFacingError("The picture file is empty. Please choose another photo.")
    if size > max_bytes:
        raise UserFacingError(
            f"The picture file is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Please use a smaller copy."
        )
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def _too_many_pixels(width: int, height: int, max_pixels: int) -> UserFacingError:
    return UserFacingError(
        f"The picture is {width}x{height} pixels, more than the limit of "
        f"{max_pixels / 1e6:.0f} megapixels. Please use a smaller copy."
    )


def load_photo(source: str | Path | bytes, max_pixels: int, max_bytes: int) -> np.ndarray:
    """Open a photo as an upright (EXIF-rotated) RGB uint8 array of shape (H, W, 3).

    Animated pictures give their first frame. Anything unreadable, too big, too small or
    oddly shaped raises `UserFacingError` with a message saying what to do instead.
    """
    data = _read_bytes(source, max_bytes)
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            image.seek(0)
            image.load()
            rgb = _to_rgb(_upright(image))
    except Image.DecompressionBombError as error:
        raise UserFacingError(
            f"The picture is too large to open safely (limit {max_pixels / 1e6:.0f} megapixels). "
            "Please use a smaller copy."
        ) from error
    except UnidentifiedImageError as error:
        raise UserFacingError(
            "This file is not a picture this app can read. Please use a JPEG, PNG, WebP or GIF photo."
        ) from error
    except _DECODE_ERRORS as error:
        raise UserFacingError(
            "The picture file is damaged or incomplete and cannot be opened. Please choose another photo."
        ) from error
    width, height = rgb.size
    if min(width, height) < MIN_SIDE:
        raise UserFacingError(
            f"The picture is only {width}x{height} pixels. Please use a photo at least "
            f"{MIN_SIDE * 8} pixels on its shorter side."
        )
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise UserFacingError(
            f"The picture is {width}x{height} pixels, a very stretched shape. Please crop it closer "
            "to the face."
        )
    return np.asarray(rgb, dtype=np.uint8).copy()
