"""What the page asks of the engine room, in the page's terms: file paths and strings in, runs out.

Holds the process-wide pieces (settings, voices, engines) and knows nothing of Gradio, so
every step the page takes can be tested and reused (the trials tab, benchmarks) without it.
"""

from __future__ import annotations

import threading
from pathlib import Path

from avatar.config import SAMPLE_FACES_DIR, Settings
from avatar.engines.animate import face_crop
from avatar.engines.base import EngineUnavailable
from avatar.engines.registry import EngineRegistry
from avatar.engines.spec import Progress
from avatar.errors import UserFacingError
from avatar.faces import Face, read_face
from avatar.housekeeping import RESULT_KEEP_SECONDS
from avatar.images import PHOTO_SUFFIXES, load_photo
from avatar.live_stream import LiveStreams
from avatar.session import Run, RunStats
from avatar.sharing import SHARES_FOLDER, ShareRegistry
from avatar.speech.text import check_text, markup_notice
from avatar.speech.voices import RecordedSpeaker, Speaker, VoiceCatalogue
from avatar.judging.inspection import inspect_photo, rank
from avatar.waiting_line import WaitingLine


class Studio:
    """One per process: turns a photo path, a text, a voice and an engine choice into a Run."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.voices = VoiceCatalogue(self.settings.edge_tts_timeout, use_online=self.settings.voice != "offline")
        self.engines = EngineRegistry(self.settings)
        self.live_streams = LiveStreams()
        # Finished videos and review pages, for links to pass on; they expire with the results.
        self.shares = ShareRegistry(self.settings.work_dir / SHARES_FOLDER, RESULT_KEEP_SECONDS)
        self.line = WaitingLine(
            max_waiting=self.settings.max_waiting,
            slots={key: self.engines.sessions(key) for key in self.engines.specs},
        )
        self._samples: list[Path] | None = None
        self._samples_lock = threading.Lock()

    def sample_faces(self) -> list[Path]:
        """The bundled sample photos, best first as the photo trials' own checks rate them (judged once)."""
        with self._samples_lock:
            if self._samples is None:
                found = sorted(p for p in SAMPLE_FACES_DIR.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
                self._samples = [report.path for report in rank([inspect_photo(p, self.settings) for p in found])]
            return list(self._samples)

    def read_face(self, photo_path: str | Path | None) -> Face:
        """The photo's face, cropped as the engine will see it, or a `UserFacingError`."""
        if not photo_path:
            raise UserFacingError("Please pick a sample face or upload a photo first.")
        photo = load_photo(photo_path, self.settings.max_image_pixels, self.settings.max_image_bytes)
        return read_face(photo, self.settings.crop_size, self.settings.min_face_pixels)

    def recorded_speaker(self, voice_key: str | None) -> RecordedSpeaker:
        """A speaker whose every run repeats the same recording of each sentence (photo trials)."""
        return RecordedSpeaker(self.voices.find(voice_key), self.settings.edge_tts_timeout)

    def preview_face(self, photo_path: str | Path | None) -> Face:
        """The face for the page to show; the preselected engine starts preparing it meanwhile.

        By the time the user presses Generate, the per-face work is usually done.
        """
        face = self.read_face(photo_path)
        engine = self.engines.loaded(self.engines.preferred())
        if engine is not None:
            threading.Thread(target=engine.prepare, args=(face_crop(face),), name="prepare-face", daemon=True).start()
        return face

    def start_run(
        self,
        photo_path: str | Path | None,
        text: str,
        voice_key: str | None,
        engine_key: str | None,
        progress: Progress | None = None,
        speaker: Speaker | None = None,
    ) -> Run:
        """Check everything the user gave, then set up (not yet start) a run.

        An engine that cannot load here (no GPU, no weights, no network) gives way to the
        embedded animator, and the run's status says why.
        """
        cleaned = check_text(text, self.settings.max_text_chars)
        face = self.read_face(photo_path)
        speaker = speaker or Speaker(self.voices.find(voice_key), self.settings.edge_tts_timeout)
        speaker.check_language(cleaned)
        notice = ""
        try:
            engine = self.engines.get(engine_key or self.engines.preferred(), progress)
        except EngineUnavailable as error:
            fallback = self.engines.fallback
            if (engine_key or fallback) == fallback:
                raise UserFacingError(str(error)) from error
            engine = self.engines.get(fallback)
            notice = f"{error} The {engine.label.lower()} was used instead."
        live = self.live_streams.open() if self.settings.player == "mse" else None
        run = Run(
            face, cleaned, speaker, engine, self.settings.work_dir,
            self.settings.segment_seconds, self.settings.first_segment_seconds, live,
        )
        run.stats.notice = " ".join(part for part in (markup_notice(text), notice) if part)
        return run

    def warm_up(self) -> None:
        """Load the offline voice, the landmark model, the preferred engine and the fallback before the first click.

        A preferred engine that cannot load is skipped here; a run that asks for it is told why.
        """
        samples = self.sample_faces()
        if samples:
            self.read_face(samples[0])
        Speaker(self.voices.find("offline:joe"), self.settings.edge_tts_timeout).speak("Ready.")
        try:
            self.engines.get(self.engines.preferred())
        except EngineUnavailable:
            pass
        self.engines.get(self.engines.fallback)


def describe(stats: RunStats) -> str:
    """The status line after a run, in plain words."""
    speed = stats.real_time_factor
    pace = f"{1 / speed:.1f}x faster than real time" if speed and speed < 1 else f"{speed:.1f}x real time"
    line = (
        f"Spoken by **{stats.voice}**, animated by **{stats.engine}**. "
        f"Speech ready after {stats.speech_ready:.2f} s, first picture after {stats.first_segment:.2f} s, "
        f"all {stats.audio_seconds:.2f} s of video done after {stats.total:.1f} s ({pace})."
    )
    return f"{line}\n\n{stats.notice}" if stats.notice else line
