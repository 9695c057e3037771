"""The router's count of new sessions while Serve is still routing them, with Serve's own types and routing
loop and stand-in replicas (no Ray cluster)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

from ray.serve._private.common import DeploymentHandleSource, DeploymentID, RequestMetadata
from ray.serve.request_router import PendingRequest, ReplicaID

from avatar.serving.router import ReplicaRouter

DEPLOYMENT = DeploymentID(name="default", app_name="avatar-default")


@dataclass
class StandInReplica:
    """What Serve's routing loop and the router read of a running replica: its id, its reported
    statistics, and its queue (always room, answered after a turn of the event loop, as over the network)."""

    name: str
    routing_stats: dict = field(default_factory=dict)
    max_ongoing_requests: int = 8

    @property
    def replica_id(self) -> ReplicaID:
        return ReplicaID(self.name, DEPLOYMENT)

    async def get_queue_len(self, *, deadline_s: float) -> int:
        await asyncio.sleep(0)
        return 0


def request(method: str) -> PendingRequest:
    """A call without a session key, as Serve hands it to the router (each with its own internal id)."""
    metadata = RequestMetadata(uuid.uuid4().hex, uuid.uuid4().hex, call_method=method)
    return PendingRequest([], {}, metadata)


def new_router() -> ReplicaRouter:
    # As Serve's Router builds it when replicas may refuse calls (the default outside Ray Client).
    return ReplicaRouter(
        deployment_id=DEPLOYMENT, handle_source=DeploymentHandleSource.UNKNOWN, use_replica_queue_len_cache=True
    )


async def first_choice(router: ReplicaRouter, replicas: list[StandInReplica], pending: PendingRequest) -> str:
    """The replica Serve tries first for `pending` (alone in the first rank for an open)."""
    ranks = await router.choose_replicas(replicas, pending)
    assert len(ranks[0]) == 1, ranks
    return ranks[0][0].name


def loads(router: ReplicaRouter, replicas: list[StandInReplica]) -> dict[str, int]:
    return {replica.name: router.load(replica) for replica in replicas}


def test_two_visitors_opening_together_get_different_replicas_through_serves_routing_loop():
    async def open_two() -> list[str]:
        router, replicas = new_router(), [StandInReplica("a"), StandInReplica("b")]
        router.update_replicas(replicas)
        opens = [request("open"), request("open")]
        # Serve's Router: choose a replica for each call (both at once), send it, then report it routed.
        chosen = await asyncio.gather(*(router._choose_replica_for_request(pending) for pending in opens))
        for pending, replica in zip(opens, chosen, strict=True):
            router.on_request_routed(pending, replica.replica_id, None)
        assert loads(router, replicas) == {"a": 1, "b": 1}
        return sorted(replica.name for replica in chosen)

    # Ties are broken at random: many rounds, so that a lucky draw cannot hide two opens sharing a replica.
    for _ in range(20):
        assert asyncio.run(open_two()) == ["a", "b"]


def test_an_open_counts_once_where_it_was_chosen_until_serve_says_where_it_went():
    async def scenario() -> None:
        router = new_router()
        a, b, c = StandInReplica("a", {"openers": {"other-host:12": 1}}), StandInReplica("b"), StandInReplica("c")
        replicas = [a, b, c]
        first = request("open")
        chosen = await first_choice(router, replicas, first)
        assert chosen in {"b", "c"}  # a holds another app process's session
        # Chosen again (no rank had room, or its replica refused it): it still counts once, wherever it is now.
        chosen = await first_choice(router, replicas, first)
        assert sorted(loads(router, replicas).values()) == [0, 1, 1] and loads(router, replicas)[chosen] == 1
        second = request("open")
        other = await first_choice(router, replicas, second)
        assert {chosen, other} == {"b", "c"}
        # Serve sent the first to a after all: it counts there, and no longer where it was chosen.
        router.on_request_routed(first, a.replica_id, None)
        assert loads(router, replicas) == {"a": 2, chosen: 0, other: 1}
        assert await first_choice(router, replicas, request("describe")) == chosen  # not an open: nothing counted
        assert loads(router, replicas) == {"a": 2, chosen: 0, other: 1}
        # Its completion, later, changes nothing.
        router.on_request_completed(a.replica_id, first.metadata.internal_request_id)
        assert loads(router, replicas) == {"a": 2, chosen: 0, other: 1}

    asyncio.run(scenario())


def test_an_open_given_up_or_ended_before_it_was_routed_stops_counting_but_one_chosen_anew_does_not():
    async def scenario() -> None:
        router, replicas = new_router(), [StandInReplica("a"), StandInReplica("b")]
        given_up = request("open")
        await first_choice(router, replicas, given_up)
        given_up.future.cancel()  # its caller stopped waiting before Serve found a replica
        ended, refused = request("open"), request("open")
        ended_on = await first_choice(router, replicas, ended)
        refused_on = await first_choice(router, replicas, refused)
        assert {ended_on, refused_on} == {"a", "b"} and sum(loads(router, replicas).values()) == 2
        # Sent, but it ended without being reported routed (it failed on the way): it no longer counts.
        ended.future.set_result(replicas[0])
        router.on_request_completed(ReplicaID(ended_on, DEPLOYMENT), ended.metadata.internal_request_id)
        # Refused by its replica: Serve resets its future to choose again, and the refused call's completion
        # may arrive after that; it still counts.
        refused.reset_future()
        router.on_request_completed(ReplicaID(refused_on, DEPLOYMENT), refused.metadata.internal_request_id)
        assert loads(router, replicas) == {ended_on: 0, refused_on: 1}

    asyncio.run(scenario())
