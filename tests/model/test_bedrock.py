"""The native Bedrock provider over the real replay server: signing, request, stream, errors.

The recorded ConverseStream bodies are replayed by `test_recordings.py`; this file covers
what the recordings do not: the SigV4 signature (checked by an independent implementation of
AWS's algorithm, as the service would check it), the Converse request body, the bearer-token
mode, mid-stream exception frames, and truncation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from typing import Any
from urllib.parse import quote

import pytest

from chronos.errors import (
    BadRequestError,
    ConfigurationError,
    ProviderStreamError,
    RateLimitError,
    ServerError,
    StreamProtocolError,
)
from chronos.model import (
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    RetryPolicy,
    StopReason,
    TextPart,
    ToolCall,
    ToolDefinition,
)
from chronos.model.bedrock import BedrockProvider
from tests.model.conftest import AWS_ENVIRONMENT
from tests.model.eventstream_frames import event, exception, frame
from tests.model.replay import Exchange, ReplayServer, Reply

REQ = ChatRequest(messages=[Message(role="user", content="Hello")])
SECRET = AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"]
TOKEN = "FwoGZXIvYXdzEXAMPLE-session-token-chronos"
EVENT_STREAM = {"content-type": "application/vnd.amazon.eventstream"}


def _stream(*texts: str, stop: str = "end_turn") -> bytes:
    frames = [event("messageStart", {"role": "assistant"})]
    frames += [event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": t}})
               for t in texts]
    frames += [event("contentBlockStop", {"contentBlockIndex": 0}),
               event("messageStop", {"stopReason": stop}),
               event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2,
                                            "totalTokens": 5}})]
    return b"".join(frames)


def _provider(base_url: str, **options: Any) -> BedrockProvider:
    provider = BedrockProvider("anthropic.claude-3-haiku-20240307-v1:0", base_url=base_url,
                               **options)
    provider.retry = RetryPolicy(max_retries=0)
    return provider


async def _collect(
    provider: BedrockProvider, req: ChatRequest = REQ, into: list[ChatResponse] | None = None
) -> list[ChatResponse]:
    chunks = [] if into is None else into
    async with provider:
        async for chunk in provider.stream_chat(req):
            chunks.append(chunk)
    return chunks


def _sigv4_signature(exchange: Exchange, secret: str) -> tuple[str, str]:
    """(signature sent, signature expected): AWS's algorithm, written from its documentation."""
    authorization = exchange.headers["authorization"]
    algorithm, _, fields = authorization.partition(" ")
    assert algorithm == "AWS4-HMAC-SHA256"
    parts = dict(item.strip().split("=", 1) for item in fields.split(","))
    access_key, date, region, service, terminator = parts["Credential"].split("/")
    assert (access_key, region, service, terminator) == (
        AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"], "us-east-1", "bedrock", "aws4_request")
    signed = parts["SignedHeaders"].split(";")
    assert {"host", "x-amz-date"} <= set(signed)
    path, _, query = exchange.path.partition("?")
    canonical = "\n".join([
        exchange.method,
        quote(path, safe="/~"),  # every service but S3 encodes the sent path once more
        query,
        "".join(f"{name}:{exchange.headers[name].strip()}\n" for name in signed),
        ";".join(signed),
        hashlib.sha256(exchange.body).hexdigest(),
    ])
    amz_date = exchange.headers["x-amz-date"]
    assert amz_date.startswith(date)
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for item in (date, region, service, "aws4_request"):
        key = hmac.new(key, item.encode(), hashlib.sha256).digest()
    return parts["Signature"], hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.mark.anyio
async def test_requests_are_signed_with_sigv4_as_aws_checks_them(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(Reply(body=_stream("Hi"), headers=EVENT_STREAM))
    chunks = await _collect(_provider(script.base_url))
    assert "".join(c.content for c in chunks) == "Hi"
    exchange = script.exchanges[0]
    assert exchange.path == (
        f"{script.prefix}/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    sent, expected = _sigv4_signature(exchange, SECRET)
    assert sent == expected
    assert "x-amz-security-token" not in exchange.headers


@pytest.mark.anyio
async def test_a_session_token_is_signed_and_never_logged(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = TOKEN
    monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    script = replay_server.script(Reply(body=_stream("Hi"), headers=EVENT_STREAM))
    with caplog.at_level(logging.DEBUG):
        await _collect(_provider(script.base_url))
    exchange = script.exchanges[0]
    assert exchange.headers["x-amz-security-token"] == token
    assert "x-amz-security-token" in exchange.headers["authorization"]
    sent, expected = _sigv4_signature(exchange, SECRET)
    assert sent == expected
    assert any("CanonicalRequest" in record.getMessage() for record in caplog.records)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in logged
    assert SECRET not in logged


@pytest.mark.anyio
async def test_a_bedrock_api_key_is_a_bearer_token_instead_of_a_signature(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-chronos-test")
    script = replay_server.script(Reply(body=_stream("Hi"), headers=EVENT_STREAM))
    await _collect(_provider(script.base_url))
    headers = script.exchanges[0].headers
    assert headers["authorization"] == "Bearer bedrock-api-key-chronos-test"
    assert "x-amz-date" not in headers


@pytest.mark.anyio
async def test_the_request_is_a_converse_body(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_stream("ok"), headers=EVENT_STREAM))
    req = ChatRequest(
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content=[TextPart("What is this?"),
                                          ImagePart(data="aGk=", media_type="image/jpeg")]),
            Message(role="assistant", content="Looking.", tool_calls=[
                ToolCall(id="t1", name="look", arguments='{"at": "image"}'),
                ToolCall(id="t2", name="zoom", arguments="{}")]),
            Message(role="tool", content="a cat", tool_call_id="t1"),
            Message(role="tool", content="2x", tool_call_id="t2"),
        ],
        model="us.amazon.nova-micro-v1:0", max_tokens=50, temperature=0.2, stop=["END"],
        tools=[ToolDefinition("look", "Look at something",
                              {"type": "object", "properties": {"at": {"type": "string"}}})],
        metadata={"user": "u1"},
    )
    await _collect(_provider(script.base_url), req)
    exchange = script.exchanges[0]
    assert exchange.path.endswith("/model/us.amazon.nova-micro-v1%3A0/converse-stream")
    assert exchange.headers["accept"] == "application/vnd.amazon.eventstream"
    assert json.loads(exchange.body) == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"text": "What is this?"},
                {"image": {"format": "jpeg", "source": {"bytes": "aGk="}}}]},
            {"role": "assistant", "content": [
                {"text": "Looking."},
                {"toolUse": {"toolUseId": "t1", "name": "look", "input": {"at": "image"}}},
                {"toolUse": {"toolUseId": "t2", "name": "zoom", "input": {}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "t1", "content": [{"text": "a cat"}]}},
                {"toolResult": {"toolUseId": "t2", "content": [{"text": "2x"}]}}]},
        ],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "stopSequences": ["END"]},
        "toolConfig": {"tools": [{"toolSpec": {
            "name": "look", "description": "Look at something",
            "inputSchema": {"json": {"type": "object",
                                     "properties": {"at": {"type": "string"}}}}}}]},
        "requestMetadata": {"user": "u1"},
    }


