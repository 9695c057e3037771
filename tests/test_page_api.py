"""The page's public API, as a gradio_client user meets it: named endpoints, and plain answers to bad input.

A real server (`python app.py`) on loopback; every file is made here, in the test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from avatar.speech.text import MARKUP_REMOVED
from bench.page_driver import AppServer
from tests.helpers import ASTRONAUT, bomb_png, encode

MAX_BYTES = 2_000_000
SSML = "<speak><prosody rate='slow'>Hello <break/> world</prosody></speak>"
NOT_A_PICTURE = "⚠️ This file is not a picture this app can read. Please use a JPEG, PNG, WebP or GIF photo."


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A visitor's client of `python app.py` with a 2 MB limit on photos, offline voice."""
    with AppServer(tmp_path_factory.mktemp("api"), {"AVATAR_MAX_IMAGE_BYTES": str(MAX_BYTES)}) as server:
        yield Client(server.url, verbose=False)


def talk(client: Client, photo: Path, text: str) -> tuple:
    """The last update of one run: (video, download, captions, status)."""
    return tuple(list(client.submit(handle_file(str(photo)), text, "offline:joe", "default", api_name="/run"))[-1])


def spoken_seconds(status: str) -> float:
    return float(status.split("all ")[1].split(" s of video")[0])


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_every_endpoint_a_client_may_call_is_named_and_nothing_else_is_listed(client):
    api = client.view_api(return_format="dict", print_info=False)
    assert set(api["named_endpoints"]) == {
        "/preview_face", "/run", "/stop_run", "/share_video", "/check_photos", "/check_and_speak"
    }
    assert api["unnamed_endpoints"] == {}


@pytest.mark.parametrize(
    "data",
    [np.random.default_rng(0).bytes(5000), b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"],
    ids=["random-bytes", "pdf"],
)
def test_a_file_that_is_not_a_picture_uploaded_as_the_face_gets_the_apps_plain_sentence(client, tmp_path, data):
    fake = write(tmp_path / "face.png", data)
    assert client.predict(handle_file(str(fake)), api_name="/preview_face") == (None, NOT_A_PICTURE)
    assert talk(client, fake, "Hello there.") == (None, None, "", NOT_A_PICTURE)


def test_a_decompression_bomb_is_refused_by_its_pixel_count_before_anything_decodes_it(client, tmp_path):
    bomb = write(tmp_path / "bomb.png", bomb_png(20_000))
    _, note = client.predict(handle_file(str(bomb)), api_name="/preview_face")
    assert note.startswith("⚠️ The picture is") and "40 megapixels" in note


def test_an_upload_over_the_byte_limit_is_refused_by_its_size_before_anything_decodes_it(client, tmp_path):
    """A greyscale PNG header, then garbage: opening it would fail; only its size may be looked at."""
    header = encode(Image.new("L", (2000, 2000)))[:33]
    big = write(tmp_path / "big.png", header + np.random.default_rng(1).bytes(MAX_BYTES))
    _, note = client.predict(handle_file(str(big)), api_name="/preview_face")
    assert note == "⚠️ The picture file is 2.0 MB; the limit is 2 MB. Please use a smaller copy."


def test_markup_in_the_text_is_not_read_aloud_and_the_status_line_says_it_was_removed(client):
    _, marked_video, _, marked = talk(client, ASTRONAUT, SSML)
    _, _, _, plain = talk(client, ASTRONAUT, "Hello world")
    assert marked_video and MARKUP_REMOVED in marked and MARKUP_REMOVED not in plain
    assert spoken_seconds(marked) == pytest.approx(spoken_seconds(plain), abs=0.1), "the tags were spoken"


def test_photo_trials_check_every_photo_and_refuse_a_non_picture_with_its_reason(client, tmp_path):
    fake = write(tmp_path / "scan.png", b"%PDF-1.7\n" + b"0" * 500)
    status, recommendation, gallery, *_, verdicts = client.predict(
        [handle_file(str(ASTRONAUT)), handle_file(str(fake))], "Hello.", "offline:joe", "default",
        api_name="/check_photos",
    )
    assert status.startswith("2 photo(s) checked, 1 usable.")
    assert recommendation.startswith("### Recommended: astronaut.png") and len(gallery) == 2
    assert "This file is not a picture" in verdicts
