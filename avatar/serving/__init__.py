"""Engines served by Ray Serve: replicas on the GPUs (or CPUs) of a Ray cluster of any number of hosts.

Off by default. With AVATAR_SERVE=ray the app joins the cluster (`join_cluster`) and hands it to the
engine registry, which then gets each engine as a `LoadedEngine` placed on `ServedReplicas`: the same
object a run draws with, whose replica sessions live on replicas of a Ray Serve deployment that each
hold the real engine (see replica.py, router.py, served_engine.py, cluster.py). Ray is imported only
then, so the default install does not need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from avatar.config import Settings, check_choice

if TYPE_CHECKING:
    from avatar.serving.cluster import RayCluster

SERVE_MODES = ("off", "ray")


def join_cluster(settings: Settings) -> RayCluster | None:
    """The Ray cluster that serves the engines (AVATAR_SERVE=ray), or None where they run in this process.

    Raises `ClusterUnreachable` (naming AVATAR_RAY_ADDRESS) when the cluster cannot be reached, so the
    app stops at start-up rather than at a visitor's first run.
    """
    check_choice("AVATAR_SERVE", settings.serve, SERVE_MODES)
    if settings.serve == "off":
        return None
    try:
        from avatar.serving.cluster import RayCluster
    except ImportError as error:
        raise RuntimeError(
            "AVATAR_SERVE=ray needs Ray Serve: pip install -r requirements-dev.txt (or 'ray[serve]==2.60.0')."
        ) from error
    return RayCluster.join(settings.ray_address)
