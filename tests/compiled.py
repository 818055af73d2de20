"""Which build of the hot paths a test pass runs, for the tests that check it is the right one.

`scripts/test` runs the suite interpreted (CHRONOS_INTERPRETED=1), then the suites of the
compiled modules' packages again with CHRONOS_EXPECT_COMPILED=1, which must not silently
fall back to the source; otherwise the venv's hook decides (`_chronos_compiled.active()`).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import _chronos_compiled


def expected() -> bool:
    """Whether this pass should run the compiled hot paths."""
    if os.environ.get("CHRONOS_EXPECT_COMPILED") == "1":
        return True
    if os.environ.get("CHRONOS_INTERPRETED") == "1":
        return False
    return _chronos_compiled.active()


def compiled(method: Any) -> bool:
    """Whether a class's method came out of mypyc (a native descriptor, not a function)."""
    return not inspect.isfunction(method)
