"""Every setting of the app in one place, read from environment variables once."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR.parent / "assets"
SAMPLE_FACES_DIR = ASSETS_DIR / "faces"
FACE_LANDMARKER_MODEL = ASSETS_DIR / "models" / "face_landmarker.task"

FPS = 25
ENGINE_SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = ENGINE_SAMPLE_RATE // FPS


def env_int(name: str, default: int) -> int:
    """An integer setting from the environment; unset or blank keeps `default`."""
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    """A number setting from the environment; unset or blank keeps `default`."""
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_str(name: str, default: str) -> str:
    """A text setting from the environment; unset or blank keeps `default`."""
    return os.environ.get(name, "").strip() or default


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Refuse a setting that is none of `choices`, naming the variable and what it may be."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")


@dataclass(frozen=True)
class Settings:
    """What an operator may change without touching code (see README, "Settings").

    Each engine reads its own settings in its package (`avatar/engines/*/spec.py`).
    """

    engine: str = "auto"
    device: str = "auto"
    voice: str = "auto"
    crop_size: int = 512
    # The longest side of a whole-photo video: its photo shrunk to fit, never enlarged. 512 keeps a run on two CPU
    # cores at 3x real time or faster; 768 does not (bench/RESULTS.md, "Framing"). Raise it where a GPU draws.
    max_video_side: int = 512
    max_text_chars: int = 1000
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 25_000_000
    # A visitor's own recording as the speech: a longer or bigger one is refused, never cut (speech/recording.py).
    max_recording_seconds: float = 60.0
    max_recording_bytes: int = 100_000_000
    # A live session (the Live tab: the microphone, as the visitor talks) ends after this many seconds.
    live_seconds: float = 120.0
    min_face_pixels: int = 64
    player: str = "mse"
    segment_seconds: float = 1.0
    max_waiting: int = 16
    first_segment_seconds: float = 0.4
    edge_tts_timeout: float = 4.0
    # "ray": each engine runs as Ray Serve replicas (see avatar/serving/); "off": in this process.
    serve: str = "off"
    # The Ray cluster's head (host:port) for AVATAR_SERVE=ray; blank starts a local Ray instance.
    ray_address: str = ""
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "talking-photo")

    @property
    def live_player(self) -> bool:
        """Whether the page plays each run's live stream (`mse`) rather than Gradio's streaming video (`hls`)."""
        return self.player == "mse"

    @classmethod
    def from_env(cls) -> Settings:
        """Read the AVATAR_* variables; unset ones keep the defaults above."""
        defaults = cls()
        return cls(
            engine=env_str("AVATAR_ENGINE", defaults.engine).lower(),
            device=env_str("AVATAR_DEVICE", defaults.device).lower(),
            voice=env_str("AVATAR_VOICE", defaults.voice),
            crop_size=env_int("AVATAR_CROP_SIZE", defaults.crop_size),
            max_video_side=env_int("AVATAR_MAX_VIDEO_SIDE", defaults.max_video_side),
            max_text_chars=env_int("AVATAR_MAX_TEXT_CHARS", defaults.max_text_chars),
            max_image_pixels=env_int("AVATAR_MAX_IMAGE_PIXELS", defaults.max_image_pixels),
            max_image_bytes=env_int("AVATAR_MAX_IMAGE_BYTES", defaults.max_image_bytes),
            max_recording_seconds=env_float("AVATAR_MAX_RECORDING_SECONDS", defaults.max_recording_seconds),
            max_recording_bytes=env_int("AVATAR_MAX_RECORDING_BYTES", defaults.max_recording_bytes),
            live_seconds=env_float("AVATAR_LIVE_SECONDS", defaults.live_seconds),
            min_face_pixels=env_int("AVATAR_MIN_FACE_PIXELS", defaults.min_face_pixels),
            player=env_str("AVATAR_PLAYER", defaults.player).lower(),
            segment_seconds=env_float("AVATAR_SEGMENT_SECONDS", defaults.segment_seconds),
            max_waiting=env_int("AVATAR_MAX_WAITING", defaults.max_waiting),
            first_segment_seconds=env_float("AVATAR_FIRST_SEGMENT_SECONDS", defaults.first_segment_seconds),
            edge_tts_timeout=env_float("AVATAR_EDGE_TTS_TIMEOUT", defaults.edge_tts_timeout),
            serve=env_str("AVATAR_SERVE", defaults.serve).lower(),
            ray_address=env_str("AVATAR_RAY_ADDRESS", defaults.ray_address),
            work_dir=Path(env_str("AVATAR_WORK_DIR", str(defaults.work_dir))),
        )
