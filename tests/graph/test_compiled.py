"""Which build of the hot paths the tests run against.

`scripts/test` runs the graph, stream and demo suites a second time against the wheel whose
per-event modules mypyc compiled (`scripts/build-compiled`), setting
CHRONOS_EXPECT_COMPILED=1; that pass must not silently fall back to the interpreted source.
"""

import os

import pytest

from chronos.graph import _events
from chronos.stream import _subscription


@pytest.mark.parametrize("module", [_events, _subscription], ids=lambda m: m.__name__)
def test_the_hot_paths_are_the_build_this_pass_expects(module: object) -> None:
    path: str = module.__file__  # type: ignore[attr-defined]
    assert (not path.endswith(".py")) == (os.environ.get("CHRONOS_EXPECT_COMPILED") == "1"), path
