"""A provider stream decodes, translates and assembles through the build this pass expects:
the mypyc-compiled `_decode`, `_assemble` and vendor translations in the compiled pass, the
source otherwise (see tests/compiled.py)."""

from __future__ import annotations

import pytest

from chronos.model import AnthropicProvider, ChatRequest, Message, OpenAIProvider
from chronos.model._anthropic_translate import MessagesEvents
from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEDecoder
from chronos.model._openai_translate import ChatCompletionsEvents
from chronos.model._provider import StreamTranslator
from chronos.model._translate import EventTranslation
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
    assert compiled(ChunkBuilder.chunks) == expected()
    assert compiled(ChatCompletionsEvents.on_event) == expected()
    assert compiled(MessagesEvents.on_event) == expected()
    assert compiled(EventTranslation.translate) == expected()
    assert compiled(EventTranslation.chunks) == expected()


def test_the_vendor_translators_stay_interpreted_and_subclassable() -> None:
    # Users subclass translators (the `_provider` docstring teaches it): only the per-event
    # work they delegate to is compiled.
    for provider in (OpenAIProvider("m", api_key="k"), AnthropicProvider("m", api_key="k")):
        translator = provider._new_translator()
        assert isinstance(translator, StreamTranslator)
        assert not compiled(type(translator).on_event)

        class Subclass(type(translator)):  # type: ignore[misc]
            pass

        assert isinstance(Subclass("p", "m"), StreamTranslator)
