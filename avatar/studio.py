"""What the page asks of the app, in the page's terms: file paths and strings in, faces and runs out.

Holds the process-wide pieces (settings, voices, engines, the waiting line, the run service) and
knows nothing of Gradio, so every step the page takes can be tested and reused (the trials tab,
benchmarks) without it. Runs themselves are served by `avatar/runs/service.py`.
"""

from __future__ import annotations

import threading
from pathlib import Path

from avatar.config import SAMPLE_FACES_DIR, Settings
from avatar.engines.animate import face_crop
from avatar.engines.base import EngineUnavailable
from avatar.engines.registry import EngineRegistry
from avatar.errors import UserFacingError
from avatar.faces import Face, read_face
from avatar.framing import Framing
from avatar.housekeeping import RESULT_KEEP_SECONDS
from avatar.images import PHOTO_SUFFIXES, load_photo
from avatar.judging.inspection import inspect_photo, rank
from avatar.live_stream import LiveStreams
from avatar.recent import RecentReadings
from avatar.runs.service import RunService
from avatar.serving import join_cluster
from avatar.sharing import SHARES_FOLDER, ShareRegistry
from avatar.speech.aligner import warm_up as warm_up_aligner
from avatar.speech.voices import RecordedSpeaker, Speaker, VoiceCatalogue
from avatar.waiting_line import WaitingLine

# Faces read lately are kept within this many bytes of photos (a photo may be 40 MP): Generate then finds the
# face read when the photo was picked, instead of reading it again (0.1-0.2 s on 2 cores, before the first picture).
KEPT_FACE_BYTES = 256_000_000


class Studio:
    """One per process: the settings, voices, engines and faces every run shares, and the service that runs them."""

    def __init__(self, settings: Settings | None = None, engines: EngineRegistry | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.voices = VoiceCatalogue(self.settings.edge_tts_timeout, use_online=self.settings.voice != "offline")
        self.engines = engines or EngineRegistry(self.settings, cluster=join_cluster(self.settings))
        self.live_streams = LiveStreams()
        # Finished videos and review pages, for links to pass on; they expire with the results.
        self.shares = ShareRegistry(self.settings.work_dir / SHARES_FOLDER, RESULT_KEEP_SECONDS)
        self.line = WaitingLine(
            max_waiting=self.settings.max_waiting,
            slots={key: self.engines.sessions(key) for key in self.engines.specs},
        )
        self.runs = RunService(
            self.settings, self.engines, self.voices, self.line, self.live_streams, self.shares, self.read_face
        )
        self._samples: list[Path] | None = None
        self._faces: RecentReadings[Face] = RecentReadings(KEPT_FACE_BYTES, lambda face: face.photo.nbytes)
        self._samples_lock = threading.Lock()

    def sample_faces(self) -> list[Path]:
        """The bundled sample photos, best first as the photo trials' own checks rate them (judged once)."""
        with self._samples_lock:
            if self._samples is None:
                found = sorted(p for p in SAMPLE_FACES_DIR.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
                self._samples = [report.path for report in rank([inspect_photo(p, self.settings) for p in found])]
            return list(self._samples)

    def read_face(self, photo_path: str | Path | None, framing: Framing = Framing.WHOLE) -> Face:
        """The photo's face, cropped as the engine will see it in `framing`, or a `UserFacingError`.

        A photo read lately (when it was picked) is not read again: its face is kept.
        """
        if not photo_path:
            raise UserFacingError("Please pick a sample face or upload a photo first.")

        def read() -> Face:
            photo = load_photo(photo_path, self.settings.max_image_pixels, self.settings.max_image_bytes)
            return read_face(photo, self.settings.crop_size, self.settings.min_face_pixels, framing)

        return self._faces.read(self._faces.key(photo_path, framing), read)

    def recorded_speaker(self, voice_key: str | None) -> RecordedSpeaker:
        """A speaker whose every run repeats the same recording of each sentence (photo trials)."""
        return RecordedSpeaker(self.voices.find(voice_key), self.settings.edge_tts_timeout)

    def preview_face(self, photo_path: str | Path | None, framing: Framing = Framing.WHOLE) -> Face:
        """The face for the page to show; the preselected engine starts preparing it meanwhile.

        By the time the user presses Generate, the per-face work is usually done.
        """
        face = self.read_face(photo_path, framing)
        engine = self.engines.loaded(self.engines.preferred())
        if engine is not None:
            threading.Thread(target=engine.prepare, args=(face_crop(face),), name="prepare-face", daemon=True).start()
        return face

    def warm_up(self) -> None:
        """Load the offline voice, the landmark model, the aligner of a recording's words, the preferred engine and
        the fallback before the first click.

        A preferred engine that cannot load is skipped here; a run that asks for it is told why.
        """
        samples = self.sample_faces()
        if samples:
            self.read_face(samples[0])
        Speaker(self.voices.find("offline:joe"), self.settings.edge_tts_timeout).speak("Ready.")
        warm_up_aligner()
        try:
            self.engines.get(self.engines.preferred())
        except EngineUnavailable:
            pass
        self.engines.get(self.engines.fallback)

