"""Keeping a public demo's disk tidy: what killed runs left is cleared at start, and total use stays capped.

A run removes its own folder when it ends, but a killed process cannot; Gradio's cache
(uploads, streamed segments, finished MP4s) grows with every visitor. The app owns two
folders, its work folder and Gradio's cache: a lock file in each says a live server uses
them, so a starting server clears them only when no other live server holds them. While
serving, a sweeper keeps their total under a cap by evicting the oldest finished results,
and removes run folders nobody has written to for a long time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from avatar.sharing import SHARES_FOLDER, remove_expired

RUN_PREFIX = "run-"
LOCK_NAME = ".in-use.lock"
# Kept across restarts: the ffmpeg links that `expose_ffmpeg_tools` puts in the work folder.
KEEP_NAMES = (LOCK_NAME, "bin")
DEFAULT_CAP_BYTES = 2_000_000_000
SWEEP_SECONDS = 30.0
# A result this fresh may still be downloading to its visitor's page: never evicted.
MIN_RESULT_AGE_SECONDS = 120.0
# Gradio's own expiry of its cache (Blocks(delete_cache=...)): how often it looks, and how long a
# finished video stays downloadable.
CACHE_SWEEP_SECONDS = 600
RESULT_KEEP_SECONDS = 3600
# A run folder untouched for this long belongs to no live run (runs write a segment a second).
STALE_RUN_SECONDS = 1800.0

log = logging.getLogger(__name__)


def _file_stats(folder: Path) -> Iterator[os.stat_result]:
    """The stat of every file under `folder` (links are not followed), skipping files removed meanwhile."""
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                yield os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue


def folder_bytes(folder: Path) -> int:
    """Bytes of the regular files under `folder` (links are not followed); 0 when it is missing."""
    return sum(stat.st_size for stat in _file_stats(folder))


def claim(folder: Path) -> IO | None:
    """Hold `folder` for this process (an advisory lock, freed by the OS even when the process is killed).

    Returns the open lock file, to keep for as long as the server runs, or None when another
    live process holds the folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_NAME).open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clear_leftovers(folder: Path) -> list[Path]:
    """Remove everything a previous server left in `folder` (call only while holding it: see `claim`)."""
    removed = [path for path in folder.iterdir() if path.name not in KEEP_NAMES]
    for path in removed:
        _remove(path)
    return removed


def _newest_change(folder: Path) -> float:
    return max([folder.stat().st_mtime, *(stat.st_mtime for stat in _file_stats(folder))])


@dataclass
class DiskCap:
    """Keeps the work folder and Gradio's cache under `cap_bytes` together.

    Only finished results in the cache are evicted, oldest first; files present when
    `protect_existing` was called (the page's own sample pictures) and live run folders are never.
    """

    work_dir: Path
    cache_dir: Path
    cap_bytes: int = DEFAULT_CAP_BYTES
    min_age: float = MIN_RESULT_AGE_SECONDS
    stale_run_age: float = STALE_RUN_SECONDS
    protected: set[Path] = field(default_factory=set)

    def protect_existing(self) -> None:
        """Never evict the files in the cache now: the page made them while being built and still shows them."""
        self.protected = {path for path in self.cache_dir.rglob("*") if path.is_file()}

    def used_bytes(self) -> int:
        if self.cache_dir.is_relative_to(self.work_dir):
            return folder_bytes(self.work_dir)
        return folder_bytes(self.work_dir) + folder_bytes(self.cache_dir)

    def sweep(self) -> list[Path]:
        """Remove stale run folders and expired shares, then the oldest results to the cap; returns what went."""
        now = time.time()
        removed = [
            path for path in self.work_dir.glob(f"{RUN_PREFIX}*")
            if path.is_dir() and now - _newest_change(path) > self.stale_run_age
        ]
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        removed += remove_expired(self.work_dir / SHARES_FOLDER, now)
        excess = self.used_bytes() - self.cap_bytes
        if excess > 0:
            for path, size in self._evictable(now):
                path.unlink(missing_ok=True)
                removed.append(path)
                excess -= size
                if excess <= 0:
                    break
            self._prune_empty_folders()
        return removed

    def _evictable(self, now: float) -> list[tuple[Path, int]]:
        """Cache files old enough to evict, oldest first, with their sizes."""
        candidates = []
        for path in self.cache_dir.rglob("*"):
            inside_run = any(part.startswith(RUN_PREFIX) for part in path.relative_to(self.cache_dir).parts)
            if path in self.protected or path.name == LOCK_NAME or inside_run:
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if path.is_file() and now - info.st_mtime > self.min_age:
                candidates.append((info.st_mtime, path, info.st_size))
        return [(path, size) for _, path, size in sorted(candidates, key=lambda item: item[0])]

    def _prune_empty_folders(self) -> None:
        for folder in sorted((p for p in self.cache_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()

    def run_forever(self, interval: float = SWEEP_SECONDS) -> None:
        """Sweep every `interval` seconds; a failed sweep is logged and the next one tries again."""
        while True:
            time.sleep(interval)
            try:
                removed = self.sweep()
            except OSError:
                log.exception("disk sweep failed")
                continue
            if removed:
                log.info("disk sweep removed %d item(s)", len(removed))


@dataclass
class Housekeeping:
    """What `app.py` keeps for the server's lifetime: the folder locks and the disk cap."""

    locks: list[IO]
    cap: DiskCap
    cleared: list[Path]

    def close(self) -> None:
        """On a clean shutdown: empty the folders this server holds (nobody can fetch results any more)."""
        for lock in self.locks:
            folder = Path(lock.name).parent
            if folder.is_dir():  # Gradio's own shutdown removes its cache folder, lock and all
                clear_leftovers(folder)
            lock.close()
        self.locks = []


def start_housekeeping(work_dir: Path, cache_dir: Path, cap_bytes: int = DEFAULT_CAP_BYTES) -> Housekeeping:
    """Claim both folders, clear what a killed server left in them, and start the sweeper thread.

    Only a folder this app has held before (it has the lock file) is cleared, so pointing
    `AVATAR_WORK_DIR` or `GRADIO_TEMP_DIR` at a folder with other files in it loses none of them.

    Call before the page is built (building it puts sample pictures in the cache), then call
    `housekeeping.cap.protect_existing()` once it is built.
    """
    locks, cleared = [], []
    for folder in dict.fromkeys((work_dir, cache_dir)):
        ours_before = (folder / LOCK_NAME).exists()
        lock = claim(folder)
        if lock is None:
            log.warning("%s is in use by another live server: left as it is", folder)
            continue
        locks.append(lock)
        if ours_before:
            cleared += clear_leftovers(folder)
    cap = DiskCap(work_dir, cache_dir, cap_bytes)
    threading.Thread(target=cap.run_forever, name="disk-sweeper", daemon=True).start()
    return Housekeeping(locks, cap, cleared)
