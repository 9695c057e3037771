"""Links to pass on: a finished video's page, a trial's review page; open to anyone with the link, and nothing else.

The registry alone first (expiry, ids, bundles), then the real server (`python app.py` on loopback)
asked over plain HTTP, as a reviewer's phone would: no cookies, no app page, range requests for video.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from gradio_client import Client, handle_file

from avatar.housekeeping import DiskCap
from avatar.sharing import SHARES_FOLDER, ShareRegistry
from bench.page_driver import AppServer
from tests.helpers import ASTRONAUT, GRACE_HOPPER

TEXT = "Hello there, nice to meet you."
GONE = "This link has expired or does not exist"


class Clock:
    """A clock the test moves by hand, starting now."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET `url` as a fresh client with no cookie jar: (status, headers named in lower case, body), errors too."""
    opener = urllib.request.build_opener()  # no HTTPCookieProcessor: nothing is remembered between requests
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status, _lower(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, _lower(error.headers), error.read()


def _lower(headers) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET a path exactly as written (no client tidies `..` or `%2F` away)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


# --- the registry ----------------------------------------------------------------------------


def test_a_shared_video_is_found_by_its_id_until_it_expires_then_housekeeping_removes_it(tmp_path):
    clock = Clock()
    video = tmp_path / "talking-photo.mp4"
    video.write_bytes(b"\0\0\0\x18ftypmp42" + b"x" * 1000)
    shares = ShareRegistry(tmp_path / "runs" / SHARES_FOLDER, keep_seconds=3600, clock=clock)
    share = shares.add_video(video, TEXT, "Embedded photo animator (CPU)", "Joe (offline, English US)")
    video.unlink()  # the run's folder goes when the run ends; the share keeps its own copy
    assert shares.get(share.id) == share and shares.file(share, "video.mp4").read_bytes().endswith(b"x" * 1000)
    assert shares.file(share, "share.json") is None, "the share's own record is not one of its files"
    clock.now += 3599
    assert shares.get(share.id) is not None
    clock.now += 1
    assert shares.get(share.id) is None, "an expired share was still found"
    cap = DiskCap(tmp_path / "runs", tmp_path / "gradio")
    (tmp_path / "gradio").mkdir()
    removed = [path for path in cap.sweep() if path.parent == shares.folder]
    assert removed == [], "housekeeping removed a share before its time (by the real clock)"
    record = shares.folder / share.id / "share.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "expires": 0}))
    assert shares.folder / share.id in cap.sweep() and not (shares.folder / share.id).exists()


def test_ids_are_long_random_and_url_safe(tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"v")
    shares = ShareRegistry(tmp_path / "shares", keep_seconds=60)
    ids = {shares.add_video(video, "Hi.", "e", "v").id for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{24,}", share_id) for share_id in ids)
    assert shares.get("../shares") is None and shares.get("") is None and shares.get(".draft-x" * 4) is None


def test_a_review_bundle_is_unpacked_but_a_member_pointing_outside_is_left_out(tmp_path):
    bundle = tmp_path / "photo-trials.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("index.html", "<html><body><video src='videos/01-a.mp4'></video></body></html>")
        archive.writestr("videos/01-a.mp4", b"mp4")
        archive.writestr("../escape.txt", b"no")
        archive.writestr("/etc/escape.txt", b"no")
    shares = ShareRegistry(tmp_path / "shares", keep_seconds=60)
    share = shares.add_review(bundle, "index.html")
    assert set(share.files) == {"index.html", "videos/01-a.mp4", "photo-trials.zip"}
    assert not (tmp_path / "escape.txt").exists() and not list(tmp_path.rglob("escape.txt"))


# --- over HTTP, from the real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("sharing")) as running:
        yield running


@pytest.fixture(scope="module")
def shared(server) -> tuple[str, Path]:
    """A finished run's share link, as the Share button gives it, and the run's download."""
    client = Client(server.url, verbose=False)
    *_, last = client.submit(handle_file(str(GRACE_HOPPER)), TEXT, "offline:joe", "default", api_name="/run")
    download = last[1][0] if isinstance(last[1], list) else last[1]
    return client.predict(api_name="/share_video"), Path(download)


def test_the_share_button_gives_an_absolute_link_under_the_apps_own_address(server, shared):
    link, _ = shared
    assert re.fullmatch(re.escape(server.url) + r"share/[A-Za-z0-9_-]{24,}/", link)


def test_a_shared_link_opens_a_page_with_the_video_words_makers_and_download_without_cookies(server, shared):
    link, _ = shared
    status, headers, body = fetch(link)
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "set-cookie" not in headers
    assert '<video id="video" src="video.mp4"' in page
    assert f'<blockquote id="spoken">{TEXT}</blockquote>' in page
    assert "Joe (offline, English US)" in page and "Embedded photo animator" in page
    assert 'id="download" href="video.mp4" download=' in page
    expiry = r"This link works until <time datetime=\"[^\"]+\">[^<]+ UTC on [^<]+</time> \(about \d+ minutes"
    assert re.search(expiry, page), "the page does not say until when the link works"
    assert headers.get("x-robots-tag") == "noindex, nofollow", "a shared page asked search engines to list it"
    status, _, again = fetch(link.rstrip("/"))  # as typed or pasted without the last slash
    assert status == 200 and again == body


def test_the_shared_mp4_is_the_download_and_is_served_in_ranges(shared):
    link, download = shared
    whole = download.read_bytes()
    status, headers, body = fetch(link + "video.mp4")
    assert status == 200 and headers["content-type"] == "video/mp4" and body == whole
    assert headers.get("accept-ranges") == "bytes"
    status, headers, body = fetch(link + "video.mp4", {"Range": "bytes=0-99"})
    assert status == 206 and headers["content-range"] == f"bytes 0-99/{len(whole)}" and body == whole[:100]
    status, headers, body = fetch(link + "video.mp4", {"Range": f"bytes={len(whole) - 50}-"})
    assert status == 206 and body == whole[-50:]


def test_an_unknown_or_expired_link_gets_a_404_page_in_plain_words(server):
    unknown = f"{server.url}share/{secrets.token_urlsafe(18)}/"
    status, headers, body = fetch(unknown)
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert GONE in body.decode() and "ask the person who sent you this link" in body.decode()
    client = Client(server.url, verbose=False)
    list(client.submit(handle_file(str(ASTRONAUT)), "Short.", "offline:joe", "default", api_name="/run"))
    link = client.predict(api_name="/share_video")
    record = server.work / "runs" / SHARES_FOLDER / link.rstrip("/").rsplit("/", 1)[1] / "share.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "expires": 1.0}))  # an hour has passed
    for url in (link, link + "video.mp4"):
        status, _, body = fetch(url)
        assert status == 404 and GONE in body.decode(), url


@pytest.mark.parametrize(
    "path",
    [
        "/share/{id}/share.json",
        "/share/{id}/../{id}/share.json",
        "/share/{id}/..%2Fshare.json",
        "/share/{id}/%2e%2e/%2e%2e/server.log",
        "/share/{id}/..%2F..%2F..%2Fserver.log",
        "/share/..%2F..%2Fserver.log/video.mp4",
        "/share/%2e%2e/runs/video.mp4",
        "/share/{id}%2F..%2F..%2Fserver.log",
        "/share/{id}/%2Fetc%2Fpasswd",
        "/share/",
        "/share",
    ],
)
def test_a_link_opens_nothing_but_its_own_files(server, shared, path):
    link, _ = shared
    share_id = link.rstrip("/").rsplit("/", 1)[1]
    status, body = raw_get(server.url, path.format(id=share_id))
    assert status in (404, 405), f"{path} answered {status}"
    assert b"expires" not in body and b"Running on" not in body and b"root:" not in body


def test_the_shares_folder_is_not_reachable_through_gradios_file_route(server, shared):
    link, _ = shared
    share_id = link.rstrip("/").rsplit("/", 1)[1]
    video = server.work / "runs" / SHARES_FOLDER / share_id / "video.mp4"
    assert video.exists()
    status, _, _ = fetch(f"{server.url}gradio_api/file={video}")
    assert status in (403, 404)


def test_a_trials_review_page_has_its_own_link_with_its_videos(server):
    client = Client(server.url, verbose=False)
    *_, last = client.submit(
        [handle_file(str(GRACE_HOPPER))], "Hello.", "offline:joe", "default", api_name="/check_and_speak"
    )
    link = next(value for value in last if isinstance(value, str) and "/share/" in value)
    status, headers, body = fetch(link)
    page = body.decode()
    assert status == 200 and "<h1>Photo trials</h1>" in page
    assert "This review page works until" in page and 'href="photo-trials.zip"' in page
    video = re.search(r'<video class="trial" src="([^"]+)"', page).group(1)
    status, headers, clip = fetch(link + video, {"Range": "bytes=0-15"})
    assert status == 206 and headers["content-type"] == "video/mp4" and clip[4:8] == b"ftyp"
    status, _, bundle = fetch(link + "photo-trials.zip")
    assert status == 200 and bundle[:2] == b"PK"
