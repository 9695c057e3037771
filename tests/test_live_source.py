"""The microphone as a run's speech: pieces as they come, levelled, silent between words, ended in one sentence."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from scipy.signal import resample_poly

from avatar.errors import UserFacingError
from avatar.media import AUDIO_RATE
from avatar.speech.live_source import (
    ENDINGS,
    FIRST_SOUND_SECONDS,
    NO_SOUND,
    STALL_SECONDS,
    STALLED,
    TIME_LIMIT,
    LiveMicrophones,
    LiveSpeech,
    StreamResampler,
    pcm_samples,
)
from avatar.speech.offline_voice import OfflineVoice
from avatar.speech.recording import speech_level

RATE = 48_000
TENTH = RATE // 10


@pytest.fixture(scope="module")
def hello() -> np.ndarray:
    """The offline voice saying two short sentences, at a microphone's 48 kHz."""
    said = OfflineVoice().speak("Hello there. Nice to meet you.")
    divisor = math.gcd(RATE, said.sample_rate)
    return resample_poly(said.audio, RATE // divisor, said.sample_rate // divisor).astype(np.float32)


class Clock:
    """A clock the test moves on by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def talk(speech: LiveSpeech, audio: np.ndarray, rate: int = RATE, piece: int = TENTH) -> None:
    """Push `audio` the way the page does: a tenth of a second at a time."""
    for start in range(0, len(audio), piece):
        speech.push(audio[start : start + piece], rate)


def spoken(speech: LiveSpeech) -> np.ndarray:
    return np.concatenate([utterance.audio for utterance in speech.utterances()])


def with_pauses(audio: np.ndarray, gain_db: float, noise_db: float, seconds: float = 1.0) -> np.ndarray:
    """`audio` at `gain_db`, a pause of `seconds` before and after, and a room's hiss at `noise_db` under it all."""
    pause = np.zeros(round(seconds * RATE), np.float32)
    sound = np.concatenate([pause, audio * np.float32(10 ** (gain_db / 20)), pause])
    hiss = np.random.default_rng(0).normal(0, 10 ** (noise_db / 20), len(sound)).astype(np.float32)
    return sound + hiss


@pytest.mark.parametrize("rate", [48_000, 44_100, 16_000, 24_000])
def test_a_stream_resampled_piece_by_piece_is_the_stream_resampled_whole(rate):
    sound = np.random.default_rng(1).normal(0, 0.2, rate * 2 + 123).astype(np.float32)
    resampler = StreamResampler(rate)
    pieces, start = [], 0
    for length in np.random.default_rng(2).integers(1, rate // 5, 100):
        pieces.append(resampler.push(sound[start : start + length]))
        start += length
    pieces += [resampler.push(sound[start:]), resampler.flush()]
    divisor = math.gcd(rate, AUDIO_RATE)
    whole = resample_poly(sound, AUDIO_RATE // divisor, rate // divisor) if rate != AUDIO_RATE else sound
    assert np.allclose(np.concatenate(pieces), whole, atol=1e-6)


def test_sound_pushed_a_tenth_of_a_second_at_a_time_comes_out_in_pieces_as_it_comes(hello):
    speech = LiveSpeech(60)
    first_piece = threading.Event()
    pieces: list[np.ndarray] = []

    def run() -> None:
        for utterance in speech.utterances():
            assert utterance.sample_rate == AUDIO_RATE and not utterance.phones
            pieces.append(utterance.audio)
            first_piece.set()

    reader = threading.Thread(target=run)
    reader.start()
    speech.push(hello[:TENTH], RATE)
    assert first_piece.wait(5), "the first tenth of a second was held back"
    talk(speech, hello[TENTH:])
    speech.finish()
    reader.join(5)
    assert not reader.is_alive()
    assert sum(map(len, pieces)) == math.ceil(len(hello) * AUDIO_RATE / RATE)
    assert len(pieces) > 1 and len(pieces[0]) <= AUDIO_RATE // 10


def test_a_quiet_microphone_speaks_at_the_voices_level_and_the_pauses_between_words_are_silence(hello):
    speech = LiveSpeech(60)
    talk(speech, with_pauses(hello, gain_db=-30, noise_db=-70))
    speech.finish()
    sound = spoken(speech)
    assert speech_level(sound, AUDIO_RATE) == pytest.approx(-15, abs=2)
    assert not np.any(sound[: int(0.9 * AUDIO_RATE)]), "the room's hiss before the first word was let through"
    assert not np.any(sound[-int(0.6 * AUDIO_RATE) :]), "the hiss after the last word was let through"


def test_a_hum_that_starts_mid_session_is_silence_two_seconds_later():
    rng = np.random.default_rng(3)
    quiet = rng.normal(0, 10 ** (-75 / 20), 2 * RATE)
    hum = 0.05 * np.sin(2 * np.pi * 120 * np.arange(5 * RATE) / RATE) + rng.normal(0, 0.01, 5 * RATE)
    speech = LiveSpeech(60)
    talk(speech, np.concatenate([quiet, hum]).astype(np.float32))
    speech.finish()
    sound = spoken(speech)
    assert not np.any(sound[int(4.5 * AUDIO_RATE) :]), "a steady hum still passed the gate after 2.5 s"


def test_the_time_limit_keeps_the_sound_that_fits_and_ends_the_session_in_one_sentence(hello):
    speech = LiveSpeech(max_seconds=1.0)
    answers = [speech.push(hello[start : start + TENTH], RATE) for start in range(0, 2 * RATE, TENTH)]
    assert answers[:9] == [True] * 9 and not any(answers[10:]), answers
    assert len(spoken(speech)) == AUDIO_RATE
    assert speech.notice.startswith(TIME_LIMIT.format(seconds=1.0))


def test_stop_hands_on_the_last_sound_and_the_page_is_then_told_the_session_is_over(hello):
    speech = LiveSpeech(60, words="")
    talk(speech, hello[: RATE // 2])
    speech.finish("stopped")
    assert len(spoken(speech)) == AUDIO_RATE // 2
    assert not speech.push(hello[:TENTH], RATE)
    assert speech.notice == "There are no captions: type the words you will say before Start to get them."


def test_a_refused_microphone_ends_the_run_with_its_sentence_and_an_unknown_ending_with_a_plain_one():
    denied = LiveSpeech(60)
    denied.finish("denied")
    with pytest.raises(UserFacingError, match="^The microphone was not allowed"):
        list(denied.utterances())
    odd = LiveSpeech(60)
    odd.finish("<script>")
    with pytest.raises(UserFacingError) as raised:
        list(odd.utterances())
    assert str(raised.value) == ENDINGS["failed"]


def test_sound_that_stops_arriving_ends_the_session_keeping_what_came(hello):
    clock = Clock()
    speech = LiveSpeech(60, clock=clock)
    pieces = speech.utterances()
    talk(speech, hello[: RATE // 2])
    assert len(next(pieces).audio) > 0
    clock.now += STALL_SECONDS + 0.1
    rest = list(pieces)
    assert sum(len(utterance.audio) for utterance in rest) < AUDIO_RATE // 10
    assert speech.ended and speech.notice.startswith(STALLED)


def test_a_microphone_that_never_sends_ends_the_run_in_one_sentence():
    clock = Clock()
    speech = LiveSpeech(60, clock=clock)
    pieces = speech.utterances()
    waiting = threading.Thread(target=lambda: pytest.raises(UserFacingError, list, pieces))
    waiting.start()
    clock.now += FIRST_SOUND_SECONDS + 0.1
    waiting.join(5)
    assert not waiting.is_alive() and speech.ended
    with pytest.raises(UserFacingError, match=f"^{NO_SOUND}$"):
        list(speech.utterances())


def test_typed_words_become_captions_where_they_were_said(hello):
    speech = LiveSpeech(60, words="Hello there. Nice to meet you.")
    talk(speech, with_pauses(hello, gain_db=-10, noise_db=-80, seconds=0.5))
    speech.finish()
    utterances = list(speech.utterances())
    sound_seconds = sum(utterance.duration for utterance in utterances)
    last = utterances[-1]
    assert last.duration == 0
    assert [word.text for word in last.words] == ["Hello", "there.", "Nice", "to", "meet", "you."]
    placed = [word.shifted(sound_seconds) for word in last.words]  # as a run places them, after the sound before
    assert placed[0].start == pytest.approx(0.5, abs=0.15)
    assert placed[-1].end <= sound_seconds - 0.4
    assert speech.notice == ""


def test_the_pages_pcm_becomes_samples_and_a_session_is_found_by_its_token_only():
    assert pcm_samples(np.array([0, 16384, -32768], "<i2").tobytes() + b"\x01").tolist() == [0.0, 0.5, -1.0]
    microphones = LiveMicrophones()
    speech = LiveSpeech(60)
    microphones.add(speech)
    assert microphones.get(speech.token) is speech and microphones.get("guess") is None
    speech.finish()
    microphones.add(LiveSpeech(60))
    assert microphones.get(speech.token) is None, "an ended session was kept"
    with pytest.raises(ValueError):
        speech.push(np.zeros(10, np.float32), 1_000_000)
