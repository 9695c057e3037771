"""Reading a user's picture safely: any common format in, an upright RGB array out, or a clear refusal."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avatar.errors import UserFacingError

MIN_SIDE = 32
MAX_ASPECT = 8.0


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Put a transparent picture on neutral grey, so that see-through parts do not turn black."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (128, 128, 128, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if array.max() > 255 else 255.0
        return Image.fromarray((array / peak * 255.0).round().astype(np.uint8)).convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = max(float(array.max() - array.min()), 1e-9)
        return Image.fromarray(((array - array.min()) / span * 255.0).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def load_photo(source: str | Path | bytes, max_pixels: int, max_bytes: int) -> np.ndarray:
    """Open a photo as an upright (EXIF-rotated) RGB uint8 array of shape (H, W, 3).

    Animated pictures give their first frame. Anything unreadable, too big, too small or
    oddly shaped raises `UserFacingError` with a message saying what to do instead.
    """
    data = Path(source).read_bytes() if not isinstance(source, bytes) else source
    if len(data) == 0:
        raise UserFacingError("The picture file is empty. Please choose another photo.")
    if len(data) > max_bytes:
        raise UserFacingError(
            f"The picture file is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.0f} MB. "
            "Please use a smaller copy."
        )
    previous_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise UserFacingError(
                        f"The picture is {width}x{height} pixels, more than the limit of "
                        f"{max_pixels / 1e6:.0f} megapixels. Please use a smaller copy."
                    )
                image.seek(0)
                image.load()
                upright = ImageOps.exif_transpose(image)
                rgb = _to_rgb(upright)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UserFacingError(
            f"The picture is too large to open safely (limit {max_pixels / 1e6:.0f} megapixels). "
            "Please use a smaller copy."
        ) from error
    except UnidentifiedImageError as error:
        raise UserFacingError(
            "This file is not a picture this app can read. Please use a JPEG, PNG, WebP or GIF photo."
        ) from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise UserFacingError(
            "The picture file is damaged or incomplete and cannot be opened. Please choose another photo."
        ) from error
    finally:
        Image.MAX_IMAGE_PIXELS = previous_limit
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
