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


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


@dataclass(frozen=True)
class Settings:
    """What an operator may change without touching code (see README, "Settings")."""

    engine: str = "auto"
    device: str = "auto"
    flashhead_weights: str = "Soul-AILab/SoulX-FlashHead-1_3B"
    flashhead_variant: str = "lite"
    wav2vec2_weights: str = "facebook/wav2vec2-base-960h"
    voice: str = "auto"
    crop_size: int = 512
    max_text_chars: int = 1000
    max_image_pixels: int = 40_000_000
    max_image_bytes: int = 25_000_000
    min_face_pixels: int = 64
    player: str = "mse"
    segment_seconds: float = 1.0
    runs_at_once: int = 2
    max_waiting: int = 16
    first_segment_seconds: float = 0.4
    edge_tts_timeout: float = 4.0
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("TMPDIR", "/tmp")) / "talking-photo")

    @classmethod
    def from_env(cls) -> Settings:
        """Read the AVATAR_* variables; unset ones keep the defaults above."""
        defaults = cls()
        return cls(
            engine=_env_str("AVATAR_ENGINE", defaults.engine).lower(),
            device=_env_str("AVATAR_DEVICE", defaults.device).lower(),
            flashhead_weights=_env_str("AVATAR_FLASHHEAD_WEIGHTS", defaults.flashhead_weights),
            flashhead_variant=_env_str("AVATAR_FLASHHEAD_VARIANT", defaults.flashhead_variant).lower(),
            wav2vec2_weights=_env_str("AVATAR_WAV2VEC2_WEIGHTS", defaults.wav2vec2_weights),
            voice=_env_str("AVATAR_VOICE", defaults.voice),
            crop_size=_env_int("AVATAR_CROP_SIZE", defaults.crop_size),
            max_text_chars=_env_int("AVATAR_MAX_TEXT_CHARS", defaults.max_text_chars),
            max_image_pixels=_env_int("AVATAR_MAX_IMAGE_PIXELS", defaults.max_image_pixels),
            max_image_bytes=_env_int("AVATAR_MAX_IMAGE_BYTES", defaults.max_image_bytes),
            min_face_pixels=_env_int("AVATAR_MIN_FACE_PIXELS", defaults.min_face_pixels),
            player=_env_str("AVATAR_PLAYER", defaults.player).lower(),
            segment_seconds=_env_float("AVATAR_SEGMENT_SECONDS", defaults.segment_seconds),
            runs_at_once=_env_int("AVATAR_RUNS_AT_ONCE", defaults.runs_at_once),
            max_waiting=_env_int("AVATAR_MAX_WAITING", defaults.max_waiting),
            first_segment_seconds=_env_float("AVATAR_FIRST_SEGMENT_SECONDS", defaults.first_segment_seconds),
            edge_tts_timeout=_env_float("AVATAR_EDGE_TTS_TIMEOUT", defaults.edge_tts_timeout),
            work_dir=Path(_env_str("AVATAR_WORK_DIR", str(defaults.work_dir))),
        )
