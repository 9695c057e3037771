"""The disk stays tidy: a killed server's leftovers go at the next start, total use stays under its cap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from avatar.housekeeping import DiskCap, claim, folder_bytes, start_housekeeping
from bench.page_driver import ROOT


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def result(cache: Path, name: str, size: int, seconds_old: float) -> Path:
    path = cache / name / "talking-photo.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * size)
    age(path, seconds_old)
    return path


def test_a_killed_servers_run_folders_and_cache_are_cleared_at_the_next_start(tmp_path):
    work, cache = tmp_path / "runs", tmp_path / "gradio"
    holder = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from avatar.housekeeping import start_housekeeping
        keep = start_housekeeping(Path({str(work)!r}), Path({str(cache)!r}))
        (Path({str(work)!r}) / "run-abc").mkdir()
        (Path({str(work)!r}) / "run-abc" / "segment-0000.mp4").write_bytes(b"x" * 1000)
        (Path({str(cache)!r}) / "f00d").mkdir()
        (Path({str(cache)!r}) / "f00d" / "talking-photo.mp4").write_bytes(b"x" * 1000)
        print("ready", flush=True)
        time.sleep(60)
    """)
    server = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True, cwd=Path.cwd())
    assert server.stdout.readline().strip() == "ready"
    assert start_housekeeping(work, cache).cleared == [], "a live server's folders were touched"
    server.send_signal(signal.SIGKILL)
    server.wait()

    (work / "bin").mkdir()
    housekeeping = start_housekeeping(work, cache)
    assert sorted(path.name for path in housekeeping.cleared) == ["f00d", "run-abc"]
    assert sorted(path.name for path in work.iterdir()) == [".in-use.lock", "bin"]
    assert folder_bytes(cache) == 0


def test_a_folder_the_app_never_held_keeps_its_files(tmp_path):
    (tmp_path / "notes.txt").write_text("someone else's")
    (tmp_path / "run-old").mkdir()
    assert start_housekeeping(tmp_path, tmp_path / "gradio").cleared == []
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "run-old").exists()


def test_a_clean_shutdown_empties_the_folders_and_frees_them(tmp_path):
    work, cache = tmp_path / "runs", tmp_path / "gradio"
    housekeeping = start_housekeeping(work, cache)
    result(cache, "abc", 1000, 0)
    (work / "bin").mkdir()
    housekeeping.close()
    assert folder_bytes(cache) == 0 and not (cache / "abc").exists() and (work / "bin").exists()
    assert claim(work) is not None and claim(cache) is not None


def test_a_folder_is_held_by_one_live_process_at_a_time(tmp_path):
    first = claim(tmp_path)
    assert first is not None
    script = f"from avatar.housekeeping import claim; print(claim(__import__('pathlib').Path({str(tmp_path)!r})))"
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path.cwd())
    assert other.stdout.strip() == "None"
    first.close()
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=Path.cwd())
    assert other.stdout.strip() != "None"


def test_over_the_cap_the_oldest_finished_results_go_first(tmp_path):
    work, cache = tmp_path / "runs", tmp_path / "gradio"
    work.mkdir()
    oldest = result(cache, "a", 400, 3000)
    older = result(cache, "b", 400, 2000)
    newer = result(cache, "c", 400, 1000)
    cap = DiskCap(work, cache, cap_bytes=500, min_age=60)
    removed = cap.sweep()
    assert removed == [oldest, older] and newer.exists()
    assert not (cache / "a").exists(), "an emptied result folder was left behind"
    assert cap.used_bytes() <= 500


def test_fresh_results_live_runs_and_the_pages_own_pictures_are_never_evicted(tmp_path):
    work, cache = tmp_path / "runs", tmp_path / "gradio"
    sample = result(cache, "sample", 500, 9000)
    cap = DiskCap(work, cache, cap_bytes=100, min_age=60)
    cap.protect_existing()
    fresh = result(cache, "fresh", 500, 5)
    live = work / "run-live"
    live.mkdir(parents=True)
    (live / "segment-0000.mp4").write_bytes(b"\0" * 500)
    assert cap.sweep() == []
    assert sample.exists() and fresh.exists() and live.exists()


def test_a_run_folder_nobody_wrote_to_for_long_is_removed(tmp_path):
    work, cache = tmp_path / "runs", tmp_path / "gradio"
    stale, live = work / "run-stale", work / "run-live"
    for folder in (stale, live):
        folder.mkdir(parents=True)
        (folder / "segment-0000.mp4").write_bytes(b"\0")
    age(stale / "segment-0000.mp4", 4000)
    age(stale, 4000)
    removed = DiskCap(work, cache, stale_run_age=1800).sweep()
    assert removed == [stale] and live.exists()


@pytest.fixture(autouse=True)
def _in_repo_root(monkeypatch):
    """The subprocesses import `avatar` from the repository root."""
    monkeypatch.chdir(ROOT)
