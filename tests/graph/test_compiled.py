"""Which build of the hot paths the tests run against.

The venv that `scripts/setup` makes runs the mypyc-compiled modules of `build/compiled` while
that build matches the source (`src/_chronos_compiled.py`), and the source otherwise or with
CHRONOS_INTERPRETED=1. `scripts/test` runs the whole suite interpreted, then the graph, stream
and demo suites again with CHRONOS_EXPECT_COMPILED=1, which must not silently fall back to
the interpreted source.
"""

import os

import pytest

import _chronos_compiled
from chronos.graph import _events
from chronos.stream import _subscription


@pytest.mark.parametrize("module", [_events, _subscription], ids=lambda m: m.__name__)
def test_the_hot_paths_are_the_build_this_pass_expects(module: object) -> None:
    path: str = module.__file__  # type: ignore[attr-defined]
    compiled = not path.endswith(".py")
    if os.environ.get("CHRONOS_EXPECT_COMPILED") == "1":
        assert compiled, path
    elif os.environ.get("CHRONOS_INTERPRETED") == "1":
        assert not compiled, path
    else:
        assert compiled == _chronos_compiled.active(), path
