"""The app with AVATAR_SERVE=ray, as visitors use it: a real server, a Ray cluster, two replicas of the animator.

The cluster is started the way an operator starts one (`ray start --head`); this test process joins it
too, to see how many sessions each replica holds and to stop a replica mid-run. Everything Ray started
is stopped at the end by stopping `ray start --block`, which takes its processes down with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
from gradio_client import Client, handle_file
from ray import serve

from avatar.faces import find_faces
from avatar.media import read_frames
from avatar.serving.served_engine import REPLICA_STOPPED
from bench.page_driver import AppServer, free_port
from tests.helpers import ASTRONAUT, GRACE_HOPPER, video_of_the_speech

RAY = Path(sys.executable).parent / "ray"
APPLICATION = "avatar-default"
REPLICA_ACTORS = f"SERVE_REPLICA::{APPLICATION}#"
SHORT = "Hello there, nice to meet you. I am speaking from a replica of my own."
LONG = (
    "Hello there, nice to meet you. This video is drawn on one replica of the engine, somewhere on the cluster. "
    "If that replica stops, only its visitor is told, and the other video carries on to the end."
)


# A throwaway cluster on loopback, without Ray's token authentication (the README's cluster uses it).
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[str]:
    """A one-host Ray cluster on a free port; this process joins it. Yields its address."""
    port = free_port()
    work = tmp_path_factory.mktemp("ray")
    command = [
        str(RAY),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--num-gpus=0",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--object-store-memory=300000000",
        f"--temp-dir={work}",
        "--block",
    ]
    with (work / "head.log").open("w") as log:
        head = subprocess.Popen(
            command, env={**os.environ, **RAY_ENV}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    address = f"127.0.0.1:{port}"
    try:
        wait_for_port(port, head, work / "head.log")
        ray.init(address=address, log_to_driver=False)
        yield address
    finally:
        if ray.is_initialized():
            serve.shutdown()  # replicas and Serve's controller first: the head then stops in seconds
            ray.shutdown()
        head.terminate()  # `ray start --block` then stops the cluster's processes in order
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def app_url(cluster, tmp_path_factory) -> Iterator[str]:
    extra_env = {
        "AVATAR_SERVE": "ray",
        "AVATAR_RAY_ADDRESS": cluster,
        "AVATAR_ENGINE": "default",
        "AVATAR_RAY_REPLICAS": "2",
        "AVATAR_RAY_REPLICA_CPUS": "0.5",
        **RAY_ENV,
    }
    with AppServer(tmp_path_factory.mktemp("app"), extra_env=extra_env) as server:
        wait_for_replicas(2)
        yield server.url


def wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the Ray head did not start in time")


def replica_actors() -> list[str]:
    return [actor["name"] for actor in ray.util.list_named_actors(True) if actor["name"].startswith(REPLICA_ACTORS)]


def wait_for_replicas(count: int, seconds: float = 90) -> None:
    """Until the app has deployed the animator's replicas (it does so while it warms up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        application = serve.status().applications.get(APPLICATION)
        if application is not None and application.status == "RUNNING" and len(replica_actors()) == count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"{APPLICATION} did not get {count} running replicas in time")


def sessions_per_replica() -> list[int]:
    """How many sessions each replica holds now, asked of the replicas themselves."""
    stats = serve.get_app_handle(APPLICATION).broadcast("record_routing_stats").results()
    return sorted(entry["sessions"] for entry in stats)


def sessions_once_all_open(jobs: list, seconds: float = 60) -> list[int]:
    """Sessions per replica at the first moment every job's session is open at once. Asked of the replicas
    until then: a job's status says frames are drawn, not that the other visitor's open has reached its replica
    yet, and a short run's session closes (its frames all drawn) well before its video is done."""
    deadline = time.monotonic() + seconds
    while sum(held := sessions_per_replica()) < len(jobs):
        assert time.monotonic() < deadline, (held, [statuses(job) for job in jobs])
        assert not any(job.done() for job in jobs), f"a run ended before all {len(jobs)} sessions were open: {held}"
        time.sleep(0.1)
    return held


