"""Captions for a visitor's own recording: how close each typed word's caption starts to where it is said.

One command:  python bench/caption_alignment.py

The recordings are made by eSpeak NG (espeakng-loader's libespeak-ng through its C API), not by the
model the aligner listens with (pocketsphinx's acoustic model; eSpeak only gives the aligner its
readings of numbers and words its dictionary lacks), and eSpeak reports when each sound starts: a
word is said where its first sound starts. Each speaker says all the sentences as one recording,
with eSpeak's own pauses between them; the recording goes through the app's path (`load_recording`,
then `RecordedSpeech`: aligned stretch by stretch, cut between words) and every word's caption
start on the recording's timeline is compared with eSpeak's.

Also measured: how long a 10 s and a 60 s file take to decode and to hand on their first piece,
and how open the default engine's mouth is at each level of the same speech (why recordings are
levelled). Prints tables and rewrites the "## Caption alignment" section of bench/RESULTS.md.
"""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from avatar.media import ffmpeg_exe  # noqa: E402
from avatar.speech.aligner import warm_up  # noqa: E402
from avatar.speech.recording import RecordedSpeech, load_recording  # noqa: E402
from avatar.speech.word_timing import written_spans  # noqa: E402
from bench.results import write_section  # noqa: E402

SECTION = "Caption alignment"
# Every word must start within this of where it is said (issue #25).
WITHIN = 0.150
# Each said word by word by eSpeak (one word event per written word), with numbers and an abbreviation.
SENTENCES = (
    "Seven brown dogs jumped over three fences near the old mill.",
    "Doctor Smith bought 42 apples at the market yesterday.",
    "Please bring your camera, because the mountains look beautiful tonight.",
    "Dr. Jones answered 17 questions before lunch.",
    "My grandmother planted tomatoes, peppers and sunflowers last spring.",
    "Thank you for listening, and have a wonderful evening.",
)
# eSpeak voices, speaking rates (words a minute) and, for a far-off phone in a room, the hiss under the
# speech (dB below its level; None: clean): three quite different speakers, and one of them quiet and noisy.
SPEAKERS = (("en-us", 175, None), ("en-gb", 150, None), ("en-us+f3", 210, None), ("en-us", 175, 20.0))
# How much quieter than eSpeak's own the noisy recording is (a phone at arm's length).
FAR_OFF_DB = -26.0
LIMIT = 60.0
MAX_BYTES = 100_000_000

# libespeak-ng's C API (speak_lib.h).
_SYNCHRONOUS = 2
_PHONEME_EVENTS = 1
_RATE = 1
_UTF8 = 1
_END_OF_LIST, _WORD, _PHONEME = 0, 1, 7


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
        ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Spoken:
    """eSpeak's recording of a text, and when each written word's first sound starts (seconds)."""

    text: str
    audio: np.ndarray
    sample_rate: int
    word_starts: tuple[float, ...]


class Espeak:
    """eSpeak NG in this process: speech with its sound events, one text at a time."""

    _lock = threading.Lock()
    _library = None

    def __init__(self) -> None:
        with self._lock:
            if Espeak._library is None:
                import espeakng_loader

                library = ctypes.CDLL(espeakng_loader.get_library_path())
                path = espeakng_loader.get_data_path().encode()
                Espeak.sample_rate = library.espeak_Initialize(_SYNCHRONOUS, 0, path, _PHONEME_EVENTS)
                Espeak._library = library

    def speak(self, text: str, voice: str = "en-us", rate: int = 175) -> Spoken:
        """`text` said by `voice` at `rate` words a minute; refuses a text eSpeak does not say word by word."""
        chunks: list[np.ndarray] = []
        events: list[tuple[int, int, int, str]] = []

        def receive(wav, count, event_list) -> int:
            if count > 0:
                chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
            index = 0
            while event_list[index].type != _END_OF_LIST:
                event = event_list[index]
                name = event.id.decode(errors="replace") if event.type == _PHONEME else ""
                events.append((event.type, event.text_position - 1, event.audio_position, name))
                index += 1
            return 0

        callback = _CALLBACK(receive)
        data = text.encode()
        with self._lock:
            self._library.espeak_SetSynthCallback(callback)
            self._library.espeak_SetVoiceByName(voice.encode())
            self._library.espeak_SetParameter(_RATE, rate, 0)
            self._library.espeak_Synth(data, len(data) + 1, 0, 0, 0, _UTF8, None, None)
            self._library.espeak_Synchronize()
        audio = np.concatenate(chunks).astype(np.float32) / 32768
        return Spoken(text, audio, self.sample_rate, _word_starts(text, events))


