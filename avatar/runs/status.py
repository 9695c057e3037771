"""The words of a run's status line, decided in one place for every kind of run and every tab."""

from __future__ import annotations

from avatar.runs.run import RunStats
from avatar.speech.sources import SpeechSource

STOPPED = "Stopped."


def waiting(number: int) -> str:
    """A visitor in line, told their number (1 = next)."""
    return f"Busy: you are number {number} in line; your video starts by itself…"


def working(speech: SpeechSource, notice: str = "") -> str:
    """A run that has started, before any video is ready."""
    return f"Working: {speech.summary}…{_after(notice)}"


def ready(speech: SpeechSource, seconds: float, notice: str = "") -> str:
    """A run with `seconds` of video done so far."""
    return f"Working: {speech.summary}: {seconds:.1f} s of video ready…{_after(notice)}"


def fallback(reason: str, used_label: str) -> str:
    """Why the chosen engine gave way, and to which."""
    return f"{reason} The {used_label.lower()} was used instead."


def finished(stats: RunStats) -> str:
    """The status line after a run, in plain words: who made it and how fast."""
    speed = stats.real_time_factor
    pace = f"{1 / speed:.1f}x faster than real time" if speed and speed < 1 else f"{speed:.1f}x real time"
    line = (
        f"Spoken by **{stats.voice}**, animated by **{stats.engine}**. "
        f"Speech ready after {stats.speech_ready:.2f} s, first picture after {stats.first_segment:.2f} s, "
        f"all {stats.audio_seconds:.2f} s of video done after {stats.total:.1f} s ({pace})."
    )
    return line + _after(stats.notice)


def _after(notice: str) -> str:
    return f"\n\n{notice}" if notice else ""
