"""Where a run's frames go: its live stream (`live.py`) or MP4 segments (`segments.py`), one `Sink` per run."""
