"""The face photo box: Gradio's image box (upload, webcam, clipboard) that hands the app the file unopened.

`gr.Image` opens every upload with Pillow before the app sees it, so a file that is no picture
(a PDF renamed `.png`) fails inside Gradio with a bare "Error", and a decompression bomb is decoded
before any limit is checked. This box passes the uploaded file's path on as it is:
`avatar.images.load_photo` checks its size first, then decodes it, and says in a plain sentence
what is wrong.

The box is a `gr.Image` whose `preprocess` is replaced, not a subclass: Gradio writes a `.pyi`
stub beside the source of every component class it sees defined.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.data_classes import ImageData


def photo_input(**options: Any) -> gr.Image:
    """`gr.Image(type="filepath", **options)` on the page; to the app, the uploaded file's path, not yet opened."""
    box = gr.Image(type="filepath", **options)
    box.preprocess = partial(uploaded_path, cache=Path(box.GRADIO_CACHE))
    return box


def uploaded_path(payload: ImageData | None, cache: Path) -> str | None:
    """The upload's path; a `data:` URL (only API callers send one) is written into `cache` as it is."""
    if payload is None:
        return None
    if payload.path:
        return payload.path
    if not (payload.url or "").startswith("data:"):
        return None
    try:
        data = base64.b64decode(payload.url.partition(",")[2])
    except (binascii.Error, ValueError):
        data = b""
    folder = cache / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"photo-{hashlib.sha256(data).hexdigest()[:24]}"
    path.write_bytes(data)
    return str(path)
