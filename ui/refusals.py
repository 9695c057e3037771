"""Problems a visitor can fix end a handler with one plain sentence, the same way in every tab.

Two kinds reach the page: `UserFacingError` from the app, and `gr.Error` from ZeroGPU's `spaces`
(no GPU free, the visitor's quota used up). Anything else is a bug and stays loud.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import gradio as gr

from avatar.errors import UserFacingError

View = TypeVar("View")
VISITOR_PROBLEMS = (UserFacingError, gr.Error)


def plain_message(error: UserFacingError | gr.Error) -> str:
    """The sentence the page shows for a problem the visitor can fix."""
    message = error.message if isinstance(error, gr.Error) else str(error)
    return f"⚠️ {message}"


def until_refused(steps: Iterator[View], refused: Callable[[str], View]) -> Iterator[View]:
    """The views of `steps`; a problem the visitor can fix ends them with `refused(its sentence)`."""
    try:
        yield from steps
    except VISITOR_PROBLEMS as error:
        yield refused(plain_message(error))
