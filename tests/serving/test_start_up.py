"""AVATAR_SERVE=ray with a cluster that is not there: the app stops at start, and says which setting to fix."""

from __future__ import annotations

import pytest

from bench.page_driver import AppServer, free_port


def test_an_unreachable_cluster_stops_the_app_at_start_naming_the_setting(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    server = AppServer(tmp_path, extra_env={"AVATAR_SERVE": "ray", "AVATAR_RAY_ADDRESS": address})
    with pytest.raises(RuntimeError, match="the app exited early") as refused:
        server.__enter__()
    assert f"Could not reach the Ray cluster at AVATAR_RAY_ADDRESS={address}" in str(refused.value)
