"""Your own voice as the speech: a recording in any common format makes a video as long as it, in both tabs and the API.

Every file is made here: the offline voice speaks, ffmpeg encodes it to each format.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile
from gradio_client import Client, handle_file

from avatar.config import FPS, Settings
from avatar.media import probe, read_subtitles
from avatar.runs.run import CaptionsReady
from avatar.runs.service import Finished, Progressed, RecordedAudio, RunRequest
from avatar.speech.recording import FIRST_PIECE, PIECE
from avatar.studio import Studio
from bench.page_driver import AppServer
from tests.helpers import ASTRONAUT, GRACE_HOPPER, ffmpeg, speak_to_wav

SAID = "Hello there. This is my own voice."
# About 20 seconds of speech: a recording of several pieces.
STORY = (
    "I would like to tell you a short story about a photograph that learned to speak. "
    "It began as an ordinary portrait, hanging quietly on a wall for many years. "
    "One day, somebody typed a few words, and the portrait began to move its lips. "
    "Now it speaks every morning, and it never forgets a line."
)
FORMATS = {
    "wav": (),
    "mp3": ("-c:a", "libmp3lame"),
    "m4a": ("-c:a", "aac"),
    "ogg": ("-c:a", "libopus"),
    "webm": ("-c:a", "libopus"),
    "flac": (),
    "mp4": ("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25", "-shortest", "-c:v", "libx264", "-c:a", "aac"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("recordings")


@pytest.fixture(scope="module")
def spoken_wav(folder: Path) -> Path:
    return speak_to_wav(SAID, folder / "spoken.wav")


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    return Studio(replace(Settings(), voice="offline", work_dir=tmp_path_factory.mktemp("studio")))


def encoded(spoken_wav: Path, extension: str) -> Path:
    target = spoken_wav.with_name(f"spoken-{extension}.{extension}")
    ffmpeg("-i", str(spoken_wav), *FORMATS[extension], str(target))  # mp4: a grey video with the speech as its sound
    return target


def served(studio: Studio, request: RunRequest) -> tuple[Finished, int, list]:
    """The finished run, its video's frames and its subtitle track, read before the run's folder goes."""
    for event in studio.runs.serve(request):
        if isinstance(event, Finished):
            subtitles = read_subtitles(event.video) if event.subtitles else []
            return event, round(probe(event.video).video_seconds * FPS), subtitles
    raise AssertionError("the run did not finish")


@pytest.mark.parametrize("extension", sorted(FORMATS))
def test_each_common_format_gives_a_video_as_long_as_the_recording_within_one_frame(
    studio, spoken_wav, extension
):
    recording = encoded(spoken_wav, extension)
    request = RunRequest(str(ASTRONAUT), RecordedAudio(str(recording)), "default")
    finished, frames, _ = served(studio, request)
    assert frames == pytest.approx(soundfile.info(str(spoken_wav)).duration * FPS, abs=1)
    assert ("sound of your video" in finished.status) == (extension == "mp4")


def test_typed_words_become_the_recordings_captions_in_the_video(studio, spoken_wav):
    request = RunRequest(str(ASTRONAUT), RecordedAudio(str(spoken_wav), SAID), "default")
    finished, _, subtitles = served(studio, request)
    assert " ".join(cue.text for cue in finished.cues).split() == SAID.split()
    assert " ".join(text for _, _, text in subtitles).split() == SAID.split()


def test_without_typed_words_the_status_line_says_why_there_are_no_captions(studio, spoken_wav):
    request = RunRequest(str(ASTRONAUT), RecordedAudio(str(spoken_wav)), "default")
    finished, _, _ = served(studio, request)
    assert finished.cues == () and "type the words of the recording" in finished.status


def test_a_long_recording_plays_before_the_rest_of_it_is_aligned_and_still_gets_every_caption_and_its_whole_sound(
    studio, folder
):
    """The first picture waits only for the first piece's words, not for the whole recording's: the captions the
    page has when the first stretch of video is ready end within the first two pieces. The finished video still
    carries the whole sound and every typed word."""
    story = speak_to_wav(STORY, folder / "story.wav")
    seconds = soundfile.info(str(story)).duration
    assert seconds > 3 * (FIRST_PIECE[1] + PIECE[1]) / 2  # more pieces than the first two
    captions_at_first_picture: tuple = ()
    first_picture = False
    for event in studio.runs.serve(RunRequest(str(ASTRONAUT), RecordedAudio(str(story), STORY), "default")):
        if isinstance(event, CaptionsReady) and not first_picture:
            captions_at_first_picture = event.cues
        first_picture = first_picture or isinstance(event, Progressed)
        if isinstance(event, Finished):
            info, subtitles = probe(event.video), read_subtitles(event.video)
            finished = event
    assert captions_at_first_picture and captions_at_first_picture[-1].end <= FIRST_PIECE[1] + PIECE[1]
    assert " ".join(cue.text for cue in finished.cues).split() == STORY.split()
    assert " ".join(text for _, _, text in subtitles).split() == STORY.split()
    assert finished.cues[-1].end > seconds - PIECE[1]
    assert info.video_seconds == pytest.approx(seconds, abs=1 / FPS)
    assert info.audio_seconds == pytest.approx(seconds, abs=0.1)


# --- through the real server, as a gradio_client user ------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("api"), {"AVATAR_MAX_RECORDING_SECONDS": "5"}) as server:
        yield Client(server.url, verbose=False)


def talk(client: Client, recording: Path, words: str = "") -> tuple:
    """The last update of one run from a recording: (video, download, captions, status)."""
    job = client.submit(
        handle_file(str(ASTRONAUT)), words, "offline:joe", "default", "recording", handle_file(str(recording)),
        api_name="/run",
    )
    return tuple(list(job)[-1])


def test_a_client_sends_a_recording_to_run_and_gets_its_video_and_captions(client, spoken_wav):
    _, download, captions, status = talk(client, encoded(spoken_wav, "webm"), SAID)
    assert "your recording (WebM, Opus)" in status and download
    assert [Path(item).suffix for item in download] == [".mp4", ".vtt"] and "Hello" in captions


def silent(folder: Path) -> Path:
    path = folder / "silence.wav"
    soundfile.write(path, np.zeros(16_000 * 2, np.float32), 16_000)
    return path


def too_long(spoken_wav: Path) -> Path:
    path = spoken_wav.with_name("long.wav")
    ffmpeg("-stream_loop", "3", "-i", str(spoken_wav), str(path))
    return path


@pytest.mark.parametrize(
    ("make", "sentence"),
    [
        (lambda folder, wav: (folder / "notes.mp3").write_bytes(b"%PDF-1.7\n" + b"0" * 900) and folder / "notes.mp3",
         "not a sound recording"),
        (lambda folder, wav: silent(folder), "no speech was heard"),
        (lambda folder, wav: too_long(wav), "up to 5 seconds"),
    ],
    ids=["not-audio", "silence", "over-the-limit"],
)
def test_a_recording_the_app_cannot_use_gets_one_plain_sentence_and_no_video(
    client, folder, spoken_wav, make, sentence
):
    video, download, _, status = talk(client, make(folder, spoken_wav))
    assert video is None and download is None
    assert status.startswith("⚠️") and sentence in status.lower() and "Traceback" not in status
    assert "nothing was cut" in status or sentence != "up to 5 seconds"


def test_text_calls_made_before_recordings_existed_still_work_unchanged(client):
    job = client.submit(handle_file(str(ASTRONAUT)), "Hello there.", "offline:joe", "default", api_name="/run")
    _, download, _, status = list(job)[-1]
    assert download and status.startswith("Spoken by **Joe")


def test_photo_trials_make_every_photo_say_the_same_recording(client, spoken_wav):
    status, *_ = client.predict(
        [handle_file(str(ASTRONAUT)), handle_file(str(GRACE_HOPPER))], SAID, "offline:joe", "default",
        handle_file(str(spoken_wav)), api_name="/check_and_speak",
    )
    assert status.startswith("Done: 2 video(s) side by side")