@pytest.mark.anyio
async def test_an_image_url_bedrock_cannot_fetch_is_a_configuration_error(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script()
    req = ChatRequest(messages=[Message(role="user", content=[
        ImagePart(url="https://example.com/cat.png")])])
    with pytest.raises(ConfigurationError, match="s3://"):
        await _collect(_provider(script.base_url), req)
    assert script.exchanges == []


@pytest.mark.anyio
@pytest.mark.parametrize(("exception_type", "error_class"), [
    ("throttlingException", RateLimitError),
    ("validationException", BadRequestError),
    ("serviceUnavailableException", ServerError),
    ("modelStreamErrorException", ProviderStreamError),
    ("someFutureException", ProviderStreamError),
])
async def test_an_exception_frame_mid_stream_is_a_typed_error_after_the_text_before_it(
    replay_server: ReplayServer, exception_type: str, error_class: type[Exception],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The session token goes on the wire, so a vendor message may quote it: it is redacted.
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    body = _stream("Hel")
    body = body[: body.index(event("contentBlockStop", {"contentBlockIndex": 0}))]
    body += exception(exception_type, {"message": f"stop {TOKEN}", "originalStatusCode": 500})
    script = replay_server.script(Reply(body=body, headers=EVENT_STREAM))
    chunks: list[ChatResponse] = []
    with pytest.raises(error_class) as info:
        await _collect(_provider(script.base_url), into=chunks)
    assert "".join(c.content for c in chunks) == "Hel"
    assert "stop" in str(info.value)
    assert exception_type in str(info.value)
    assert TOKEN not in repr(info.value) + str(vars(info.value))
    if isinstance(info.value, ProviderStreamError):
        assert info.value.code == exception_type


@pytest.mark.anyio
async def test_an_error_message_frame_is_a_provider_stream_error(
    replay_server: ReplayServer,
) -> None:
    body = event("messageStart", {"role": "assistant"}) + frame(
        {":message-type": "error", ":error-code": "InternalFailure",
         ":error-message": "something broke"}, b"")
    script = replay_server.script(Reply(body=body, headers=EVENT_STREAM))
    with pytest.raises(ProviderStreamError, match="something broke") as info:
        await _collect(_provider(script.base_url))
    assert info.value.code == "InternalFailure"


@pytest.mark.anyio
async def test_a_stream_cut_before_its_metadata_is_truncated(replay_server: ReplayServer) -> None:
    body = _stream("Hi")
    body = body[: body.rindex(event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 2,
                                                           "totalTokens": 5}}))]
    for cut in (body, body + b"\x00\x00\x00"):
        script = replay_server.script(Reply(body=cut, headers=EVENT_STREAM))
        with pytest.raises(StreamProtocolError, match="truncated"):
            await _collect(_provider(script.base_url))


