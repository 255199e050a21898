"""The fuzz tests' one piece of set-up: keep CPython's ``ast`` out of the server threads' tracebacks.

Before 3.13, ``ast.parse`` keeps its recursion count in state shared by all threads. Since 3.11
``traceback`` calls ``ast.parse`` to draw its ``^^^^`` marks, so a server thread logging a 500's
traceback while pytest (which parses source with ``ast`` too) formats a failure in the main
thread can make either raise ``SystemError: AST constructor recursion depth mismatch``, and pytest
then stops the whole session with INTERNALERROR. The fuzz tests provoke exactly that: a 500 logged
as the test fails. Without the marks, tracebacks read the same, less the carets.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def no_caret_parsing() -> Iterator[None]:
    name = "_extract_caret_anchors_from_line_segment"
    original = getattr(traceback, name, None)
    if original is None or sys.version_info >= (3, 13):
        yield
        return
    setattr(traceback, name, lambda segment: None)
    try:
        yield
    finally:
        setattr(traceback, name, original)
