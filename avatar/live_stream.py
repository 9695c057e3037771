"""One continuous fragmented MP4 per run, readable while it is being written.

For players that append bytes straight into the browser's Media Source Extensions: one
ffmpeg (imageio-ffmpeg's) encodes frames and audio as they arrive, cutting a fragment every
few frames, and every byte it writes is kept in memory so that a viewer who connects late
still gets the whole stream from its first byte. No playlist to poll and no re-muxing, so
a fragment is playable as soon as it leaves the encoder.
"""

from __future__ import annotations

import os
import queue
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator

import numpy as np

from avatar.config import FPS
from avatar.media import AUDIO_ARGS, AUDIO_RATE, ffmpeg_exe, video_args

# H.264 High profile, level 3.1 (enough for 512x512 at 25 fps) and AAC-LC, as MSE wants them named;
# the encoder is told that profile and level, so the stream is what this name promises.
MIME_TYPE = 'video/mp4; codecs="avc1.64001f, mp4a.40.2"'
# A fragment per frame, and no waiting to interleave the two tracks: a frame leaves ffmpeg as soon as it
# is encoded, not when a fifth of a second of video (and the sound past it) has followed, which cut the
# delay from a live microphone's sound to its frame in the page by about 0.14 s (bench/RESULTS.md, "Live latency").
FRAGMENT_SECONDS = 0.04
# The AAC encoder delays its output by one frame of 1024 samples ("priming"), and a fragmented
# MP4 written as it goes carries no edit list to take that back: left alone, the sound would
# play 43 ms late. So the audio fed in runs 1024 samples ahead of the frames it goes with:
# the priming takes the place of the run's first 1024 samples (the voice's leading silence),
# all that follows lines up, and the audio input is never behind the video (ffmpeg would
# wait for it before taking more frames). The muxer is told to leave the video's timestamps
# alone: by default it answers the priming's negative start by holding the first frame for
# 43 ms more, which put every later frame 43 ms behind its sound.
AAC_PRIMING_SAMPLES = 1024
READ_SIZE = 65536
# Writes of frames waiting for ffmpeg: ffmpeg holds back the last frames until the sound under them
# comes (a microphone's next samples come with the next frames), so frames go in through their own
# thread, whose wait never blocks the run; a few writes bound the memory.
FRAME_WRITES_QUEUED = 4
# How long a finished stream stays readable, for a viewer that is still catching up.
KEEP_SECONDS = 120.0


class Broadcast:
    """Bytes written once and read by any number of viewers, each from the start."""

    def __init__(self, token: str = "") -> None:
        self.token = token
        self._chunks: list[bytes] = []
        self._condition = threading.Condition()
        self.closed = False
        self.closed_at = 0.0

    def append(self, data: bytes) -> None:
        with self._condition:
            self._chunks.append(data)
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self.closed = True
            self.closed_at = time.monotonic()
            self._condition.notify_all()

    def contents(self) -> bytes:
        """Every byte written so far, as one piece."""
        with self._condition:
            return b"".join(self._chunks)

    def read(self, timeout: float = 30.0) -> Iterator[bytes]:
        """Every chunk in order, waiting for new ones until the stream is closed (or `timeout` of silence)."""
        index = 0
        while True:
            with self._condition:
                if index >= len(self._chunks) and not self.closed:
                    self._condition.wait(timeout)
                if index >= len(self._chunks):
                    return
                chunks = self._chunks[index:]
            index += len(chunks)
            yield b"".join(chunks)


