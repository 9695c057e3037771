"""The Ray cluster the engines are served on: joining it at start-up, and one Serve application per engine.

An engine that needs CUDA gets one replica per GPU of the cluster (`num_gpus=1`: Ray places each on a GPU
of its own, on whichever host has one free); an engine that does not gets one replica per host, on
CPUs. The replicas receive the engine's code (the `avatar` package) and this process's AVATAR_*
settings from Ray, so a worker host needs only the Python packages, not this repository.

Settings of their own (read once, from the environment):
- AVATAR_RAY_REPLICAS: replicas per engine, instead of one per GPU (or per host);
- AVATAR_RAY_REPLICA_CPUS: CPU cores Ray reserves for each replica.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve.config import RequestRouterConfig
from ray.serve.deployment import Deployment
from ray.serve.schema import ApplicationStatus

from avatar.config import PACKAGE_DIR, env_float, env_int
from avatar.engines.base import EngineUnavailable
from avatar.engines.loaded import LoadedEngine
from avatar.engines.spec import EngineSpec, Progress
from avatar.serving.replica import EngineReplica
from avatar.serving.router import ReplicaRouter
from avatar.serving.served_engine import ServedReplicas

# How long the start-up check waits for the cluster's head to answer.
CONNECT_SECONDS = 5
# How often each replica tells the router how many sessions it holds.
ROUTING_STATS_SECONDS = 2.0
# Builds of a replica that may fail (no weights on that host, out of memory) before Serve gives up on the engine.
BUILD_TRIES = 3
# Calls one replica takes at once (Serve's max_ongoing_requests): more than any engine's sessions have in
# flight, so that Serve never holds back a step its engine could batch (the waiting line limits the runs).
REPLICA_CALLS = 256


class ClusterUnreachable(RuntimeError):
    """AVATAR_SERVE=ray, and the Ray cluster could not be joined; the message says where it was looked for."""


@dataclass(frozen=True)
class ServingSettings:
    """Replicas per engine (0: one per GPU, or per host for an engine that runs on CPUs) and cores each."""

    replicas: int = 0
    replica_cpus: float = 1.0

    @classmethod
    def from_env(cls) -> ServingSettings:
        return cls(
            replicas=env_int("AVATAR_RAY_REPLICAS", cls.replicas),
            replica_cpus=env_float("AVATAR_RAY_REPLICA_CPUS", cls.replica_cpus),
        )


def check_reachable(address: str) -> None:
    """Fail at once, naming AVATAR_RAY_ADDRESS, where `ray.init` would wait minutes for a head that is not there."""
    if address.startswith("ray://"):
        raise ClusterUnreachable(
            f"AVATAR_RAY_ADDRESS={address} is a Ray Client address; give the head's host:port instead "
            "(the app's host joins the cluster with `ray start --address=...`)."
        )
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto": a cluster started on this host, which ray.init finds itself
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as error:
        raise ClusterUnreachable(
            f"Could not reach the Ray cluster at AVATAR_RAY_ADDRESS={address} ({error.strerror or error}). "
            f"Start its head there (`ray start --head --port={port}`), or leave AVATAR_RAY_ADDRESS unset "
            "to start a local Ray instance."
        ) from error


def replica_runtime_env() -> dict[str, object]:
    """What the replicas this app deploys run with: its `avatar` package and its AVATAR_* settings.

    Given to `ray.init`: Ray uploads a local package only for a whole job, and Serve hands the job's
    runtime environment on to the deployments it starts.
    """
    settings = {name: value for name, value in os.environ.items() if name.startswith("AVATAR_")}
    return {"py_modules": [str(PACKAGE_DIR)], "env_vars": settings}


class RayCluster:
    """The cluster this app joined; `serve(spec)` gives an engine whose sessions run on its replicas."""

    def __init__(self, gpus: int, hosts: int, settings: ServingSettings) -> None:
        self.gpus = gpus
        self.hosts = hosts
        self.settings = settings

    @classmethod
    def join(cls, address: str) -> RayCluster:
        """Join the cluster at `address` (blank: start a local Ray instance) and start Serve there."""
        if address:
            check_reachable(address)
        # A local instance of our own, not one another program started here (that needs AVATAR_RAY_ADDRESS=auto).
        where = {"address": address} if address else {"address": "local", "include_dashboard": False}
        try:
            ray.init(**where, runtime_env=replica_runtime_env(), ignore_reinit_error=True)
            serve.start(proxy_location="Disabled")
        except (ConnectionError, RuntimeError) as error:
            named = f"at AVATAR_RAY_ADDRESS={address}" if address else "(a local instance: AVATAR_RAY_ADDRESS is unset)"
            raise ClusterUnreachable(f"Could not join the Ray cluster {named}: {error}") from error
        gpus = int(ray.cluster_resources().get("GPU", 0))
        hosts = sum(1 for node in ray.nodes() if node["Alive"])
        return cls(gpus, hosts, ServingSettings.from_env())

    @property
    def has_gpus(self) -> bool:
        return self.gpus > 0

    def replicas(self, spec: EngineSpec) -> int:
        """One replica per GPU for an engine that needs one, else one per host; AVATAR_RAY_REPLICAS overrides."""
        return self.settings.replicas or (self.gpus if spec.needs_cuda else self.hosts)

    def serve(self, spec: EngineSpec, progress: Progress | None = None) -> LoadedEngine:
        """The engine `spec`, served by its replicas: deployed now, or already running (another app process
        or an earlier start deployed it; `serve delete avatar-<engine>` makes the next start deploy afresh)."""
        name = f"avatar-{spec.key}"
        replicas = self.replicas(spec)
        application = serve.status().applications.get(name)
        if application is None or application.status != ApplicationStatus.RUNNING:
            if progress:
                progress(0.0, f"Starting {replicas} replicas of {spec.label} on the Ray cluster")
            try:
                serve.run(self._deployment(spec, replicas).bind(spec), name=name, route_prefix=None)
            except RuntimeError as error:
                raise EngineUnavailable(f"{spec.label} could not start on the Ray cluster: {error}") from error
        handle = serve.get_app_handle(name)
        return spec.loaded(ServedReplicas(handle, handle.describe.remote().result(), replicas))

    def _deployment(self, spec: EngineSpec, replicas: int) -> Deployment:
        return serve.deployment(EngineReplica).options(
            name=spec.key,
            num_replicas=replicas,
            max_ongoing_requests=REPLICA_CALLS,
            max_constructor_retry_count=BUILD_TRIES,
            ray_actor_options={
                "num_cpus": self.settings.replica_cpus,
                "num_gpus": 1 if spec.needs_cuda else 0,
            },
            request_router_config=RequestRouterConfig(
                request_router_class=ReplicaRouter, request_routing_stats_period_s=ROUTING_STATS_SECONDS
            ),
            logging_config={"enable_access_log": False},
        )