def _word_starts(text: str, events: list[tuple[int, int, int, str]]) -> tuple[float, ...]:
    """Each written word's first sound: the first phoneme that is not a pause after the word's event.

    eSpeak's positions count bytes of the UTF-8 text from 1; the texts here are ASCII.
    """
    starts = []
    for start, end in written_spans(text):
        word = next((i for i, e in enumerate(events) if e[0] == _WORD and start <= e[1] < end), None)
        if word is None:
            raise ValueError(f"eSpeak does not say {text[start:end]!r} of {text!r} as a word of its own")
        sound = next(e for e in events[word:] if e[0] == _PHONEME and not e[3].startswith(("_", ";")))
        starts.append(sound[2] / 1000)
    return tuple(starts)


def encode(audio: np.ndarray, sample_rate: int, path: Path) -> Path:
    """`audio` as a file of the kind `path` names, encoded by the app's ffmpeg."""
    wav = path.with_suffix(".source.wav")
    soundfile.write(wav, audio, sample_rate)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
    wav.unlink()
    return path


@dataclass(frozen=True)
class SentenceErrors:
    speaker: str
    sentence: str
    errors: tuple[float, ...]


def caption_errors(spoken: list[Spoken], recording_path: Path, transcript: str) -> list[tuple[float, ...]]:
    """For each sentence, every word's caption start minus where it is said, through the app's path."""
    speech = RecordedSpeech(load_recording(recording_path, LIMIT, MAX_BYTES), transcript)
    captions = []
    offset = 0.0
    for utterance in speech.utterances():
        captions += [word.start + offset for word in utterance.words]
        offset += utterance.duration
    said = [start for sentence in spoken for start in sentence.word_starts]
    assert len(captions) == len(said), "every written word has one caption"
    errors = np.asarray(captions) - np.asarray(said)
    bounds = np.cumsum([0] + [len(sentence.word_starts) for sentence in spoken])
    return [tuple(errors[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def speaker_recording(
    espeak: Espeak, voice: str, rate: int, noise_db: float | None, folder: Path
) -> tuple[list[Spoken], Path]:
    """All the sentences said in one go by one speaker, as an MP3, and each sentence's word starts in it.

    With `noise_db`, the speech is quiet (FAR_OFF_DB) and has white noise that many dB under it.
    """
    paragraph = " ".join(SENTENCES)
    whole = espeak.speak(paragraph, voice, rate)
    if noise_db is not None:
        audio = whole.audio * np.float32(10 ** (FAR_OFF_DB / 20))
        hiss = np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32)
        audio = audio + hiss * np.sqrt(np.mean(audio**2)) * np.float32(10 ** (-noise_db / 20))
        whole = Spoken(whole.text, audio, whole.sample_rate, whole.word_starts)
    sentences, index = [], 0
    for sentence in SENTENCES:
        count = len(written_spans(sentence))
        sentences.append(Spoken(sentence, whole.audio, whole.sample_rate, whole.word_starts[index : index + count]))
        index += count
    name = re.sub(r"\W", "_", f"{voice}_{rate}_{noise_db}")
    return sentences, encode(whole.audio, whole.sample_rate, folder / f"{name}.mp3")


def alignment_table(folder: Path) -> tuple[list[SentenceErrors], str]:
    espeak = Espeak()
    rows = []
    for voice, rate, noise_db in SPEAKERS:
        spoken, path = speaker_recording(espeak, voice, rate, noise_db, folder)
        speaker = f"{voice} {rate}" + ("" if noise_db is None else f", quiet, hiss {noise_db:.0f} dB under")
        for sentence, errors in zip(SENTENCES, caption_errors(spoken, path, " ".join(SENTENCES)), strict=True):
            rows.append(SentenceErrors(speaker, sentence, errors))
    lines = [
        "| speaker | sentence | words | max error (ms) | mean error (ms) | within 150 ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        errors = np.abs(row.errors)
        lines.append(
            f"| {row.speaker} | {row.sentence} | {len(errors)} | {errors.max() * 1000:.0f} | "
            f"{errors.mean() * 1000:.0f} | {'yes' if errors.max() <= WITHIN else 'NO'} |"
        )
    everything = np.abs(np.concatenate([row.errors for row in rows]))
    lines.append(
        f"| all | {len(rows)} sentences | {len(everything)} | {everything.max() * 1000:.0f} | "
        f"{everything.mean() * 1000:.0f} | {'yes' if everything.max() <= WITHIN else 'NO'} |"
    )
    return rows, "\n".join(lines)


def speech_of_at_most(spoken: Spoken, seconds: float) -> Spoken:
    """The first words of `spoken` that it says in at most `seconds`, cut where the next word starts."""
    spans = written_spans(spoken.text)
    count = max(i for i, start in enumerate(spoken.word_starts) if start <= seconds)
    text = spoken.text[: spans[count - 1][1]]
    audio = spoken.audio[: round(spoken.word_starts[count] * spoken.sample_rate)]
    return Spoken(text, audio, spoken.sample_rate, spoken.word_starts[:count])


def timing_table(folder: Path) -> str:
    """Load time and time to the first piece (aligned) for about 10 s and 60 s, in the format browsers record."""
    paragraph = Espeak().speak(" ".join(SENTENCES * 4))
    lines = [
        "| recording | load (probe, decode, level) | first piece ready | first piece | all pieces aligned |",
        "|---|---|---|---|---|",
    ]
    for seconds in (10, LIMIT):
        spoken = speech_of_at_most(paragraph, seconds)
        path = encode(spoken.audio, spoken.sample_rate, folder / f"about_{seconds:.0f}s.webm")
        started = time.perf_counter()
        recording = load_recording(path, LIMIT, MAX_BYTES)
        loaded = time.perf_counter() - started
        pieces = RecordedSpeech(recording, spoken.text).utterances()
        first = next(pieces)
        first_ready = time.perf_counter() - started
        for _ in pieces:
            pass
        total = time.perf_counter() - started
        lines.append(
            f"| {recording.duration:.1f} s {recording.source} | {loaded * 1000:.0f} ms | {first_ready * 1000:.0f} ms "
            f"| {first.duration:.2f} s | {total * 1000:.0f} ms |"
        )
    return "\n".join(lines)


def mouth_table() -> str:
    """The default engine's mouth (loudness-driven, no phones) on one sentence at falling levels."""
    from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
    from avatar.engines.default.mouth_shapes import QUIET_DBFS, frame_levels, mouth_track
    from avatar.speech.offline_voice import OfflineVoice
    from avatar.speech.recording import TARGET_SPEECH_DBFS, speech_level

    voice = OfflineVoice()
    levels = [speech_level(u.audio, u.sample_rate) for u in map(voice.speak, SENTENCES)]
    utterance = voice.speak(SENTENCES[2]).resampled(ENGINE_SAMPLE_RATE)
    frames = len(utterance.audio) // SAMPLES_PER_FRAME
    noise = np.random.default_rng(0).standard_normal(len(utterance.audio)).astype(np.float32) * 1e-3
    audio = utterance.audio + noise  # a floor 60 dB under Piper's peak, as a quiet room gives
    lines = [
        f"Piper's level (`speech_level`) over the six sentences: {np.mean(levels):.1f} dBFS "
        f"({min(levels):.1f} to {max(levels):.1f}); recordings are brought to {TARGET_SPEECH_DBFS:.0f} dBFS.",
        "",
        "| gain | loudest 40 ms | mean opening | of the voice's |",
        "|---|---|---|---|",
    ]
    reference = None
    for gain in (0, -20, -40, -50, -55, -60, -70):
        quieter = audio * np.float32(10 ** (gain / 20))
        loudest = float(frame_levels(quieter, ENGINE_SAMPLE_RATE, frames).max())
        opening = mouth_track(quieter, ENGINE_SAMPLE_RATE, (), frames, max(loudest, QUIET_DBFS)).open.mean()
        reference = opening if reference is None else reference
        lines.append(f"| {gain} dB | {loudest:.1f} dBFS | {opening:.3f} | {opening / reference:.0%} |")
    return "\n".join(lines)


def main() -> None:
    started = time.perf_counter()
    warm_up()
    warm = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        rows, alignment = alignment_table(Path(folder))
        print(alignment, "\n")
        timing = timing_table(Path(folder))
        print(timing, "\n")
    mouth = mouth_table()
    print(mouth)
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    body = f"""Command: `python bench/caption_alignment.py` (2 cores, load average {load}: other work ran too).

Typed words timed against a recording (`avatar/speech/aligner.py`: pocketsphinx 5.1.1's own English
model, offline). Recordings made by eSpeak NG through espeakng-loader, not by the model the aligner
listens with; each speaker says all six sentences as one MP3 (the last one quiet, with a hiss 20 dB
under the speech, as a phone at arm's length in a room), which goes through the app's path: decoded,
levelled, aligned stretch by stretch as the run asks for pieces, each piece cut between two words.
Error: caption start minus the start of the word's first sound as eSpeak reports it.

{alignment}

Decode and first piece (eSpeak speech as WebM/Opus, as browsers record; all its words typed), after
`aligner.warm_up()` ({warm * 1000:.0f} ms: pocketsphinx's model and espeak loaded once, at start-up):

{timing}

The default engine's mouth without phones follows loudness relative to the loudest frame so far,
judged against -60 dBFS at least: below that the mouth opens less. Recordings are therefore raised
to Piper's speech level (peaks kept under -1 dBFS); FlashHead normalises each chunk itself.

{mouth}
"""
    write_section(SECTION, body)


if __name__ == "__main__":
    main()
