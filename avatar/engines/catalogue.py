"""The engines this app knows, in the order the page lists them: one line each.

The first is the fallback that runs anywhere. Adding an engine is one folder under avatar/engines/
with its `spec.py`, and one line here (or a call to `register` before the app starts).
"""

from __future__ import annotations

from avatar.engines.default.spec import SPEC as ANIMATOR
from avatar.engines.flashhead.spec import LITE as FLASHHEAD_LITE
from avatar.engines.flashhead.spec import PRO as FLASHHEAD_PRO
from avatar.engines.spec import EngineSpec

SPECS: list[EngineSpec] = [ANIMATOR, FLASHHEAD_LITE, FLASHHEAD_PRO]


def register(spec: EngineSpec) -> None:
    """Add an engine from outside this package (a plug-in, or a test), before the app starts."""
    if any(known.key == spec.key for known in SPECS):
        raise ValueError(f"an engine called {spec.key!r} is already registered")
    SPECS.append(spec)
