"""Stage threads hand on what they make in order, pass errors downstream, and all stop at once on cancel."""

import contextvars
import threading
import time

import pytest

from avatar.stages import POLL_SECONDS, RunCancelled, Stages

visitor = contextvars.ContextVar("visitor", default="nobody")


def numbers(count):
    yield from range(count)


def test_what_a_stage_makes_comes_out_of_the_next_in_order():
    stages = Stages(threading.Event())
    counted = stages.stage("count", lambda: numbers(50), size=2)
    doubled = stages.stage("double", lambda: (n * 2 for n in counted), size=2)
    assert list(doubled) == [n * 2 for n in range(50)]
    stages.stop()


def test_an_error_in_a_stage_is_raised_where_the_next_one_reads_with_its_own_type():
    def failing():
        yield 1
        raise KeyError("the voice broke")

    stages = Stages(threading.Event())
    first = stages.stage("first", failing, size=1)
    second = stages.stage("second", lambda: (n for n in first), size=1)
    with pytest.raises(KeyError, match="the voice broke"):
        list(second)
    stages.stop()


def test_cancel_ends_every_stage_within_a_poll_and_closes_their_generators():
    closed = []

    def endless(name):
        try:
            while True:
                yield name
        finally:
            closed.append(name)

    cancel = threading.Event()
    stages = Stages(cancel)
    source = stages.stage("source", lambda: endless("source"), size=1)
    stages.stage("stalled", lambda: (item for item in source if False), size=1)
    time.sleep(3 * POLL_SECONDS)
    cancel.set()
    started = time.perf_counter()
    stages.stop()
    assert time.perf_counter() - started < 5 * POLL_SECONDS
    assert closed == ["source"]
    assert not [thread for thread in threading.enumerate() if thread.name in ("source", "stalled")]


def test_reading_a_cancelled_handover_raises_run_cancelled():
    cancel = threading.Event()

    def after_stop():
        cancel.wait()
        yield "too late"

    stages = Stages(cancel)
    items = stages.stage("slow", after_stop, size=1)
    cancel.set()
    with pytest.raises(RunCancelled):
        list(items)
    stages.stop()


def test_a_stage_runs_in_the_context_of_whoever_started_it():
    visitor.set("the visitor")
    stages = Stages(threading.Event())
    seen = stages.stage("context", lambda: (visitor.get() for _ in range(1)), size=1)
    assert list(seen) == ["the visitor"]
    stages.stop()
