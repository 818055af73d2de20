"""The `chronos.model` log: one INFO line per retried request, nothing per chunk."""

from __future__ import annotations

import logging

import pytest

from chronos.model import ChatRequest, Message, RetryPolicy
from chronos.model.openai import OpenAIProvider
from tests.demo.conftest import openai_stream
from tests.model.replay import ReplayServer, Reply

pytestmark = pytest.mark.anyio

KEY = "sk-never-logged-0123456789"
REQUEST = ChatRequest(messages=[Message(role="user", content="Hello")])


async def test_a_retry_is_one_info_line_and_chunks_are_none(
    replay_server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    throttled = Reply(status=429, body=f'{{"error": {{"message": "slow down {KEY}"}}}}'.encode(),
                      headers={"content-type": "application/json", "retry-after": "0"})
    words = [f"w{n} " for n in range(50)]
    script = replay_server.script(throttled, Reply(body=openai_stream(words)))
    caplog.set_level(logging.DEBUG, logger="chronos")
    async with OpenAIProvider("gpt-x", base_url=script.base_url, api_key=KEY,
                              retry=RetryPolicy(max_retries=2, initial_backoff=0)) as provider:
        response = await provider.chat(REQUEST)
    assert response.content.startswith("w0 w1")

    [line] = [r for r in caplog.records if r.name == "chronos.model"]
    assert line.levelno == logging.INFO
    assert line.chronos == {  # type: ignore[attr-defined]
        "provider": "openai", "model": "gpt-x", "retry": 1, "delay": 0.0,
        "error": "RateLimitError", "status": 429}
    assert KEY not in line.getMessage()
    assert "slow down" not in line.getMessage()