@pytest.mark.anyio
async def test_the_stream_carries_stop_reason_usage_and_guardrails(
    replay_server: ReplayServer,
) -> None:
    script = replay_server.script(Reply(body=_stream("{ADDRESS}", stop="guardrail_intervened"),
                                        headers=EVENT_STREAM))
    chunks = await _collect(_provider(script.base_url))
    last = chunks[-1]
    assert last.stop_reason is StopReason.CONTENT_FILTER
    assert last.raw_stop_reason == "guardrail_intervened"
    assert last.usage is not None
    assert (last.usage.input_tokens, last.usage.output_tokens) == (3, 2)


def test_the_sync_twin_streams_too(replay_server: ReplayServer) -> None:
    script = replay_server.script(Reply(body=_stream("a", "b"), headers=EVENT_STREAM))
    provider = _provider(script.base_url)
    assert "".join(c.content for c in provider.stream_chat_sync(REQ)) == "ab"


def test_without_credentials_or_region_the_provider_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigurationError, match="no AWS credentials"):
        BedrockProvider("m")
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds")
    with pytest.raises(ConfigurationError, match="cannot load AWS credentials"):
        BedrockProvider("m")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    with pytest.raises(ConfigurationError, match="no AWS region"):
        BedrockProvider("m")


def test_the_secret_is_in_no_repr() -> None:
    provider = BedrockProvider("m")
    assert SECRET not in repr(provider)
    assert provider.base_url == "https://bedrock-runtime.us-east-1.amazonaws.com"


@pytest.mark.anyio
async def test_streaming_false_calls_converse_and_gives_one_chunk(
    replay_server: ReplayServer,
) -> None:
    answer = {
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "c2ln"}}},
            {"text": "Calling."},
            {"toolUse": {"toolUseId": "t1", "name": "look", "input": {"at": "x"}}},
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 4, "outputTokens": 6, "totalTokens": 15,
                  "cacheReadInputTokens": 5},
    }
    script = replay_server.script(Reply(body=json.dumps(answer).encode(),
                                        headers={"content-type": "application/json"}))
    chunks = await _collect(_provider(script.base_url, streaming=False))
    assert script.exchanges[0].path.endswith("/converse")
    assert script.exchanges[0].headers["accept"] == "application/json"
    [chunk] = chunks
    assert (chunk.reasoning, chunk.content) == ("Think.", "Calling.")
    assert [(c.id, c.name, json.loads(c.arguments)) for c in chunk.tool_calls] == [
        ("t1", "look", {"at": "x"})]
    assert chunk.stop_reason is StopReason.TOOL_CALL
    assert chunk.usage is not None
    assert (chunk.usage.input_tokens, chunk.usage.total_tokens) == (9, 15)
