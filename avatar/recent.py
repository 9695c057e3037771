"""What was read from a visitor's file lately, kept so that the same file is not read twice before a run.

The page reads a photo when it is picked and a recording when it is chosen; Generate then asks for the
same file again, and the second reading (a face found, a sound decoded) would come before the first
picture. A reading is known by the file's path, size and modification time, and whatever else it
depends on (a framing, the limits); the latest readings are kept within a byte budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

Reading = TypeVar("Reading")


class RecentReadings(Generic[Reading]):
    """Readings of files, the latest kept while their `size` (bytes) adds up to at most `budget`."""

    def __init__(self, budget: int, size: Callable[[Reading], int]) -> None:
        self.budget = budget
        self.size = size
        self._kept: OrderedDict[tuple, Reading] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str | Path, *depends_on: Hashable) -> tuple | None:
        """What identifies a reading of `path`; None for a path that is no file (its reading says why)."""
        try:
            resolved = Path(path).resolve()
            stat = resolved.stat()
        except OSError:
            return None
        return (str(resolved), stat.st_size, stat.st_mtime_ns, *depends_on)

    def get(self, key: tuple | None) -> Reading | None:
        with self._lock:
            reading = self._kept.get(key) if key is not None else None
            if reading is not None:
                self._kept.move_to_end(key)
            return reading

    def put(self, key: tuple | None, reading: Reading) -> None:
        if key is None:
            return
        with self._lock:
            self._kept[key] = reading
            self._kept.move_to_end(key)
            while len(self._kept) > 1 and sum(self.size(kept) for kept in self._kept.values()) > self.budget:
                self._kept.popitem(last=False)

    def read(self, key: tuple | None, read: Callable[[], Reading]) -> Reading:
        """The kept reading for `key`, else `read()`, kept (a reading that raises is not kept)."""
        reading = self.get(key)
        if reading is None:
            reading = read()
            self.put(key, reading)
        return reading
