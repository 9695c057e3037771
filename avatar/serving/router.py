"""Where Ray Serve sends each call: a session's calls to the replica holding it, a new session to the least loaded.

A replica session is one face's drawing state, kept by one replica: its key starts with that replica's id,
and every later call carries the key as Serve's `session_id`: this router, Serve's own extension point for
routing, then offers Serve only that replica. A new session (no key) goes to a replica holding the fewest sessions
(ties broken at random), and counts there from the moment it is chosen: two visitors starting together
are routed at once, and the second must see the first's session before the first has reached its replica.
Should Serve send it elsewhere after all (the chosen replica was full or did not answer), it counts where
it went.

The load of a replica is the sessions this app process opened there and has not closed (exact and
immediate), plus those of other app processes (several front-ends may share the replicas) as the replica
last reported them (`record_routing_stats`, every few seconds).
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections import Counter

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

# The routing statistics a replica reports: how many sessions it holds, and how many each app process opened.
SESSIONS = "sessions"
OPENERS = "openers"
# This app process, as it names itself to the replicas when it opens a session.
APP_PROCESS = f"{socket.gethostname()}:{os.getpid()}"


def session_key(replica_id: str) -> str:
    """A new session's key on replica `replica_id`: the replica's id, then a name unique to the session."""
    return f"{replica_id}:{uuid.uuid4().hex}"


def replica_of(key: str) -> str:
    """The id of the replica that holds the session `key`."""
    return key.partition(":")[0]


def least_loaded_first(loads: dict[str, int]) -> list[list[str]]:
    """Replica ids grouped by load, lightest group first: the ranks Serve tries in turn."""
    return [[replica for replica, load in loads.items() if load == level] for level in sorted(set(loads.values()))]


class ReplicaRouter(RequestRouter):
    """Sticky replica sessions, and new ones to the least loaded replica, for one engine's deployment (runs in the
    app process)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.opened: Counter[str] = Counter()
        # Opens chosen but not yet routed (by Serve's internal request id): each counts on the replica chosen
        # for it until Serve reports where it went. Serve may choose again for the same open (all ranks
        # refused it, or its replica did): the new choice replaces the old, so it never counts twice.
        self.choosing: dict[str, tuple[PendingRequest, str]] = {}

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        key = pending_request.metadata.session_id if pending_request is not None else ""
        if key:
            # Only one replica will do; wait for it (with Serve's backoff) if it is busy.
            pending_request.routing_context.should_backoff = True
            holder = [replica for replica in candidate_replicas if replica.replica_id.unique_id == replica_of(key)]
            # Gone (it died): any live replica answers, and says it does not know the session.
            return [holder] if holder else [candidate_replicas]
        opening = pending_request is not None and pending_request.metadata.call_method == "open"
        request = pending_request.metadata.internal_request_id if opening else None
        # An open chosen again (no rank had room, or its replica refused it) counts only where it is chosen now;
        # one its caller gave up on before it was routed, nowhere.
        self.choosing = {
            other: (waiting, choice)
            for other, (waiting, choice) in self.choosing.items()
            if other != request and not waiting.future.cancelled()
        }
        by_id = {replica.replica_id.unique_id: replica for replica in candidate_replicas}
        loads = {replica: self.load(by_id[replica]) for replica in by_id}
        ranks = least_loaded_first(loads)
        if opening and ranks:
            # One replica first, on its own, so that the open counts there before Serve has even probed it;
            # the others stay behind it in case it is full.
            chosen = random.choice(ranks[0])
            self.choosing[request] = (pending_request, chosen)
            ranks = [[chosen], *least_loaded_first({replica: loads[replica] for replica in loads if replica != chosen})]
        return [[by_id[replica] for replica in rank] for rank in ranks]

    def load(self, replica: RunningReplica) -> int:
        """Sessions on `replica`: this process's as they are chosen, open and close, other processes' as last
        reported."""
        replica_id = replica.replica_id.unique_id
        reported = replica.routing_stats.get(OPENERS, {})
        others = sum(count for opener, count in reported.items() if opener != APP_PROCESS)
        chosen = sum(1 for _, choice in self.choosing.values() if choice == replica_id)
        return self.opened[replica_id] + chosen + others

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: object) -> None:
        """Count the sessions this process opens and closes on each replica (an open where it really went)."""
        method, replica = pending_request.metadata.call_method, replica_id.unique_id
        if method == "open":
            self.choosing.pop(pending_request.metadata.internal_request_id, None)
            self.opened[replica] += 1
        elif method == "close" and replica_of(pending_request.metadata.session_id) == replica and self.opened[replica]:
            self.opened[replica] -= 1

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        """An open that ended without being routed (it failed on the way, or Serve sent it without asking the
        replica) no longer counts; one refused and being chosen anew (its future reset) still does."""
        super().on_request_completed(replica_id, internal_request_id)
        waiting, _ = self.choosing.get(internal_request_id, (None, ""))
        if waiting is not None and waiting.future.done():
            del self.choosing[internal_request_id]

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self.opened.pop(replica_id.unique_id, None)
