"""A provider stream decodes and assembles through the build this pass expects: the
mypyc-compiled `_decode` and `_assemble` in the compiled pass, the source otherwise
(see tests/compiled.py)."""

from __future__ import annotations

import pytest

from chronos.model import ChatRequest, Message, OpenAIProvider
from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEDecoder
from tests.compiled import compiled, expected
from tests.model.replay import ReplayServer, Reply

BODY = (b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n'
        b'data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{},'
        b'"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')


@pytest.mark.anyio
async def test_a_stream_goes_through_the_expected_build(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=BODY))
    async with OpenAIProvider("m", base_url=script.base_url, api_key="k") as provider:
        response = await provider.chat(ChatRequest(messages=[Message("user", "hi")]))
    assert (response.content, response.raw_stop_reason) == ("Hi", "stop")
    assert compiled(SSEDecoder.feed) == expected()
    assert compiled(ChunkBuilder.build) == expected()
