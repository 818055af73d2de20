"""What each model call used reaches the run: the last token, per-node and per-run totals."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from chronos import graph, model
from chronos.model import RetryPolicy
from tests.model.conftest import AWS_ENVIRONMENT
from tests.model.recordings import PROVIDERS, Recording, load_all, recording_id
from tests.model.replay import ReplayServer, Reply

pytestmark = pytest.mark.anyio

REQUEST = model.ChatRequest(messages=[model.Message(role="user", content="Hello")])
WITH_USAGE = [r for r in load_all()
              if r.status < 400 and r.expected.get("usage") and r.api in PROVIDERS]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)


def _reply(recording: Recording) -> Reply:
    return Reply(status=recording.status, body=recording.body,
                 headers={"content-type": recording.content_type},
                 seed=zlib.crc32(recording.body))


def one_node_graph(node: graph.NodeFunction) -> graph.CompiledGraph:
    return (graph.StateGraph("g").add_node("chat", node).set_entry_point("chat")
            .set_finish_point("chat").compile())


@pytest.mark.usefixtures("aws")
@pytest.mark.parametrize("recording", WITH_USAGE, ids=recording_id)
async def test_the_last_token_carries_the_usage_each_vendor_recorded(
    recording: Recording, replay_server: ReplayServer
) -> None:
    script = replay_server.script(_reply(recording))
    provider = PROVIDERS[recording.api](recording, script.base_url)
    provider.retry = RetryPolicy(max_retries=0)

    async def chat(state: dict[str, Any]) -> dict[str, Any]:
        await graph.stream_chat(provider, REQUEST)
        return {}

    runner = graph.Runner(one_node_graph(chat))
    tokens = runner.stream("messages")
    async with provider:
        await runner.run("s", {})
    deltas = [e.data async for e in tokens if e.type == "token"]

    usage = deltas[-1].usage
    assert usage is not None
    assert dict(usage.raw) == recording.expected["usage"]
    assert all(d.usage is None for d in deltas[:-1])
    assert usage.input_tokens is not None or usage.output_tokens is not None
