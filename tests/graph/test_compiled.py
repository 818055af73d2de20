"""Which build of the event path the tests run against.

`scripts/test` runs `tests/graph` a second time against the wheel with the event path
compiled by mypyc (`scripts/build-compiled`), setting CHRONOS_EXPECT_COMPILED=1; that pass
must not silently fall back to the interpreted source.
"""

import os

from chronos.graph import _events


def test_the_event_path_is_the_build_this_pass_expects() -> None:
    compiled = not _events.__file__.endswith(".py")
    assert compiled == (os.environ.get("CHRONOS_EXPECT_COMPILED") == "1"), _events.__file__