class LiveEncoder:
    """Frames (n, h, w, 3) uint8 and their audio in, a fragmented MP4 out into a Broadcast."""

    def __init__(self, width: int, height: int, broadcast: Broadcast, sample_rate: int = AUDIO_RATE) -> None:
        self.broadcast = broadcast
        audio_read, audio_write = os.pipe()
        self.process = subprocess.Popen(
            [
                ffmpeg_exe(), "-v", "error", "-y",
                "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "pipe:0",
                "-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "-i", f"pipe:{audio_read}",
                "-map", "0:v", "-map", "1:a",
                *video_args(FPS), "-profile:v", "high", "-level", "3.1", *AUDIO_ARGS,
                "-avoid_negative_ts", "make_non_negative",
                "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
                "-frag_duration", str(int(FRAGMENT_SECONDS * 1e6)), "-max_interleave_delta", "1",
                "-flush_packets", "1", "pipe:1",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(audio_read,),
        )
        os.close(audio_read)
        self._audio = os.fdopen(audio_write, "wb", buffering=0)
        self.sample_rate = sample_rate
        # Audio goes through its own thread: ffmpeg reads its two inputs at its own pace (it
        # needs audio before it takes the first frame), so no order of writes may block both.
        self._audio_pieces: queue.Queue[bytes | None] = queue.Queue()
        self._frame_writes: queue.Queue[bytes | None] = queue.Queue(FRAME_WRITES_QUEUED)
        # Samples fed so far and owed for the frames written, counted from AAC_PRIMING_SAMPLES into the speech.
        self._audio_fed = 0
        self._audio_owed = 0
        self._speech = np.zeros(0, np.float32)
        self._threads = [
            threading.Thread(target=self._pump, name="live-reader", daemon=True),
            threading.Thread(target=self._feed_audio, name="live-audio", daemon=True),
            threading.Thread(target=self._feed_frames, name="live-video", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        while data := self.process.stdout.read1(READ_SIZE):
            self.broadcast.append(data)
        self.broadcast.close()

    def _feed_audio(self) -> None:
        try:
            while (piece := self._audio_pieces.get()) is not None:
                self._audio.write(piece)
        except (BrokenPipeError, OSError):
            pass
        finally:
            self._audio.close()

    def _feed_frames(self) -> None:
        assert self.process.stdin is not None
        broken = False
        while (frames := self._frame_writes.get()) is not None:
            if broken:
                continue  # ffmpeg is gone: take what is left, so that no write waits for room
            try:
                self.process.stdin.write(frames)
                self.process.stdin.flush()
            except (BrokenPipeError, OSError):
                broken = True
        try:
            self.process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def write(self, frames: np.ndarray, speech: np.ndarray, first_frame: int) -> None:
        """Add frames that start at `first_frame`, with their audio taken from `speech` (the run's so far).

        The audio is read AAC_PRIMING_SAMPLES ahead. What `speech` does not hold yet (a microphone's next
        samples, a sentence still being spoken) goes in with later frames, or as silence at `close`: never
        silence in place of sound that comes later.
        """
        self._speech = speech
        self._audio_owed = round((first_frame + len(frames)) * self.sample_rate / FPS)
        self._feed_sound(max(self._audio_fed, len(speech) - AAC_PRIMING_SAMPLES))
        self._frame_writes.put(np.ascontiguousarray(frames).tobytes())

    def _feed_sound(self, until: int) -> None:
        """Feed the speech on to sample `until` (from AAC_PRIMING_SAMPLES), silence where it holds none."""
        start, stop = AAC_PRIMING_SAMPLES + self._audio_fed, AAC_PRIMING_SAMPLES + until
        piece = self._speech[start:stop]
        if len(piece) < until - self._audio_fed:
            piece = np.concatenate([piece, np.zeros(until - self._audio_fed - len(piece), np.float32)])
        if len(piece):
            self._audio_pieces.put(piece.astype("<f4").tobytes())
            self._audio_fed = until

    def close(self) -> None:
        """End the stream: the last frames get their sound (silence past the speech), ffmpeg writes its last
        fragment and the broadcast closes."""
        self._feed_sound(self._audio_owed)
        self._audio_pieces.put(None)
        self._frame_writes.put(None)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for thread in self._threads:
            thread.join(timeout=5)
        self.broadcast.close()


class LiveStreams:
    """Streams by unguessable token, so a viewer can only open a stream it was given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: dict[str, Broadcast] = {}

    def open(self) -> Broadcast:
        broadcast = Broadcast(secrets.token_urlsafe(16))
        with self._lock:
            self._forget_old()
            self._streams[broadcast.token] = broadcast
        return broadcast

    def get(self, token: str) -> Broadcast | None:
        with self._lock:
            return self._streams.get(token)

    def _forget_old(self) -> None:
        now = time.monotonic()
        for token in [t for t, b in self._streams.items() if b.closed and now - b.closed_at > KEEP_SECONDS]:
            del self._streams[token]
