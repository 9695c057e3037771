"""Which voices exist right now, and speaking with the chosen one (online, else offline)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from avatar.errors import UserFacingError
from avatar.speech import offline_voice
from avatar.speech.offline_voice import OfflineVoice
from avatar.speech.online_voice import (
    DEFAULT_VOICE,
    OnlineUnavailable,
    OnlineVoice,
    list_online_voices,
    voice_label,
)
from avatar.speech.text import latin_share
from avatar.speech.utterance import Utterance

OFFLINE_KEY = "offline:joe"
# How long a failed look-up of the online voices is trusted before asking again.
RETRY_ONLINE_AFTER = 300.0


@dataclass(frozen=True)
class VoiceOption:
    key: str
    label: str
    online: bool


OFFLINE_OPTION = VoiceOption(OFFLINE_KEY, offline_voice.VOICE_NAME, online=False)


class VoiceCatalogue:
    """The voices a user may pick; online ones only while edge-tts's service answers."""

    def __init__(self, timeout: float, use_online: bool = True) -> None:
        self.timeout = timeout
        self.use_online = use_online
        self._lock = threading.Lock()
        self._online: list[VoiceOption] = []
        self._checked_at = float("-inf")
        # Why only the offline voice is offered, in plain words for the page; "" while online voices answer.
        self.online_problem = "" if use_online else "online voices are switched off"

    def options(self) -> list[VoiceOption]:
        """Online voices (English first) when reachable, then the offline voice, which is always there."""
        with self._lock:
            stale = not self._online and time.monotonic() - self._checked_at > RETRY_ONLINE_AFTER
            if self.use_online and stale:
                self._checked_at = time.monotonic()
                try:
                    voices = list_online_voices(self.timeout)
                    voices.sort(key=lambda v: (not v.get("Locale", "").startswith("en-"), v.get("ShortName", "")))
                    self._online = [VoiceOption(f"edge:{v['ShortName']}", voice_label(v), True) for v in voices]
                    self.online_problem = ""
                except OnlineUnavailable as error:
                    self.online_problem = str(error)
            return [*self._online, OFFLINE_OPTION]

    def default(self) -> VoiceOption:
        options = self.options()
        preferred = f"edge:{DEFAULT_VOICE}"
        return next((option for option in options if option.key == preferred), options[0])

    def find(self, key: str | None) -> VoiceOption:
        options = self.options()
        return next((option for option in options if option.key == key), self.default())


class Speaker:
    """Speaks sentences with one chosen voice and falls back to the offline voice if the network fails.

    `voice_used` and `notice` say what really happened, for the page's status line.
    """

    def __init__(self, option: VoiceOption, timeout: float) -> None:
        self.option = option
        self.timeout = timeout
        self.voice_used = option.label
        self.notice = ""
        self._online = OnlineVoice(option.key.removeprefix("edge:"), timeout) if option.online else None
        self._offline = OfflineVoice()

    def check_language(self, text: str) -> None:
        """Refuse text the offline voice cannot say, before any work starts."""
        if self._online is None and latin_share(text) < 0.5:
            raise UserFacingError(
                "The offline voice speaks English only, and this text is in another script. "
                "Please write in English, or pick an online voice when the app is connected to the internet."
            )

    def speak(self, sentence: str) -> Utterance:
        if self._online is not None:
            try:
                return self._online.speak(sentence)
            except OnlineUnavailable as error:
                self._online = None
                self.voice_used = OFFLINE_OPTION.label
                self.notice = f"The online voice was not available ({error}), so the offline voice spoke instead."
                self.check_language(sentence)
        return self._offline.speak(sentence)


class RecordedSpeaker(Speaker):
    """Says each sentence once and replays the recording after that.

    Several photos of one trial then speak exactly the same audio, so their videos line up
    frame for frame (a neural voice never says a sentence twice the same way).
    """

    def __init__(self, option: VoiceOption, timeout: float) -> None:
        super().__init__(option, timeout)
        self._recorded: dict[str, Utterance] = {}
        self._recording = threading.Lock()

    def speak(self, sentence: str) -> Utterance:
        with self._recording:
            if sentence not in self._recorded:
                self._recorded[sentence] = super().speak(sentence)
            return self._recorded[sentence]
