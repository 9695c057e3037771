"""The tabs' handlers, called as the page calls them but without a page: plain values in, views out."""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
from gradio.data_classes import ImageData

from avatar.config import Settings
from avatar.runs.run import Run
from avatar.speech import online_voice
from avatar.speech.text import MARKUP_REMOVED
from avatar.speech.voices import VoiceCatalogue
from avatar.studio import Studio
from tests.helpers import ASTRONAUT, COFFEE, GRACE_HOPPER, tls_failure
from ui.photo_input import uploaded_path
from ui.talk_handlers import STOPPED, FacePreview, TalkView, preview_face, stop, talk, voice_note
from ui.trials_handlers import OpenInTalk, TrialView, open_photo, open_recommended, run_trial
from ui.views import KEEP, Shown, outputs, updates

NOT_A_PICTURE = "⚠️ This file is not a picture this app can read. Please use a JPEG, PNG, WebP or GIF photo."
NO_GPU = "No GPU is free right now. Please try again in a minute."


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    """The app's engine room as the page has it, with the offline voice and a work folder of its own."""
    return Studio(replace(Settings(), voice="offline", work_dir=tmp_path_factory.mktemp("studio")))


@pytest.fixture
def pdf_named_png(tmp_path: Path) -> Path:
    path = tmp_path / "scan.png"
    path.write_bytes(b"%PDF-1.7\n" + b"0" * 500)
    return path


# --- the Talk tab ----------------------------------------------------------------------------


def test_the_face_is_previewed_as_the_engine_will_see_it(studio):
    preview = preview_face(studio, str(ASTRONAUT))
    assert preview.crop.shape == (512, 512, 3) and preview.note


def test_a_file_that_is_not_a_picture_gets_a_plain_sentence_and_no_crop(studio, pdf_named_png):
    assert preview_face(studio, str(pdf_named_png)) == FacePreview(None, NOT_A_PICTURE)


def test_a_run_streams_into_the_live_player_then_offers_the_mp4(studio):
    views = list(talk(studio, str(ASTRONAUT), "Hello there.", "offline:joe", "default"))
    first, last = views[0], views[-1]
    assert isinstance(first.run, Run) and "data-live-src" in first.video and first.download is None
    assert first.status.startswith("Working: 1 sentence(s) with Joe")
    assert all(view.video is KEEP for view in views[1:]), "the live player was replaced mid-run"
    assert last.run is None and last.download[0].endswith(".mp4") and last.status.startswith("Spoken by")


def test_markup_in_the_text_is_not_spoken_and_the_status_line_says_it_was_removed(studio):
    views = list(talk(studio, str(ASTRONAUT), "<speak>Hello <break time='3s'/> there.</speak>", "offline:joe", None))
    assert MARKUP_REMOVED in views[0].status and MARKUP_REMOVED in views[-1].status
    assert views[-1].status.startswith("Spoken by")


def test_a_refused_run_ends_with_the_reason_and_no_video(studio):
    views = list(talk(studio, str(COFFEE), "Hello there.", "offline:joe", "default"))
    assert views[-1].run is None and views[-1].video is None and views[-1].download is None
    assert views[-1].status.startswith("⚠️ No face was found in this picture")


def test_stop_forgets_the_run_and_says_the_photo_and_text_are_still_there():
    assert stop(None) == TalkView(run=None, status=STOPPED)


def test_the_voice_note_is_one_plain_sentence_when_online_voices_are_unreachable(monkeypatch):
    monkeypatch.setattr(online_voice.edge_tts, "list_voices", tls_failure)
    assert voice_note(VoiceCatalogue(timeout=1)) == (
        "Offline voice in use: the online voice service cannot be reached from this server."
    )


# --- the Photo trials tab --------------------------------------------------------------------


def test_checked_photos_are_ranked_with_the_usable_one_recommended(studio, pdf_named_png):
    views = list(run_trial(studio, [str(pdf_named_png), str(ASTRONAUT)], "Hi.", "offline:joe", "default", None, False))
    last = views[-1]
    assert last.status.startswith("2 photo(s) checked, 1 usable.")
    assert last.recommendation.startswith("### Recommended: astronaut.png")
    assert last.open_best == Shown(True) and len(last.gallery) == 2
    assert "not a picture" in last.verdicts
    assert open_photo(last.trial, 0, "Hi.", "offline:joe") == OpenInTalk(
        str(last.trial.reports[0].path), "Hi.", "offline:joe"
    )
    assert open_recommended(last.trial, "Hi.", None).photo.endswith("astronaut.png")
    assert open_photo(last.trial, 2, "Hi.", None) is None and open_recommended(None, "Hi.", None) is None


def test_an_upload_without_photos_is_refused_and_the_previous_trial_is_kept(studio):
    before = list(run_trial(studio, [str(GRACE_HOPPER)], "Hi.", "offline:joe", "default", None, False))[-1].trial
    trials = set(before.folder.parent.iterdir())
    views = list(run_trial(studio, [], "Hi.", "offline:joe", "default", before, False))
    assert views == [TrialView(status="⚠️ Please add some photos (up to 16), or one zip of photos.")]
    assert before.reports[0].path.exists(), "the previous trial's photos were removed"
    assert set(before.folder.parent.iterdir()) == trials, "the refused trial left a folder"


# --- both tabs -------------------------------------------------------------------------------


def test_a_refusal_from_zerogpu_reads_as_one_sentence_in_both_tabs(studio, monkeypatch):
    def no_gpu(*args, **kwargs):
        raise gr.Error(NO_GPU)  # as ZeroGPU's `spaces` says it

    monkeypatch.setattr(studio.runs, "start", no_gpu)
    talked = list(talk(studio, str(ASTRONAUT), "Hello.", "offline:joe", "default"))
    assert talked[-1] == TalkView(run=None, video=None, download=None, captions="", status=f"⚠️ {NO_GPU}", shared=None)
    tried = list(run_trial(studio, [str(ASTRONAUT)], "Hello.", "offline:joe", "default", None, True))
    assert tried[-1] == TrialView(status=f"⚠️ {NO_GPU}")


def test_a_view_becomes_one_update_per_component_in_the_order_of_its_fields():
    assert updates(TalkView(download=None, status="Stopped.")) == (
        gr.skip(), gr.skip(), None, gr.skip(), "Stopped.", gr.skip()
    )
    assert updates(FacePreview(None, "Hi"))[1] == "Hi"
    assert updates(TrialView(open_best=Shown(False)))[4] == gr.update(visible=False)
    with pytest.raises(TypeError, match="fills"):
        outputs(FacePreview, crop=gr.Image(render=False))


def test_an_uploaded_photo_reaches_the_app_as_its_path_unopened(tmp_path, pdf_named_png):
    assert uploaded_path(ImageData(path=str(pdf_named_png), orig_name="scan.png"), tmp_path) == str(pdf_named_png)
    sent = uploaded_path(ImageData(url="data:image/png;base64," + base64.b64encode(b"%PDF-1.7").decode()), tmp_path)
    assert Path(sent).read_bytes() == b"%PDF-1.7"
    assert uploaded_path(None, tmp_path) is None
