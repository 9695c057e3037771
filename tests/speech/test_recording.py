"""A visitor's own recording as the speech: every common format read by what it holds, plain refusals,
the voices' level, and pieces a run can consume."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avatar.config import ENGINE_SAMPLE_RATE, SAMPLES_PER_FRAME
from avatar.engines.default.mouth_shapes import mouth_track
from avatar.errors import UserFacingError
from avatar.media import AUDIO_RATE
from avatar.speech.offline_voice import OfflineVoice
from avatar.speech.recording import (
    PEAK_DBFS,
    TARGET_SPEECH_DBFS,
    RecordedSpeech,
    Recording,
    load_recording,
    speech_level,
)
from avatar.speech.utterance import Utterance
from tests.helpers import ASTRONAUT, ffmpeg

SAID = "Hello there. I am a talking photo, and this is my own voice."
LIMIT = 60.0
MAX_BYTES = 100_000_000
# One video frame: every format decodes to the recording's length within this.
FRAME = 0.04
# ffmpeg's arguments for each kind of file a visitor may send, and the status line's name for it.
FORMATS = {
    "wav": ((), "WAV"),
    "mp3": (("-c:a", "libmp3lame"), "MP3"),
    "m4a": (("-c:a", "aac"), "M4A, AAC"),
    "ogg": (("-c:a", "libopus"), "Ogg, Opus"),
    "webm": (("-c:a", "libopus"), "WebM, Opus"),
    "flac": ((), "FLAC"),
}


@pytest.fixture(scope="module")
def spoken() -> Utterance:
    return OfflineVoice().speak(SAID)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def spoken_wav(spoken: Utterance, folder: Path) -> Path:
    path = folder / "spoken.wav"
    soundfile.write(path, spoken.audio, spoken.sample_rate)
    return path


def load(path: Path, max_seconds: float = LIMIT, max_bytes: int = MAX_BYTES) -> Recording:
    return load_recording(path, max_seconds, max_bytes)


def refusal(path: Path, **limits) -> str:
    with pytest.raises(UserFacingError) as error:
        load(path, **limits)
    message = str(error.value)
    assert message.endswith(".") and ". " not in message, f"one plain sentence: {message}"
    return message


def wav_with_header(path: Path, claimed_seconds: float, held_seconds: float, rate: int = 16_000) -> Path:
    """A 16-bit mono WAV whose header says `claimed_seconds` and which holds `held_seconds` of a tone."""
    times = np.arange(round(held_seconds * rate)) / rate
    data = (np.sin(2 * np.pi * 220 * times) * 8000 * (np.sin(2 * np.pi * 2 * times) > 0)).astype("<i2").tobytes()
    size = round(claimed_seconds * rate) * 2
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", size)
    path.write_bytes(header + data)
    return path


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_each_common_sound_format_decodes_to_the_recordings_length_within_one_frame(
    extension, spoken, spoken_wav, folder
):
    options, name = FORMATS[extension]
    path = folder / f"recording.{extension}"
    ffmpeg("-i", str(spoken_wav), *options, str(path))
    recording = load(path)
    assert recording.sample_rate == AUDIO_RATE
    assert recording.audio.ndim == 1 and recording.audio.dtype == np.float32
    assert recording.duration == pytest.approx(spoken.duration, abs=FRAME)
    assert recording.source == name and not recording.from_video


def test_a_videos_sound_track_is_the_speech_and_the_status_line_can_say_it_came_from_a_video(
    spoken, spoken_wav, folder
):
    path = folder / "video.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", f"color=c=gray:s=64x64:r=25:d={spoken.duration + 1}", "-i", str(spoken_wav),
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-c:a", "aac", "-shortest", str(path),
    )
    recording = load(path)
    assert recording.from_video and recording.source == "MP4, AAC"
    assert recording.duration == pytest.approx(spoken.duration, abs=FRAME)
    assert RecordedSpeech(recording).label == "the sound of your video (MP4, AAC)"


def test_the_files_contents_decide_not_its_name(spoken_wav, folder):
    path = folder / "really-a-wav.mp3"
    path.write_bytes(spoken_wav.read_bytes())
    assert load(path).source == "WAV"


def test_stereo_becomes_one_channel_with_both_sides_heard(spoken, folder):
    path = folder / "stereo.wav"
    left_only = np.stack([spoken.audio, np.zeros_like(spoken.audio)], axis=1)
    soundfile.write(path, left_only, spoken.sample_rate)
    recording = load(path)
    assert recording.audio.ndim == 1
    assert recording.duration == pytest.approx(spoken.duration, abs=FRAME)
    assert np.abs(recording.audio).max() > 0.5


def test_a_quiet_phone_recording_is_raised_to_the_voices_level_without_clipping(spoken, folder):
    path = folder / "quiet.wav"
    hiss = np.random.default_rng(0).standard_normal(len(spoken.audio)).astype(np.float32) * 1e-4
    soundfile.write(path, spoken.audio * 0.01 + hiss, spoken.sample_rate)
    recording = load(path)
    assert recording.gain_db > 30
    assert 20 * np.log10(np.abs(recording.audio).max()) <= PEAK_DBFS + 0.01
    assert speech_level(recording.audio, AUDIO_RATE) == pytest.approx(TARGET_SPEECH_DBFS, abs=3.0)


def test_the_voices_level_is_the_offline_voices(spoken):
    assert speech_level(spoken.audio, spoken.sample_rate) == pytest.approx(TARGET_SPEECH_DBFS, abs=2.5)


def test_an_empty_file_is_refused(folder):
    path = folder / "empty.webm"
    path.write_bytes(b"")
    assert "empty" in refusal(path)


def test_a_file_that_is_not_sound_is_refused(folder):
    path = folder / "notes.mp3"
    path.write_text("These are the words I meant to say, typed into a file.\n" * 20)
    assert "not a sound recording" in refusal(path)


def test_a_picture_is_refused_as_a_picture(folder):
    path = folder / "photo.m4a"
    path.write_bytes(ASTRONAUT.read_bytes())
    assert "picture" in refusal(path)


def test_a_video_without_sound_is_refused(folder):
    path = folder / "silent-film.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=2", "-c:v", "libx264", str(path))
    assert "no sound track" in refusal(path)


@pytest.mark.parametrize("noise", [0.0, 1e-3], ids=["digital silence", "steady hiss"])
def test_silence_only_is_refused_as_no_speech_heard(noise, folder):
    path = folder / "silence.wav"
    soundfile.write(path, np.random.default_rng(0).standard_normal(48_000).astype(np.float32) * noise, 16_000)
    assert "No speech was heard" in refusal(path)


def test_a_recording_longer_than_the_limit_is_refused_with_the_limit_and_not_cut(spoken_wav):
    message = refusal(spoken_wav, max_seconds=2)
    assert "up to 2 seconds" in message and "4 seconds long" in message and "nothing was cut" in message


def test_a_browser_recording_whose_header_has_no_length_is_read_and_still_refused_past_the_limit(
    spoken, spoken_wav, folder
):
    path = folder / "browser.webm"
    ffmpeg("-i", str(spoken_wav), "-c:a", "libopus", "-live", "1", str(path))  # no duration, as MediaRecorder writes
    assert load(path).duration == pytest.approx(spoken.duration, abs=FRAME)
    assert "up to 2 seconds and this one is longer" in refusal(path, max_seconds=2)


def test_a_file_over_the_byte_limit_is_refused_before_it_is_read(spoken_wav):
    assert "MB" in refusal(spoken_wav, max_bytes=1000)


def test_a_wav_whose_header_claims_less_than_it_holds_is_refused_at_the_limit(folder):
    path = wav_with_header(folder / "claims-2s.wav", claimed_seconds=2, held_seconds=200)
    assert "up to 10 seconds" in refusal(path, max_seconds=10)


def test_a_wav_whose_header_claims_more_than_it_holds_is_what_it_holds(folder):
    path = wav_with_header(folder / "claims-200s.wav", claimed_seconds=200, held_seconds=1)
    assert load(path, max_seconds=10).duration == pytest.approx(1.0, abs=FRAME)


def test_the_pieces_are_the_whole_recording_in_order_the_first_one_short_and_none_with_phones(spoken_wav):
    recording = load(spoken_wav)
    pieces = list(RecordedSpeech(recording, SAID).utterances())
    assert np.array_equal(np.concatenate([piece.audio for piece in pieces]), recording.audio)
    assert pieces[0].duration <= 2.0
    assert all(piece.sample_rate == AUDIO_RATE and not piece.phones for piece in pieces)


def test_typed_words_become_every_pieces_words_once_in_order(spoken_wav):
    pieces = list(RecordedSpeech(load(spoken_wav), SAID).utterances())
    assert [word.text for piece in pieces for word in piece.words] == SAID.split()
    for piece in pieces:
        assert all(0 <= word.start <= word.end <= piece.duration for word in piece.words)
        assert piece.text == " ".join(word.text for word in piece.words)


def test_without_typed_words_there_are_no_captions_and_the_reason_is_given(spoken_wav):
    speech = RecordedSpeech(load(spoken_wav))
    assert not any(piece.words for piece in speech.utterances())
    assert "type the words" in speech.notice


def test_words_in_a_script_the_aligner_does_not_know_give_no_captions_and_say_why(spoken_wav):
    speech = RecordedSpeech(load(spoken_wav), "Привет, я говорящая фотография.")
    assert not any(piece.words for piece in speech.utterances())
    assert "English" in speech.notice


def test_the_default_engine_moves_the_mouth_from_a_pieces_loudness_when_it_has_no_phones(spoken_wav):
    piece = next(RecordedSpeech(load(spoken_wav)).utterances()).resampled(ENGINE_SAMPLE_RATE)
    frames = len(piece.audio) // SAMPLES_PER_FRAME
    opening = mouth_track(piece.audio, ENGINE_SAMPLE_RATE, piece.phones, frames).open
    assert opening.max() > 0.3 and opening.min() < 0.05
