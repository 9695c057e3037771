"""A run streams segments while it works, ends with one MP4, and cleans up however it ends."""

import threading
import time

import numpy as np
import pytest
import torch

from avatar.engines.default.engine import DefaultEngine
from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.engines.loaded import LoadedEngine
from avatar.engines.placement import Unbatched
from avatar.errors import UserFacingError
from avatar.live_stream import Broadcast
from avatar.media import probe, read_frames
from avatar.runs.run import Run, RunCancelled, RunFinished, SegmentReady
from avatar.speech.sources import TypedSpeech, quick_start
from avatar.speech.voices import OFFLINE_OPTION, Speaker


class TimedSpeaker(Speaker):
    """The real offline voice, noting when each sentence was ready."""

    def __init__(self) -> None:
        super().__init__(OFFLINE_OPTION, timeout=1)
        self.ready_at: list[float] = []

    def speak(self, sentence):
        utterance = super().speak(sentence)
        self.ready_at.append(time.perf_counter())
        return utterance


def test_a_run_streams_segments_then_gives_the_whole_video(astronaut_face, tmp_path):
    speech = TypedSpeech("Hello there. Nice to meet you.", TimedSpeaker())
    run = Run(astronaut_face, speech, ANIMATOR.load("cpu"), tmp_path)
    segments, finished = [], None
    for event in run.events():
        if isinstance(event, SegmentReady):
            assert event.path.exists() and event.path.stat().st_size > 0
            segments.append(event)
        elif isinstance(event, RunFinished):
            finished = event
            info = probe(event.video)
            assert info.video_seconds == pytest.approx(event.stats.audio_seconds, abs=0.1)
            assert info.audio_seconds == pytest.approx(event.stats.audio_seconds, abs=0.1)
    assert segments and finished is not None
    starts = [segment.start for segment in segments]
    assert starts == sorted(starts) and starts[0] == 0
    assert finished.stats.first_segment < finished.stats.total
    assert not run.folder.exists()


def test_with_a_live_stream_no_segment_files_are_made_and_the_download_is_the_stream_itself(astronaut_face, tmp_path):
    live = Broadcast("token")
    text = "Hello there. Nice to meet you."
    run = Run(astronaut_face, TypedSpeech(text, TimedSpeaker()), ANIMATOR.load("cpu"), tmp_path / "runs", live=live)
    for event in run.events():
        if isinstance(event, SegmentReady):
            assert event.path is None and not list(run.folder.glob("segment-*"))
        elif isinstance(event, RunFinished):
            info = probe(event.video)
            assert info.video_seconds == pytest.approx(event.stats.audio_seconds, abs=0.1)
            assert info.audio_seconds == pytest.approx(event.stats.audio_seconds, abs=0.1)
            downloaded = read_frames(event.video)
    assert live.closed
    streamed = tmp_path / "streamed.mp4"
    streamed.write_bytes(live.contents())
    assert np.array_equal(read_frames(streamed), downloaded)
    assert len(downloaded) == run.stats.frames


def test_the_first_segment_arrives_before_the_last_sentence_is_spoken(astronaut_face, tmp_path):
    speaker = TimedSpeaker()
    text = " ".join(["This is one sentence of a longer speech."] * 6)
    run = Run(astronaut_face, TypedSpeech(text, speaker), ANIMATOR.load("cpu"), tmp_path)
    first_segment_at = None
    for event in run.events():
        if isinstance(event, SegmentReady) and first_segment_at is None:
            first_segment_at = time.perf_counter()
    assert len(speaker.ready_at) == 6
    assert first_segment_at < speaker.ready_at[-1]


def test_stopping_a_run_ends_it_quickly_and_removes_its_files(astronaut_face, tmp_path):
    text = " ".join(["Stop me if you can, because this goes on."] * 8)
    run = Run(astronaut_face, TypedSpeech(text, TimedSpeaker()), ANIMATOR.load("cpu"), tmp_path)
    events = run.events()
    next(events)
    run.cancel()
    started = time.perf_counter()
    with pytest.raises(RunCancelled):
        for _ in events:
            pass
    assert time.perf_counter() - started < 5
    assert not run.folder.exists()


