"""Speech is always available: the offline voice speaks, and online voices fall back to it."""

import asyncio

import aiohttp
import numpy as np
import pytest

from avatar.errors import UserFacingError
from avatar.speech import online_voice
from avatar.speech.voices import OFFLINE_OPTION, RecordedSpeaker, Speaker, VoiceCatalogue, VoiceOption
from tests.helpers import tls_failure


def test_the_offline_voice_speaks_a_sentence_with_timed_phonemes():
    utterance = Speaker(OFFLINE_OPTION, timeout=1).speak("Hello there, nice to meet you.")
    assert 1.0 < utterance.duration < 4.0
    assert np.abs(utterance.audio).max() > 0.1
    assert utterance.phones and utterance.phones[-1].end == pytest.approx(utterance.duration, abs=0.02)
    starts = [phone.start for phone in utterance.phones]
    assert starts == sorted(starts)


def test_speech_resampled_for_the_engines_keeps_its_duration():
    utterance = Speaker(OFFLINE_OPTION, timeout=1).speak("One two three.")
    engine_input = utterance.resampled(16_000)
    assert engine_input.sample_rate == 16_000
    assert engine_input.duration == pytest.approx(utterance.duration, abs=1e-3)


def _no_network(*args, **kwargs):
    raise aiohttp.ClientConnectionError("no network")


def test_without_network_only_the_offline_voice_is_offered_and_the_reason_is_kept(monkeypatch):
    monkeypatch.setattr(online_voice.edge_tts, "list_voices", _no_network)
    catalogue = VoiceCatalogue(timeout=1)
    assert catalogue.options() == [OFFLINE_OPTION]
    assert catalogue.online_problem == "the online voice service cannot be reached from this server"


def test_why_online_voices_are_missing_is_said_plainly_not_as_the_network_error(monkeypatch):
    monkeypatch.setattr(online_voice.edge_tts, "list_voices", tls_failure)
    catalogue = VoiceCatalogue(timeout=1)
    assert catalogue.options() == [OFFLINE_OPTION]
    assert catalogue.online_problem == "the online voice service cannot be reached from this server"


def test_a_voice_service_that_does_not_answer_in_time_is_said_so(monkeypatch):
    async def never_answers():
        await asyncio.sleep(10)

    monkeypatch.setattr(online_voice.edge_tts, "list_voices", never_answers)
    catalogue = VoiceCatalogue(timeout=0.1)
    assert catalogue.options() == [OFFLINE_OPTION]
    assert catalogue.online_problem == "the online voice service did not answer in time"


def test_an_online_voice_that_cannot_be_reached_falls_back_to_the_offline_voice_and_says_so(monkeypatch):
    monkeypatch.setattr(online_voice.OnlineVoice, "_stream", lambda self, sentence: _no_network())
    speaker = Speaker(VoiceOption("edge:en-US-EmmaMultilingualNeural", "Emma (online)", True), timeout=1)
    utterance = speaker.speak("Hello.")
    assert utterance.duration > 0.2
    assert speaker.voice_used == OFFLINE_OPTION.label
    assert "offline voice spoke instead" in speaker.notice


def test_the_fallback_notice_in_the_status_line_is_plain_words(monkeypatch):
    monkeypatch.setattr(online_voice.OnlineVoice, "_stream", lambda self, sentence: tls_failure())
    speaker = Speaker(VoiceOption("edge:en-US-EmmaMultilingualNeural", "Emma (online)", True), timeout=1)
    speaker.speak("Hello.")
    assert speaker.notice == (
        "The online voice was not available (the online voice service cannot be reached from this server), "
        "so the offline voice spoke instead."
    )


def test_the_offline_voice_refuses_a_language_it_cannot_speak():
    with pytest.raises(UserFacingError, match="English only"):
        Speaker(OFFLINE_OPTION, timeout=1).check_language("こんにちは、はじめまして。")


def test_a_recorded_speaker_repeats_exactly_the_same_audio_so_trial_videos_line_up():
    speaker = RecordedSpeaker(OFFLINE_OPTION, timeout=1)
    first, again = speaker.speak("Hello there."), speaker.speak("Hello there.")
    assert np.array_equal(first.audio, again.audio) and first.phones == again.phones
