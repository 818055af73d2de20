"""Tool calls come out once, complete; usage and stop reason come out on the last chunk."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from chronos.model import (
    ChatResponse,
    StopReason,
    StreamAccumulator,
    ToolCall,
    Usage,
    accumulate,
)
from chronos.model._assemble import ChunkBuilder, ToolCallAssembler


def _calls(chunks: list[ChatResponse]) -> list[ToolCall]:
    # The guide's loop, verbatim.
    tool_calls: list[ToolCall] = []
    for chunk in chunks:
        tool_calls.extend(chunk.tool_calls)
    return tool_calls


Steps = list[list[tuple[str, dict[str, object]]]]


def _chunks(out: ChunkBuilder, steps: Steps) -> list[ChatResponse]:
    chunks = []
    for step in steps:
        for method, kwargs in step:
            getattr(out, method)(**kwargs)
        chunk = out.build()
        if chunk is not None:
            chunks.append(chunk)
    chunks.append(out.finish())
    return chunks


def test_interleaved_parallel_calls_complete_at_the_finish_reason() -> None:
    out = ChunkBuilder()
    chunks = _chunks(out, [
        [("tool_fragment", {"key": 0, "id": "a", "name": "f", "arguments": '{"x":'})],
        [("tool_fragment", {"key": 1, "id": "b", "name": "g", "arguments": '{"y":'})],
        [("tool_fragment", {"key": 0, "arguments": "1}"})],
        [("tool_fragment", {"key": 1, "arguments": "2}"})],
        [("stop", {"raw": "tool_calls", "mapped": StopReason.TOOL_CALL})],
        [("usage", {"usage": Usage(input_tokens=1, output_tokens=2)})],
    ])
    assert _calls(chunks) == [ToolCall("a", "f", '{"x":1}'), ToolCall("b", "g", '{"y":2}')]
    assert all(not c.tool_calls for c in chunks[:4]), "nothing released before it is complete"
    fragments = [d.arguments for c in chunks for d in c.tool_call_deltas]
    assert fragments == ['{"x":', '{"y":', "1}", "2}"]
    last = chunks[-1]
    assert last.stop_reason is StopReason.TOOL_CALL
    assert last.usage == Usage(1, 2)
    assert all(c.usage is None and c.stop_reason is None for c in chunks[:-1])


def test_repeated_id_and_name_are_not_concatenated() -> None:
    calls = ToolCallAssembler()
    calls.fragment(0, id="0", name="llm_version", arguments="")
    calls.fragment(0, id="0", name="llm_version", arguments="{}")
    calls.complete_all()
    assert calls.take() == (ToolCall("0", "llm_version", "{}"),)


def test_missing_ids_get_stable_generated_ids_and_empty_arguments_become_an_object() -> None:
    calls = ToolCallAssembler()
    calls.fragment(0, name="first", arguments=None)
    calls.fragment(1, name="second", arguments="  ")
    calls.whole(id=None, name="third", arguments={"city": "Paris"})
    calls.complete_all()
    assert calls.take() == (
        ToolCall("call_2", "third", '{"city":"Paris"}'),
        ToolCall("call_0", "first", "{}"),
        ToolCall("call_1", "second", "{}"),
    )


def test_a_new_id_under_the_same_key_starts_a_new_call() -> None:
    calls = ToolCallAssembler()
    calls.fragment(0, id="a", name="f", arguments="{}")
    calls.fragment(0, id="b", name="f", arguments='{"n": 2}')
    calls.complete_all()
    assert [c.id for c in calls.take()] == ["a", "b"]


def test_fragments_without_a_key_continue_the_latest_call() -> None:
    calls = ToolCallAssembler()
    calls.fragment("item_1", id="a", name="f", arguments='{"q"')
    calls.fragment(None, arguments=': 1}')
    calls.complete("item_1")
    assert calls.take() == (ToolCall("a", "f", '{"q": 1}'),)


def test_a_call_completed_by_the_vendor_is_released_in_that_chunk() -> None:
    out = ChunkBuilder()
    out.tool_fragment("block0", id="t1", name="f", arguments="{}")
    out.complete_tool("block0")
    chunk = out.build()
    assert chunk is not None
    assert chunk.tool_calls == (ToolCall("t1", "f", "{}"),)
    assert not out.finish().tool_calls, "released once"


def test_calls_still_open_at_end_of_stream_are_released_by_finish() -> None:
    out = ChunkBuilder()
    chunks = _chunks(out, [[("tool_fragment", {"key": 0, "id": "a", "name": "f"})]])
    assert _calls(chunks) == [ToolCall("a", "f", "{}")]
    assert chunks[-1].stop_reason is None


@pytest.mark.anyio
async def test_accumulate_folds_a_stream() -> None:
    out = ChunkBuilder()
    out.id, out.model = "r1", "m"
    chunks = _chunks(out, [
        [("reasoning", {"text": "think "})],
        [("text", {"text": "Hel"})],
        [("text", {"text": "lo"}), ("tool_call", {"id": "c", "name": "f", "arguments": "{}"})],
        [("stop", {"raw": "stop", "mapped": StopReason.END})],
    ])

    async def stream():  # type: ignore[no-untyped-def]
        for chunk in chunks:
            yield chunk

    whole = await accumulate(stream())
    assert whole == ChatResponse(
        content="Hello", id="r1", model="m", reasoning="think ",
        tool_calls=(ToolCall("c", "f", "{}"),), stop_reason=StopReason.END,
        raw_stop_reason="stop", delta=False,
    )


def test_a_built_chunk_is_an_ordinary_frozen_chat_response() -> None:
    out = ChunkBuilder()
    out.id, out.model = "r1", "m"
    out.text("Hi")
    out.tool_call(id="c1", name="f", arguments={"x": 1}, signature="c2ln")
    chunk = out.build()
    assert type(chunk) is ChatResponse
    assert chunk == ChatResponse(
        content="Hi", id="r1", model="m",
        tool_calls=(ToolCall("c1", "f", '{"x":1}', signature="c2ln"),),
        tool_call_deltas=chunk.tool_call_deltas, delta=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.content = "changed"  # type: ignore[misc]
    assert dataclasses.replace(chunk, content="Ho").content == "Ho"
    assert pickle.loads(pickle.dumps(chunk)) == chunk
    assert hash(chunk) == hash(dataclasses.replace(chunk))


def test_refusal_text_is_its_own_field_and_makes_the_stop_a_content_filter() -> None:
    out = ChunkBuilder()
    chunks = _chunks(out, [
        [("refusal", {"text": ""})],  # OpenAI's first chunk carries `"refusal": ""`
        [("refusal", {"text": "I can't"})],
        [("refusal", {"text": " help."}), ("stop", {"raw": "stop", "mapped": StopReason.END})],
    ])
    assert [c.refusal for c in chunks] == ["I can't", " help.", ""]
    assert chunks[-1].stop_reason is StopReason.CONTENT_FILTER
    assert chunks[-1].raw_stop_reason == "stop"
    acc = StreamAccumulator()
    for chunk in chunks:
        acc.add(chunk)
    assert (acc.result().refusal, acc.result().content) == ("I can't help.", "")
    # No refusal: the vendor's END stays END.
    plain = ChunkBuilder()
    plain.text("ok")
    plain.stop("stop", StopReason.END)
    assert plain.finish().stop_reason is StopReason.END
