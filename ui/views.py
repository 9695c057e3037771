"""What a handler hands the page: a view, one field per component, and the one mapping to Gradio updates.

Handlers yield views (frozen dataclasses of plain values), so they can be called and checked without
a page; only `updates` and `outputs` know how Gradio spells "leave it" or "hide it".
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import gradio as gr


class Keep:
    """A view field left as the page shows it now."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(frozen=True)
class Shown:
    """A component shown or hidden, its value left as it is (a button that only sometimes applies)."""

    visible: bool


@dataclass(frozen=True)
class Relabelled:
    """A component given a new label (a box whose meaning follows another choice), its value kept unless given."""

    label: str
    value: object = KEEP


def updates(view: Any) -> tuple:
    """The view's fields, in their order, as the outputs of a Gradio event."""
    return tuple(_update(getattr(view, field.name)) for field in fields(view))


def outputs(view_type: type, **components: gr.components.Component) -> list[gr.components.Component]:
    """The components a view of `view_type` fills, named as its fields and put in their order."""
    names = [field.name for field in fields(view_type)]
    if set(names) != set(components):
        raise TypeError(f"{view_type.__name__} fills {names}; the tab gave {sorted(components)}")
    return [components[name] for name in names]


def _update(value: object) -> object:
    if value is KEEP:
        return gr.skip()
    if isinstance(value, Shown):
        return gr.update(visible=value.visible)
    if isinstance(value, Relabelled):
        return gr.update(label=value.label) if value.value is KEEP else gr.update(label=value.label, value=value.value)
    return value
