"""Microsoft Edge's online neural voices through edge-tts, used whenever their service answers.

The service says when each word starts and how long it lasts (WordBoundary events), which
become the sentence's word timings for the captions.
"""

from __future__ import annotations

import asyncio
import io
import logging

import aiohttp
import edge_tts
import numpy as np
import soundfile

from avatar.speech.utterance import Utterance
from avatar.speech.word_timing import words_from_boundaries

DEFAULT_VOICE = "en-US-EmmaMultilingualNeural"
# What a failed or unreachable service raises (with no network: aiohttp.ClientConnectorDNSError).
NETWORK_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError, edge_tts.exceptions.EdgeTTSException)
log = logging.getLogger(__name__)


class OnlineUnavailable(Exception):
    """The edge-tts service could not be reached or gave no audio; the message is a plain reason for the visitor."""


def unavailable(error: BaseException) -> OnlineUnavailable:
    """Why the service failed, in words a visitor can read; the technical cause goes to the server's log.

    The raw errors are no reading for a visitor ("Cannot connect to host ... ssl:<ssl.SSLContext object
    at 0x...>").
    """
    log.warning("edge-tts failed: %s: %s", type(error).__name__, error)
    if isinstance(error, asyncio.TimeoutError):  # before OSError: TimeoutError is one
        return OnlineUnavailable("the online voice service did not answer in time")
    if isinstance(error, (aiohttp.ClientConnectionError, OSError)):
        return OnlineUnavailable("the online voice service cannot be reached from this server")
    return OnlineUnavailable("the online voice service answered with an error")


def list_online_voices(timeout: float) -> list[dict]:
    """The service's voice list, or `OnlineUnavailable` within `timeout` seconds."""

    async def fetch() -> list[dict]:
        return await asyncio.wait_for(edge_tts.list_voices(), timeout)

    try:
        return list(asyncio.run(fetch()))
    except NETWORK_ERRORS as error:
        raise unavailable(error) from error


def voice_label(voice: dict) -> str:
    """A dropdown label such as "Emma (online, en-US, Female)"."""
    name = voice.get("ShortName", "")
    person = name.split("-")[-1].removesuffix("Neural").removesuffix("Multilingual")
    return f"{person} (online, {voice.get('Locale', '?')}, {voice.get('Gender', '?')})"


class OnlineVoice:
    """One edge-tts voice; `speak` raises `OnlineUnavailable` so the caller can fall back."""

    def __init__(self, short_name: str, timeout: float) -> None:
        self.short_name = short_name
        self.timeout = timeout

    async def _stream(self, sentence: str) -> tuple[bytes, list[dict]]:
        """The sentence's MP3 and its WordBoundary events ({"offset", "duration", "text"}, times in 100-ns ticks)."""
        communicate = edge_tts.Communicate(
            sentence, self.short_name, boundary="WordBoundary",
            connect_timeout=int(max(self.timeout, 1)), receive_timeout=30,
        )
        audio = bytearray()
        boundaries: list[dict] = []
        async for message in communicate.stream():
            if message["type"] == "audio":
                audio.extend(message["data"])
            elif message["type"] == "WordBoundary":
                boundaries.append(message)
        return bytes(audio), boundaries

    def speak(self, sentence: str) -> Utterance:
        """Synthesise `sentence` (the service escapes markup; `check_text` has removed it already)."""
        try:
            mp3, boundaries = asyncio.run(self._stream(sentence))
        except NETWORK_ERRORS as error:
            raise unavailable(error) from error
        if not mp3:
            raise OnlineUnavailable("the online voice service returned no audio")
        audio, sample_rate = soundfile.read(io.BytesIO(mp3), dtype="float32", always_2d=True)
        words = words_from_boundaries(sentence, boundaries) if boundaries else ()
        return Utterance(
            text=sentence, audio=np.ascontiguousarray(audio.mean(axis=1)), sample_rate=sample_rate, words=words
        )
