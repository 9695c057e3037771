"""Many visitors at once: each waits their turn, keeps their own state and files, and leaves nothing behind.

The waiting line is tested alone; the rest drives the real server through gradio_client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from avatar.errors import UserFacingError
from avatar.housekeeping import folder_bytes
from avatar.waiting_line import WaitingLine
from bench.page_driver import ROOT, AppServer
from tests.helpers import ASTRONAUT, GRACE_HOPPER

SHORT = "Hello there, nice to meet you."
LONG = " ".join(["This sentence keeps the face talking for a while, so that there is time to act."] * 6)

# --- the waiting line ----------------------------------------------------------------------


def test_the_first_visitors_start_at_once_and_the_next_are_told_their_number():
    line = WaitingLine(max_waiting=5, slots={"default": 2})
    with line.place("default") as first, line.place("default") as second:
        assert list(first.wait()) == [] and list(second.wait()) == []
        with line.place("default") as third, line.place("default") as fourth:
            assert next(third.wait()) == 1 and next(fourth.wait()) == 2


def test_a_full_line_gets_a_friendly_busy_message_and_leaving_frees_a_place():
    line = WaitingLine(max_waiting=2, slots={"default": 1})
    with line.place("default") as running:
        list(running.wait())
        with line.place("default"), line.place("default"):
            with pytest.raises(UserFacingError, match="busy: 2 people are already waiting.*try again"):
                with line.place("default"):
                    pass
        assert line.waiting() == 0
        with line.place("default") as later:
            assert next(later.wait()) == 1


def test_each_engine_has_its_own_slots():
    line = WaitingLine(max_waiting=4, slots={"flashhead": 1, "default": 1})
    with line.place("flashhead") as neural, line.place("default") as embedded:
        assert list(neural.wait()) == [] and list(embedded.wait()) == []


def test_a_waiting_visitor_starts_as_soon_as_a_slot_frees_in_their_turn():
    line = WaitingLine(max_waiting=4, slots={"default": 1})
    order: list[str] = []
    first = line.place("default")
    running = first.__enter__()
    list(running.wait())

    def visitor(name: str) -> None:
        with line.place("default") as place:
            for _ in place.wait():
                pass
            order.append(name)

    second = threading.Thread(target=visitor, args=("second",))
    second.start()
    time.sleep(0.2)
    third = threading.Thread(target=visitor, args=("third",))
    third.start()
    time.sleep(0.2)
    assert order == []
    first.__exit__(None, None, None)
    second.join(5)
    third.join(5)
    assert order == ["second", "third"]


# --- the real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with AppServer(tmp_path_factory.mktemp("many")) as running:
        yield running


def run_folders(server: AppServer) -> list[Path]:
    return sorted((server.work / "runs").glob("run-*"))


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def test_two_visitors_get_their_own_videos_and_one_stop_does_not_stop_the_other(server):
    alice, bob = Client(server.url, verbose=False), Client(server.url, verbose=False)
    alice_job = alice.submit(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run")
    bob_job = bob.submit(handle_file(str(GRACE_HOPPER)), LONG, "offline:joe", "default", api_name="/run")
    assert wait_until(lambda: len(bob_job.outputs()) >= 2, 60), "Bob's run never started"
    bob.predict(api_name="/stop_run")
    alice_updates = [tuple(update) for update in alice_job]
    bob_updates = [tuple(update) for update in bob_job]
    assert "Spoken by" in alice_updates[-1][-1]
    assert "Stopped" in bob_updates[-1][-1] and bob_updates[-1][1] is None
    alice_video = Path(alice_updates[-1][1][0])
    bob_segments = {Path(update[0]).parent for update in bob_updates if isinstance(update[0], str)}
    assert alice_video.parent not in bob_segments


def test_more_visitors_than_slots_all_get_their_video_in_turn_and_are_told_their_number(server):
    results: dict[int, list[tuple]] = {}

    def visitor(index: int) -> None:
        client = Client(server.url, verbose=False, download_files=False)
        job = client.submit(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run")
        results[index] = [tuple(update) for update in job]

    visitors = [threading.Thread(target=visitor, args=(i,)) for i in range(5)]
    for thread in visitors:
        thread.start()
    for thread in visitors:
        thread.join(240)
    assert len(results) == 5 and all("Spoken by" in updates[-1][-1] for updates in results.values()), results
    told = [status for updates in results.values() for *_, status in updates if "you are number" in str(status)]
    assert told, "nobody was told their place in line"


def test_when_the_line_is_full_a_visitor_is_told_the_demo_is_busy(tmp_path):
    settings = {"AVATAR_RUNS_AT_ONCE": "1", "AVATAR_MAX_WAITING": "1"}
    with AppServer(tmp_path / "busy", settings) as busy:
        first = Client(busy.url, verbose=False, download_files=False)
        running = first.submit(handle_file(str(ASTRONAUT)), LONG, "offline:joe", "default", api_name="/run")
        assert wait_until(lambda: len(running.outputs()) >= 1, 60)
        second = Client(busy.url, verbose=False, download_files=False)
        waiting = second.submit(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run")
        assert wait_until(lambda: any("number 1 in line" in str(u[-1]) for u in waiting.outputs()), 60)
        third = Client(busy.url, verbose=False, download_files=False)
        refused = third.predict(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run")
        assert "busy" in refused[-1] and "try again" in refused[-1]
        first.predict(api_name="/stop_run")
        assert "Spoken by" in [tuple(update) for update in waiting][-1][-1]


def test_the_work_folder_is_empty_once_runs_end(server):
    client = Client(server.url, verbose=False)
    list(client.submit(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run"))
    assert wait_until(lambda: run_folders(server) == [], 10), run_folders(server)


def test_a_visitor_who_goes_away_mid_run_leaves_no_run_folder(server):
    visitor = textwrap.dedent(f"""
        from gradio_client import Client, handle_file
        client = Client({server.url!r}, verbose=False)
        job = client.submit(handle_file({str(ASTRONAUT)!r}), {LONG!r}, "offline:joe", "default", api_name="/run")
        for update in job:
            if isinstance(update[0], str):
                print("streaming", flush=True)
    """)
    process = subprocess.Popen([sys.executable, "-c", visitor], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout.readline().strip() == "streaming"
    assert run_folders(server), "the run folder should exist while the run streams"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert wait_until(lambda: run_folders(server) == [], 60), "the abandoned run kept its folder"


def test_a_server_killed_mid_run_leaves_nothing_that_breaks_the_next_start(tmp_path):
    with AppServer(tmp_path) as first:
        client = Client(first.url, verbose=False)
        client.submit(handle_file(str(ASTRONAUT)), LONG, "offline:joe", "default", api_name="/run")
        assert wait_until(lambda: run_folders(first) != [], 60), "the run never started"
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
    left = run_folders(first)
    assert left, "the kill came too late to test anything"
    with AppServer(tmp_path) as second:
        client = Client(second.url, verbose=False)
        updates = [tuple(update) for update in client.submit(
            handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run"
        )]
        assert "Spoken by" in updates[-1][-1]
        assert not any(path.exists() for path in left), "the killed run's folder was not cleared at start"


def test_a_server_stopped_with_sigterm_exits_promptly_and_leaves_its_folders_empty(tmp_path):
    server = AppServer(tmp_path)
    del server.env["GRADIO_TEMP_DIR"]  # as a newcomer starts it: Gradio's cache goes inside the work folder
    with server:
        client = Client(server.url, verbose=False)
        outputs = client.predict(handle_file(str(ASTRONAUT)), SHORT, "offline:joe", "default", api_name="/run")
        assert "Spoken by" in outputs[-1]
        cache = tmp_path / "runs" / "gradio"
        assert folder_bytes(cache) > 0, "the finished video should be in Gradio's cache while serving"
        started = time.monotonic()
        server.process.terminate()
        assert server.process.wait(timeout=30) == 0
        assert time.monotonic() - started < 15
    assert run_folders(server) == []
    assert folder_bytes(tmp_path / "runs") - folder_bytes(tmp_path / "runs" / "bin") == 0
    assert folder_bytes(cache) == 0
