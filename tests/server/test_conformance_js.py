"""The official npm client, `@langchain/langgraph-sdk`, streams and joins runs on `chronos
serve` as it does on the reference server.

`js/stream_and_join.mjs` streams a run in four modes, then joins a background run from its
first event (`lastEventId: "-1"`), and prints what the SDK yielded. `scripts/setup` installs
the SDK (`npm ci` in `tests/server/js`, from `package-lock.json`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conformance_servers import ServedAPI, chronos_server, reference_server
from tests.server.draft import TOKEN_COUNT

_JS = Path(__file__).resolve().parent / "js"


def _run_client(api: ServedAPI) -> dict[str, Any]:
    node = shutil.which("node")
    assert node is not None, "Node.js 20+ is needed for the npm client test"
    assert (_JS / "node_modules" / "@langchain" / "langgraph-sdk").is_dir(), (
        "npm packages missing: run scripts/setup (npm ci in tests/server/js)"
    )
    done = subprocess.run(
        [node, "stream_and_join.mjs", api.url],
        cwd=_JS, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="module")
def reference_result() -> Iterator[dict[str, Any]]:
    with reference_server() as api:
        yield _run_client(api)


@pytest.fixture(scope="module")
def chronos_result() -> Iterator[dict[str, Any]]:
    with chronos_server() as api:
        yield _run_client(api)


def test_npm_client_streams_and_joins_chronos(chronos_result: dict[str, Any]) -> None:
    events = [event for event, _ in chronos_result["stream"]]
    assert events[0] == "metadata"
    assert events.count("messages") == TOKEN_COUNT
    assert [data for event, data in chronos_result["stream"] if event == "custom"] == [
        {"node": "plan", "topic": "js"}, {"node": "write"}, {"node": "review"},
    ]
    assert [event for event, _ in chronos_result["join"]].count("custom") == 3
    assert chronos_result["final"] == ["plan", "write", "review"]
    assert chronos_result["status"] == "success"


def test_npm_client_sees_the_same_as_on_the_reference(
    chronos_result: dict[str, Any], reference_result: dict[str, Any]
) -> None:
    assert chronos_result == reference_result
