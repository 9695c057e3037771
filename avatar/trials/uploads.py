"""The photos a person hands in: up to 16 files, or a zip of them, gathered into one folder safely."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath

from avatar.errors import UserFacingError
from avatar.images import PHOTO_SUFFIXES

MAX_PHOTOS = 16


def _unique(folder: Path, name: str) -> Path:
    path = folder / name
    stem, suffix, number = path.stem, path.suffix, 2
    while path.exists():
        path = folder / f"{stem}-{number}{suffix}"
        number += 1
    return path


def _from_zip(archive: Path, folder: Path, max_bytes: int, room: int) -> tuple[list[Path], int]:
    """Pictures inside a zip, by their base names only (no paths from the archive are trusted)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [
                info
                for info in bundle.infolist()
                if not info.is_dir()
                and PurePosixPath(info.filename).suffix.lower() in PHOTO_SUFFIXES
                and not PurePosixPath(info.filename).name.startswith(".")
                and "__MACOSX" not in PurePosixPath(info.filename).parts
            ]
            taken = []
            for info in members[:room]:
                if info.file_size > max_bytes:
                    raise UserFacingError(
                        f"{PurePosixPath(info.filename).name} in the zip is larger than {max_bytes / 1e6:.0f} MB. "
                        "Please use smaller copies."
                    )
                target = _unique(folder, PurePosixPath(info.filename).name)
                with bundle.open(info) as source, target.open("wb") as sink:
                    shutil.copyfileobj(source, sink)
                taken.append(target)
            return taken, len(members)
    except zipfile.BadZipFile as error:
        raise UserFacingError(f"{archive.name} is not a zip file that can be opened.") from error


def gather_photos(paths: list[str | Path], folder: Path, max_bytes: int) -> tuple[list[Path], list[str]]:
    """Copy the given photos (and the pictures inside any zip) into `folder`, at most `MAX_PHOTOS`.

    Returns the copies and notes for the person (photos left out, zips without pictures).
    """
    folder.mkdir(parents=True, exist_ok=True)
    gathered: list[Path] = []
    offered = 0
    notes = []
    for given in paths:
        source = Path(given)
        room = MAX_PHOTOS - len(gathered)
        if source.suffix.lower() == ".zip":
            taken, found = _from_zip(source, folder, max_bytes, max(room, 0))
            if not found:
                notes.append(f"{source.name} holds no pictures.")
            gathered.extend(taken)
            offered += found
            continue
        offered += 1
        if room > 0:
            target = _unique(folder, source.name)
            shutil.copyfile(source, target)
            gathered.append(target)
    if not gathered:
        raise UserFacingError("Please add some photos (up to 16), or one zip of photos.")
    if offered > len(gathered):
        notes.append(f"Only the first {MAX_PHOTOS} of the {offered} photos are tried.")
    return gathered, notes
