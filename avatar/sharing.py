"""Links to pass on: a finished video, or a trial's review page, kept under an unguessable id until it expires.

Each share is one folder, `<shares>/<id>/`, holding its files and `share.json` (what the page says
about it, when it expires, and the only file names it may serve). A share is written under a
hidden name and renamed into place, so a half-written one is never found. Nothing lists the
folder: a share is reached only by its id, and a request names a file only from its list, so no
path from a request is ever joined onto the disk.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

SHARES_FOLDER = "shares"
RECORD_NAME = "share.json"
VIDEO_NAME = "video.mp4"
CAPTIONS_NAME = "captions.vtt"
# 18 random bytes: 24 URL-safe characters, 144 bits; nobody guesses one.
ID_BYTES = 18
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{24,64}")


@dataclass(frozen=True)
class Share:
    """One link's content: a video with what made it, or (kind "review") a trial's review page."""

    id: str
    kind: str  # "video" or "review"
    expires: float  # seconds since the epoch
    files: tuple[str, ...]  # the only names it serves, relative to its folder ("/"-separated)
    text: str = ""
    engine: str = ""
    voice: str = ""
    page: str = ""  # a review's HTML page, one of `files`

    @property
    def captions(self) -> bool:
        return CAPTIONS_NAME in self.files

    @property
    def path(self) -> str:
        """Its page, relative to the app's root (the server's routes are in ui/share_page.py)."""
        return f"share/{self.id}/"


class ShareRegistry:
    """The shares under one folder: made when a result is ready, found by id until they expire."""

    def __init__(self, folder: Path, keep_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.folder = folder
        self.keep_seconds = keep_seconds
        self.clock = clock

    @property
    def lifetime(self) -> str:
        """How long a share lasts, in words: 'an hour', '30 minutes', '2 hours'."""
        minutes = round(self.keep_seconds / 60)
        if minutes == 60:
            return "an hour"
        return f"{minutes} minutes" if minutes < 120 else f"{minutes / 60:g} hours"

    def add_video(
        self, video: Path, text: str, engine: str, voice: str, captions: Path | None = None
    ) -> Share:
        """Keep a finished MP4 (and its captions, if any) under a new id; the run's own copy may go."""

        def fill(folder: Path) -> tuple[str, ...]:
            _keep(video, folder / VIDEO_NAME)
            if captions is not None:
                _keep(captions, folder / CAPTIONS_NAME)
                return (VIDEO_NAME, CAPTIONS_NAME)
            return (VIDEO_NAME,)

        return self._add("video", fill, text=text, engine=engine, voice=voice)

    def add_review(self, bundle: Path, page: str) -> Share:
        """Keep a review bundle's files (unpacked, so its page plays them) and the zip itself under a new id."""

        def fill(folder: Path) -> tuple[str, ...]:
            names = []
            with zipfile.ZipFile(bundle) as archive:
                for member in archive.infolist():
                    name = _safe_name(member.filename)
                    if member.is_dir() or name is None:
                        continue
                    target = folder / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, target.open("wb") as copy:
                        shutil.copyfileobj(source, copy)
                    names.append(name)
            _keep(bundle, folder / bundle.name)
            return (*names, bundle.name)

        return self._add("review", fill, page=page)

    def get(self, share_id: str) -> Share | None:
        """The share with this id, or None when there is none, it has expired, or the id is not one of ours."""
        if not ID_PATTERN.fullmatch(share_id):
            return None
        try:
            record = json.loads((self.folder / share_id / RECORD_NAME).read_text())
        except (OSError, ValueError):
            return None
        share = Share(**{**record, "files": tuple(record["files"])})
        return share if share.expires > self.clock() else None

    def file(self, share: Share, name: str) -> Path | None:
        """The path of `name` in `share`, only when `name` is one of the share's own files."""
        if name not in share.files:
            return None
        path = self.folder / share.id / name
        return path if path.is_file() else None

    def remove_expired(self) -> list[Path]:
        """Remove the shares past their expiry (and leftovers of shares never finished); returns what went."""
        return remove_expired(self.folder, self.clock())

    def _add(self, kind: str, fill: Callable[[Path], tuple[str, ...]], **about: str) -> Share:
        self.folder.mkdir(parents=True, exist_ok=True)
        draft = Path(tempfile.mkdtemp(prefix=".draft-", dir=self.folder))
        try:
            files = fill(draft)
            share = Share(
                id=secrets.token_urlsafe(ID_BYTES), kind=kind, expires=self.clock() + self.keep_seconds,
                files=files, **about,
            )
            (draft / RECORD_NAME).write_text(json.dumps(asdict(share)))
            draft.rename(self.folder / share.id)
        except BaseException:
            shutil.rmtree(draft, ignore_errors=True)
            raise
        return share


def remove_expired(folder: Path, now: float | None = None, draft_age: float = 3600.0) -> list[Path]:
    """Remove the shares in `folder` whose time is up; a draft older than `draft_age` was never finished."""
    now = time.time() if now is None else now
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        if path.name.startswith(".draft-"):
            gone = now - path.stat().st_mtime > draft_age
        else:
            try:
                gone = json.loads((path / RECORD_NAME).read_text())["expires"] <= now
            except (OSError, ValueError, KeyError, TypeError):
                gone = True  # not a share at all: nothing may serve it
        if gone:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _keep(source: Path, target: Path) -> None:
    """A second name for `source` at `target` (no copy on the same disk), or a copy when linking cannot be done."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _safe_name(name: str) -> str | None:
    """A zip member's name as a plain relative path, or None when it could point outside its folder."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(part in ("..", ".", "") for part in path.parts) or "\\" in name:
        return None
    return path.as_posix()
