"""Paths and loaders shared by the tests (real photos from assets/ and tests/data/), and a ZeroGPU-like worker."""

from __future__ import annotations

import io
import multiprocessing
import multiprocessing.connection
import pickle
import ssl
import struct
import subprocess
import traceback
import zlib
from pathlib import Path

import aiohttp
import numpy as np
import soundfile
from aiohttp.client_reqrep import ConnectionKey
from PIL import Image

from avatar.config import SAMPLE_FACES_DIR
from avatar.images import load_photo
from avatar.media import MediaInfo, ffmpeg_exe, probe
from avatar.speech.offline_voice import OfflineVoice

DATA = Path(__file__).parent / "data"
ASTRONAUT = SAMPLE_FACES_DIR / "astronaut.png"
GRACE_HOPPER = SAMPLE_FACES_DIR / "grace_hopper.jpg"
COFFEE = DATA / "coffee.png"
LIMITS = {"max_pixels": 40_000_000, "max_bytes": 25_000_000}
# Tighter limits, so that the tests reach them with small pictures.
SMALL_LIMITS = {"max_pixels": 4_000_000, "max_bytes": 2_000_000}


def photo(path: Path) -> np.ndarray:
    return load_photo(path, **LIMITS)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    """A picture as the bytes of an image file of format `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(side: int) -> bytes:
    """A grey PNG of side x side pixels that compresses to a few hundred kB: a decompression bomb."""
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (side + 1)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def tls_failure(*args: object, **kwargs: object) -> None:
    """Raise what aiohttp raises when the online voices' host cannot be reached over TLS, raw text and all."""
    key = ConnectionKey("speech.platform.bing.com", 443, True, ssl.create_default_context(), None, None, None)
    raise aiohttp.ClientConnectorError(key, OSError(-3, "Temporary failure in name resolution"))


def draw_in_forked_worker(*arguments: object) -> list[np.ndarray]:
    """`draw_frames_on_gpu(*arguments)` the way ZeroGPU runs it: in a worker forked beforehand.

    As on ZeroGPU, the worker is forked first and reused state comes from the fork; the arguments
    then travel to it by pickle and every chunk of frames travels back by pickle.
    """
    context = multiprocessing.get_context("fork")
    to_worker, worker_end = context.Pipe()
    worker = context.Process(target=_gpu_worker, args=(worker_end,), daemon=True)
    worker.start()
    try:
        to_worker.send_bytes(pickle.dumps(arguments))
        chunks = []
        while to_worker.poll(120):
            item = pickle.loads(to_worker.recv_bytes())
            if isinstance(item, str):
                if item != "done":
                    raise AssertionError(f"the worker failed:\n{item}")
                return chunks
            chunks.append(item)
        raise AssertionError("the worker stopped answering")
    finally:
        worker.join(timeout=10)
        if worker.is_alive():
            worker.kill()


def _gpu_worker(connection: multiprocessing.connection.Connection) -> None:
    from avatar.engines.animate import draw_frames_on_gpu

    try:
        for frames in draw_frames_on_gpu(*pickle.loads(connection.recv_bytes())):
            connection.send_bytes(pickle.dumps(frames))
        connection.send_bytes(pickle.dumps("done"))
    except Exception:
        connection.send_bytes(pickle.dumps(traceback.format_exc()))


def video_of_the_speech(download: str | Path, status: str) -> MediaInfo:
    """The run's MP4, checked to hold 25 fps pictures and sound for exactly the speech the status line reports."""
    spoken = float(status.split("all ")[1].split(" s of video")[0])
    info = probe(Path(download))
    assert info.fps == 25
    assert abs(info.video_seconds - spoken) <= 0.1, (info.video_seconds, spoken)
    assert abs(info.audio_seconds - spoken) <= 0.1, (info.audio_seconds, spoken)
    return info


def ffmpeg(*args: str) -> None:
    """ffmpeg run quietly, writing over its output; raises if it fails."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", *args], check=True)


def speak_to_wav(text: str, path: Path) -> Path:
    """The offline voice saying `text`, as a 16-bit WAV at `path` (what Chromium's fake microphone reads)."""
    spoken = OfflineVoice().speak(text)
    soundfile.write(path, spoken.audio, spoken.sample_rate, subtype="PCM_16")
    return path
