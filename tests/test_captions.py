"""Captions: a run's words on its own timeline, as short lines, in the MP4 and a WebVTT file beside it."""

from __future__ import annotations

import html
import json
from dataclasses import replace

import pytest

from avatar.captions import LINE_CHARS, LINGER_SECONDS, cue_at, cue_lines, webvtt
from avatar.config import Settings
from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.live_stream import Broadcast
from avatar.media import AUDIO_RATE, parse_webvtt, probe, read_subtitles
from avatar.runs.run import CaptionsReady, Run, RunFinished, SegmentReady
from avatar.runs.service import RunRequest, TypedText
from avatar.speech.sources import TypedSpeech
from avatar.speech.utterance import Word
from avatar.speech.voices import OFFLINE_OPTION, Speaker
from avatar.studio import Studio
from tests.helpers import ASTRONAUT
from ui.talk_handlers import talk
from ui.views import KEEP

# Three sentences; the first is spoken in two parts (quick start), so there are three joins.
SPEECH = "Good morning, and welcome to the 2nd demo. Dr. Smith will see you at 3 pm. Bye!"
MILLISECOND = 0.0015


class RecordingSpeaker(Speaker):
    """The real offline voice, keeping every sentence it spoke."""

    def __init__(self) -> None:
        super().__init__(OFFLINE_OPTION, timeout=1)
        self.spoken = []

    def speak(self, sentence):
        utterance = super().speak(sentence)
        self.spoken.append(utterance)
        return utterance


def words(*timed: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end) for text, start, end in timed]


# --- lines ------------------------------------------------------------------------------------


def test_lines_hold_every_word_once_in_order_and_are_short_enough_to_read_at_a_glance():
    said = [Word(f"word{index}", index * 0.3, index * 0.3 + 0.25) for index in range(40)]
    cues = cue_lines(said)
    assert [word for cue in cues for word in cue.words] == said
    assert all(len(cue.text) <= LINE_CHARS for cue in cues)
    assert all(cue.start == cue.words[0].start for cue in cues)
    assert all(before.end <= after.start for before, after in zip(cues, cues[1:], strict=False))


def test_a_sentence_too_long_for_one_line_is_cut_into_even_lines_at_a_comma_if_there_is_one():
    said = "Good morning, and welcome to the talking photo. I am speaking while the rest of this video is made."
    cues = cue_lines([Word(text, index * 0.3, index * 0.3 + 0.25) for index, text in enumerate(said.split())])
    assert [cue.text for cue in cues] == [
        "Good morning,", "and welcome to the talking photo.", "I am speaking while the", "rest of this video is made."
    ]


def test_a_line_ends_with_its_sentence_and_at_a_long_pause():
    cues = cue_lines(words(("Hi.", 0.0, 0.3), ("Nice", 0.4, 0.6), ("day", 0.65, 0.9), ("today", 2.0, 2.3)))
    assert [cue.text for cue in cues] == ["Hi.", "Nice day", "today"]


def test_a_line_stays_until_the_next_begins_or_a_moment_after_its_last_word_but_not_past_the_video():
    cues = cue_lines(words(("One", 0.1, 0.4), ("two.", 0.5, 0.8), ("Three.", 0.9, 1.2), ("Four.", 5.0, 5.3)), 5.5)
    assert [(cue.start, cue.end) for cue in cues] == [
        (0.1, 0.9), (0.9, pytest.approx(1.2 + LINGER_SECONDS)), (5.0, 5.5)
    ]
    assert cue_at(cues, 0.6).word_at(0.6).text == "two." and cue_at(cues, 0.45).word_at(0.45) is None
    assert cue_at(cues, 3.0) is None


def test_webvtt_has_one_cue_per_line_with_markup_characters_escaped():
    cues = cue_lines(words(("Tom", 0.0, 0.3), ("&", 0.3, 0.4), ("<Jerry>", 0.4, 1.0)))
    text = webvtt(cues)
    assert text.startswith("WEBVTT\n\n1\n00:00:00.000 --> 00:00:01.800\n")
    assert "Tom &amp; &lt;Jerry&gt;" in text and parse_webvtt(text) == [(0.0, 1.8, "Tom & <Jerry>")]


# --- a run's captions -------------------------------------------------------------------------