def sessions_once_all_closed(seconds: float = 10) -> list[int]:
    """Sessions per replica once none is open, or as they are when `seconds` have passed: a finished run's
    session is closed with a call whose answer nobody waits for."""
    deadline = time.monotonic() + seconds
    while any(held := sessions_per_replica()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return held


def submit(url: str, photo: Path, text: str):
    return Client(url, verbose=False).submit(handle_file(str(photo)), text, "offline:joe", "default", api_name="/run")


def finished_view(outputs: tuple) -> tuple[str | None, str]:
    """A run's MP4 (None without one) and status line, from one update of the page's outputs
    (the video first, the download second, the status line last)."""
    download, status = outputs[1], str(outputs[-1])
    if isinstance(download, list):  # the MP4 and its captions
        download = next((path for path in download if str(path).endswith(".mp4")), None)
    return download, status


def statuses(job) -> list[str]:
    return [finished_view(outputs)[1] for outputs in job.outputs()]


def wait_until_drawing(jobs: list, seconds: float = 60) -> None:
    """Until every job has had frames drawn (a stretch of its video reported ready)."""
    deadline = time.monotonic() + seconds
    while not all(any("of video ready" in status for status in statuses(job)) for job in jobs):
        assert time.monotonic() < deadline, [statuses(job) for job in jobs]
        assert not any(job.done() for job in jobs), "a run ended before the others started drawing"
        time.sleep(0.1)


def finished(job, seconds: float = 90) -> tuple:
    deadline = time.monotonic() + seconds
    while not job.done():
        assert time.monotonic() < deadline, statuses(job)
        time.sleep(0.2)
    return tuple(job.outputs()[-1])


def assert_complete_video(outputs: tuple) -> None:
    """The run's MP4 lasts as long as its speech, and the face in it speaks."""
    download, status = finished_view(outputs)
    assert download is not None, status
    assert "Embedded photo animator" in status and "Ray Serve, 2 replicas on CPU" in status
    video_of_the_speech(download, status)
    frames = read_frames(Path(download))[::5]
    lip_gaps = [points[14, 1] - points[13, 1] for points in (find_faces(frame)[0].landmarks for frame in frames)]
    assert np.ptp(lip_gaps) > 4.0, "the mouth barely opens"


def test_two_visitors_at_once_are_served_by_different_replicas_and_each_gets_their_video(app_url):
    jobs = [submit(app_url, ASTRONAUT, SHORT), submit(app_url, GRACE_HOPPER, SHORT)]
    assert sessions_once_all_open(jobs) == [1, 1]
    for job in jobs:
        assert_complete_video(finished(job))
    assert sessions_once_all_closed() == [0, 0], "a finished run's session was left on its replica"


def test_a_replica_stopped_mid_run_gives_its_visitor_a_plain_message_and_the_next_run_works(app_url):
    jobs = [submit(app_url, ASTRONAUT, LONG), submit(app_url, GRACE_HOPPER, LONG)]
    assert sessions_once_all_open(jobs) == [1, 1]
    wait_until_drawing(jobs)
    victim = replica_actors()[0]
    ray.kill(ray.get_actor(victim, namespace="serve"))

    outputs = [finished(job) for job in jobs]
    stopped = [entry for entry in outputs if REPLICA_STOPPED in finished_view(entry)[1]]
    completed = [entry for entry in outputs if REPLICA_STOPPED not in finished_view(entry)[1]]
    assert len(stopped) == 1 and len(completed) == 1, [finished_view(entry)[1] for entry in outputs]
    assert finished_view(stopped[0]) == (None, f"⚠️ {REPLICA_STOPPED}")
    assert_complete_video(completed[0])

    assert_complete_video(finished(submit(app_url, ASTRONAUT, SHORT)))
    assert victim not in replica_actors()