@pytest.mark.parametrize("player", ["live", "segments"])
def test_segments_are_short_first_then_as_long_as_asked_and_cover_the_video_back_to_back(
    astronaut_face, tmp_path, player
):
    live = Broadcast("token") if player == "live" else None
    text = "Hello there. Nice to meet you, it is a fine day."
    run = Run(astronaut_face, TypedSpeech(text, TimedSpeaker()), ANIMATOR.load("cpu"), tmp_path, 1.0, 0.4, live)
    *events, finished = run.events()
    segments = [event for event in events if isinstance(event, SegmentReady)]
    assert [segment.index for segment in segments] == list(range(len(segments)))
    assert [segment.duration for segment in segments[:2]] == [0.4, 1.0]
    assert all(segment.duration == 1.0 for segment in segments[1:-1]) and segments[-1].duration <= 1.0
    ends = [round(segment.start + segment.duration, 6) for segment in segments]
    assert [round(segment.start, 6) for segment in segments] == [0.0, *ends[:-1]]
    assert ends[-1] * 25 == pytest.approx(finished.stats.frames)


def test_a_stopped_run_leaves_no_thread_behind(astronaut_face, tmp_path):
    text = " ".join(["Stop me if you can, because this goes on."] * 8)
    speech = TypedSpeech(text, TimedSpeaker())
    run = Run(astronaut_face, speech, ANIMATOR.load("cpu"), tmp_path, live=Broadcast("token"))
    events = run.events()
    next(events)
    run.cancel()
    with pytest.raises(RunCancelled):
        list(events)
    assert run.live.closed
    assert not [thread for thread in threading.enumerate() if thread.name in ("speech", "engine", "encoder")]
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("live-")]


def test_a_voice_failure_reaches_the_user_as_a_message(astronaut_face, tmp_path):
    class BrokenSpeaker(TimedSpeaker):
        def speak(self, sentence):
            raise UserFacingError("The voice is unavailable.")

    run = Run(astronaut_face, TypedSpeech("Hello.", BrokenSpeaker()), ANIMATOR.load("cpu"), tmp_path)
    with pytest.raises(UserFacingError, match="unavailable"):
        list(run.events())
    assert not run.folder.exists()


def test_a_gpu_out_of_memory_reaches_the_user_as_a_message_and_leaves_no_files(astronaut_face, tmp_path):
    class ExhaustedEngine(LoadedEngine):
        """The embedded animator, on a GPU whose memory runs out at the second sentence."""

        def start(self, face):
            session = super().start(face)
            pushes = iter([session.push, self._out_of_memory])
            session.push = lambda utterance: next(pushes)(utterance)
            return session

        def _out_of_memory(self, utterance):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    speech = TypedSpeech("Hello there. Nice to meet you.", TimedSpeaker())
    exhausted = ExhaustedEngine(ANIMATOR.key, ANIMATOR.title, Unbatched(DefaultEngine("cpu")))
    run = Run(astronaut_face, speech, exhausted, tmp_path)
    with pytest.raises(UserFacingError, match="GPU ran out of memory"):
        list(run.events())
    assert not run.folder.exists()


def test_frame_count_follows_the_audio_across_sentences(astronaut_face, tmp_path):
    speech = TypedSpeech("One. Two three. Four five six.", TimedSpeaker())
    run = Run(astronaut_face, speech, ANIMATOR.load("cpu"), tmp_path)
    events = list(run.events())
    finished = events[-1]
    expected = int(np.ceil(finished.stats.audio_seconds * 25 - 1e-6))
    assert abs(finished.stats.frames - expected) <= 3


def test_the_first_sentence_is_spoken_in_two_parts_so_the_face_starts_talking_sooner():
    assert quick_start(["Hello there, nice to meet you.", "Bye."]) == ["Hello there,", "nice to meet you.", "Bye."]
    assert quick_start(["Short one, really."]) == ["Short one, really."]
    assert quick_start(["No comma in this rather long first sentence."]) == [
        "No comma in this rather long first sentence."
    ]
