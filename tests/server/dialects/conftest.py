from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.server.api_server import Served, serving


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """`chronos serve` running the dialect tests' `chat` graph (see graphs.py), and `replay`,
    which streams a recorded vendor stream (see openai_graphs.py)."""
    with serving("tests.server.dialects.graphs:chat",
                 "tests.server.dialects.openai_graphs:replay") as server:
        yield server


@pytest.fixture
def client(served: Served) -> Iterator[openai.OpenAI]:
    """The `openai` SDK pointed at the module's server."""
    with openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0) as c:
        yield c