def test_a_runs_words_are_each_sentences_words_moved_by_the_audio_joined_before_it(astronaut_face, tmp_path):
    speaker = RecordingSpeaker()
    run = Run(astronaut_face, TypedSpeech(SPEECH, speaker), ANIMATOR.load("cpu"), tmp_path)
    *_, finished = run.events()
    assert len(speaker.spoken) == 4, "the first sentence is spoken in two parts"
    expected, joined = [], 0
    for utterance in speaker.spoken:
        expected += [word.shifted(joined / AUDIO_RATE) for word in utterance.words]
        joined += len(utterance.resampled(AUDIO_RATE).audio)
    assert run.words() == tuple(expected)
    assert [word.text for word in run.words()] == SPEECH.split()
    assert joined / AUDIO_RATE == pytest.approx(finished.stats.audio_seconds)
    assert all(0 <= word.start < word.end <= finished.stats.audio_seconds for word in run.words())


@pytest.mark.parametrize("player", ["live", "segments"])
def test_the_finished_mp4_has_a_subtitle_track_whose_cues_are_the_words_and_a_webvtt_beside_it(
    astronaut_face, tmp_path, player
):
    live = Broadcast("token") if player == "live" else None
    speech = TypedSpeech(SPEECH, RecordingSpeaker())
    run = Run(astronaut_face, speech, ANIMATOR.load("cpu"), tmp_path / "runs", live=live)
    for event in run.events():
        if isinstance(event, RunFinished):
            tracks = read_subtitles(event.video)
            beside = parse_webvtt(event.subtitles.read_text())
            length = probe(event.video).video_seconds
            finished = event
    assert " ".join(text for _, _, text in tracks) == SPEECH
    assert [text for _, _, text in tracks] == [cue.text for cue in finished.cues]
    for (start, end, _), cue in zip(tracks, finished.cues, strict=True):
        assert start == pytest.approx(cue.words[0].start, abs=MILLISECOND)
        assert end == pytest.approx(cue.end, abs=MILLISECOND)
    assert tracks[-1][1] <= length + MILLISECOND
    assert beside == tracks
    assert finished.cues == cue_lines(run.words(), until=finished.stats.frames / 25)


def test_the_captions_reach_the_page_before_the_frames_that_show_them(astronaut_face, tmp_path):
    text = " ".join(["This is one sentence of a longer speech."] * 4)
    speech = TypedSpeech(text, RecordingSpeaker())
    run = Run(astronaut_face, speech, ANIMATOR.load("cpu"), tmp_path, live=Broadcast("token"))
    sent: tuple = ()
    segments = 0
    for event in run.events():
        if isinstance(event, CaptionsReady):
            sent = tuple(word for cue in event.cues for word in cue.words)
        elif isinstance(event, SegmentReady):
            segments += 1
            shown_until = event.start + event.duration
            said = [word for word in run.words() if word.start < shown_until]
            assert list(sent[: len(said)]) == said, f"segment {event.index} came before its captions"
    assert segments > 3 and len(sent) == len(text.split())


def test_markup_removed_from_the_text_never_shows_in_the_captions(tmp_path):
    studio = Studio(replace(Settings(), voice="offline", work_dir=tmp_path))
    marked = "<speak>Hello <break time='1s'/> <emphasis level='strong'>world</emphasis> &amp; you.</speak>"
    run = studio.runs.start(RunRequest(ASTRONAUT, TypedText(marked, "offline:joe"), "default"))
    for event in run.events():
        if isinstance(event, RunFinished):
            beside = parse_webvtt(event.subtitles.read_text())
            tracks = read_subtitles(event.video)
    assert [word.text for word in run.words()] == ["Hello", "world &", "you."]
    assert [text for _, _, text in beside] == [text for _, _, text in tracks] == ["Hello world & you."]


def shown_cues(box: str) -> list[list[str]]:
    """The lines a captions box holds, as words."""
    cues = json.loads(html.unescape(box.split('data-cues="')[1].split('"')[0]))
    return [[text for text, _, _ in cue["words"]] for cue in cues]


def test_the_talk_tab_gets_the_captions_before_the_video_shows_them_then_the_webvtt_with_the_mp4(tmp_path):
    studio = Studio(replace(Settings(), voice="offline", player="mse", work_dir=tmp_path))
    views = list(talk(studio, str(ASTRONAUT), "Hello there. Nice to meet you.", "offline:joe", "default"))
    boxes = [(index, view.captions) for index, view in enumerate(views) if view.captions is not KEEP]
    first_segment = next(index for index, view in enumerate(views) if "of video ready" in str(view.status))
    assert boxes[0] == (0, boxes[0][1]) and shown_cues(boxes[0][1]) == [], "the last run's captions stayed"
    assert any(index < first_segment and shown_cues(box) for index, box in boxes), "captions came after the video"
    assert shown_cues(boxes[-1][1]) == [["Hello", "there."], ["Nice", "to", "meet", "you."]]
    mp4, captions = views[-1].download
    assert mp4.endswith(".mp4") and captions.endswith(".vtt")
