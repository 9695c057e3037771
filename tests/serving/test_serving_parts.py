"""The serving mode's pieces alone, without a Ray cluster: routing, errors, start-up checks, the registry's hook."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from ray.exceptions import ActorDiedError, RayTaskError
from ray.serve._private.common import DeploymentHandleSource, DeploymentID, RequestMetadata
from ray.serve.exceptions import BackPressureError
from ray.serve.request_router import PendingRequest, ReplicaID

from avatar.config import Settings
from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.engines.flashhead.spec import LITE
from avatar.engines.loaded import LoadedEngine
from avatar.engines.registry import EngineRegistry
from avatar.errors import UserFacingError
from avatar.serving import join_cluster
from avatar.serving.cluster import ClusterUnreachable, check_reachable
from avatar.serving.replica import SessionLost
from avatar.serving.router import APP_PROCESS, ReplicaRouter, least_loaded_first, replica_of, session_key
from avatar.serving.served_engine import NO_REPLICA, REPLICA_STOPPED, as_raised_here

DEPLOYMENT = DeploymentID(name="default", app_name="avatar-default")


@dataclass
class FakeReplica:
    """What the router reads of a running replica."""

    name: str
    routing_stats: dict = field(default_factory=dict)

    @property
    def replica_id(self) -> ReplicaID:
        return ReplicaID(self.name, DEPLOYMENT)


LOOP = asyncio.new_event_loop()


def request(method: str, session: str = "") -> PendingRequest:
    metadata = RequestMetadata("r", "i", call_method=method, session_id=session)
    return PendingRequest([], {}, metadata, future=LOOP.create_future())


def ranks(router: ReplicaRouter, replicas: list[FakeReplica], method: str, session: str = "") -> list[list[str]]:
    chosen = LOOP.run_until_complete(router.choose_replicas(replicas, request(method, session)))
    return [[replica.name for replica in rank] for rank in chosen]


@pytest.fixture
def router() -> ReplicaRouter:
    return ReplicaRouter(deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN)


def test_a_session_key_names_the_replica_that_holds_it():
    key = session_key("abc123")
    assert replica_of(key) == "abc123" and key != session_key("abc123")


def test_replicas_are_ranked_lightest_first():
    assert least_loaded_first({"a": 2, "b": 0, "c": 1, "d": 0}) == [["b", "d"], ["c"], ["a"]]


def test_a_sessions_calls_go_only_to_its_replica_and_anywhere_once_it_is_gone(router):
    replicas = [FakeReplica("a"), FakeReplica("b")]
    assert ranks(router, replicas, "step", session_key("b")) == [["b"]]
    assert ranks(router, replicas, "step", session_key("gone")) == [["a", "b"]]


def test_new_sessions_go_where_fewest_are_open_counting_this_process_and_the_others_reported(router):
    a, b = FakeReplica("a"), FakeReplica("b")
    # A tie: one of them first, on its own (so that the open counts there at once), then the other.
    assert sorted(ranks(router, [a, b], "open")) == [["a"], ["b"]]
    router.on_request_routed(request("open"), a.replica_id, None)
    assert ranks(router, [a, b], "open") == [["b"], ["a"]]
    # The replicas' reports count other app processes' sessions; this process's own are counted as they open.
    a.routing_stats = {"sessions": 1, "openers": {APP_PROCESS: 1}}
    b.routing_stats = {"sessions": 2, "openers": {"other-host:12": 2}}
    assert ranks(router, [a, b], "open") == [["a"], ["b"]]
    # A close that Serve had to send elsewhere (its replica died) frees nothing on the replica it reached.
    router.on_request_routed(request("close", session_key("gone")), a.replica_id, None)
    router.on_request_routed(request("close", session_key("a")), a.replica_id, None)
    b.routing_stats = {}
    assert sorted(ranks(router, [a, b], "open")) == [["a"], ["b"]]


def test_a_lost_replica_becomes_a_plain_message_and_an_engines_own_error_is_raised_as_itself():
    died = as_raised_here(ActorDiedError())
    assert isinstance(died, UserFacingError) and str(died) == REPLICA_STOPPED
    lost = RayTaskError("step", "traceback", SessionLost("key")).as_instanceof_cause()
    assert str(as_raised_here(lost)) == REPLICA_STOPPED
    busy = as_raised_here(BackPressureError(num_queued_requests=9, max_queued_requests=8))
    assert str(busy) == NO_REPLICA
    refused = UserFacingError("Too long.")
    assert as_raised_here(RayTaskError("open", "traceback", refused).as_instanceof_cause()) is refused
    out_of_memory = torch.OutOfMemoryError("CUDA out of memory")
    assert as_raised_here(RayTaskError("step", "traceback", out_of_memory).as_instanceof_cause()) is out_of_memory


def test_a_head_that_does_not_answer_is_reported_at_once_naming_the_setting():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{closed.getsockname()[1]}"
    started = time.monotonic()
    with pytest.raises(ClusterUnreachable, match=f"AVATAR_RAY_ADDRESS={address}"):
        check_reachable(address)
    assert time.monotonic() - started < 10
    with pytest.raises(ClusterUnreachable, match="AVATAR_RAY_ADDRESS=ray://head:10001"):
        check_reachable("ray://head:10001")


def test_serving_is_off_unless_asked_for_and_a_misspelt_mode_is_refused():
    assert join_cluster(Settings()) is None
    with pytest.raises(ValueError, match="AVATAR_SERVE"):
        join_cluster(Settings(serve="rya"))


class FakeCluster:
    """Two GPUs on two hosts; records what the registry asks to serve."""

    has_gpus = True

    def __init__(self) -> None:
        self.served: list[str] = []

    def replicas(self, spec) -> int:
        return 2

    def serve(self, spec, progress=None) -> LoadedEngine:
        self.served.append(spec.key)
        return spec.loaded(ServedStub())


class ServedStub:
    """A placement on replicas that draws nothing."""

    engine = None
    chunk_frames = None
    where = "Ray Serve, 2 replicas on CUDA"

    def prepare(self, face) -> None:
        return

    def open(self, face) -> object:
        return np.zeros(0)

    def step(self, state, chunk):
        yield from ()


def test_with_ray_serving_the_registry_offers_the_clusters_gpus_counts_every_replica_and_builds_nothing_here():
    cluster = FakeCluster()
    registry = EngineRegistry(Settings(serve="ray"), specs=[ANIMATOR, LITE], cluster=cluster)
    assert [option.key for option in registry.options()] == ["default", "flashhead-lite"]
    assert registry.sessions("default") == 2 * ANIMATOR.read_settings().sessions
    engine = registry.get("flashhead-lite")
    assert cluster.served == ["flashhead-lite"] and isinstance(engine.placement, ServedStub)
    assert registry.get("flashhead-lite") is engine
