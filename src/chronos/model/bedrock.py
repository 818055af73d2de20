"""AWS Bedrock, natively: the Converse API (`POST /model/{id}/converse-stream`).

```python
from chronos.model.bedrock import BedrockProvider

provider = BedrockProvider("us.anthropic.claude-sonnet-4-5-20250929-v1:0", region="us-east-1")
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

Needs the `bedrock` extra (`pip install 'chronos-stream[bedrock]'`): requests are signed with
botocore's SigV4 signer, and credentials come from botocore's standard chain (environment,
shared config and credentials files or `profile=`, container and instance roles); an
`AWS_BEARER_TOKEN_BEDROCK` (Bedrock API key) is sent as a bearer token instead. The HTTP is
httpx, as for every provider.

The body is AWS event-stream frames (`_eventstream.py`): `messageStart`, per content block
`contentBlockStart` (tool blocks only) / `contentBlockDelta` / `contentBlockStop`, then
`messageStop` (stop reason) and `metadata` (usage), which ends the stream. Text deltas become
`content`, `reasoningContent.text` becomes `reasoning`; reasoning signatures, redacted
reasoning (opaque bytes) and citations are not text and are skipped. A `toolUse` block
streams its input JSON as string fragments, assembled into one complete call at its
`contentBlockStop`; server tools (`"type": "server_tool_use"`) run on AWS's side and are
not tool calls for the caller. `guardrail_intervened` maps to `StopReason.CONTENT_FILTER`.
Exception frames are typed errors: `throttlingException` → `RateLimitError`,
`validationException` → `BadRequestError`, `internalServerException` and
`serviceUnavailableException` → `ServerError`, `modelStreamErrorException` and the others →
`ProviderStreamError` (with the exception type as `code`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

import anyio
import httpx

from chronos.errors import (
    BadRequestError,
    ConfigurationError,
    ProviderHTTPError,
    RateLimitError,
    ServerError,
    StreamProtocolError,
)
from chronos.model import _http
from chronos.model._assemble import ChunkBuilder
from chronos.model._aws_auth import (
    Credentials,
    ReadOnlyCredentials,
    RefreshableCredentials,
    Session,
    resolve_credentials,
    resolve_region,
    sign,
)
from chronos.model._eventstream import EventStreamDecoder, EventStreamMessage
from chronos.model._provider import Decoder, HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    StopReason,
    TextPart,
    Usage,
)

__all__ = ["BedrockProvider"]

STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "end_turn": StopReason.END,
    "stop_sequence": StopReason.END,
    "tool_use": StopReason.TOOL_CALL,
    "max_tokens": StopReason.MAX_TOKENS,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "guardrail_intervened": StopReason.CONTENT_FILTER,
    "content_filtered": StopReason.CONTENT_FILTER,
}

# Exception frames that mean what an HTTP status means before the stream: same error class,
# and the status the vendor gives that exception when it comes before the stream.
_EXCEPTIONS: Final[Mapping[str, tuple[type[ProviderHTTPError], int]]] = {
    "throttlingException": (RateLimitError, 429),
    "validationException": (BadRequestError, 400),
    "internalServerException": (ServerError, 500),
    "serviceUnavailableException": (ServerError, 503),
}
_IMAGE_FORMATS: Final = frozenset({"png", "jpeg", "gif", "webp"})
def _usage(raw: Mapping[str, Any]) -> Usage:
    # Cache reads and writes are billed apart but are input all the same (as Anthropic's).
    input_tokens = raw.get("inputTokens")
    if input_tokens is not None:
        input_tokens += (raw.get("cacheReadInputTokens") or 0) + (
            raw.get("cacheWriteInputTokens") or 0
        )
    return Usage(
        input_tokens=input_tokens,
        output_tokens=raw.get("outputTokens"),
        total_tokens=raw.get("totalTokens"),
        raw=raw,
        cached_tokens=raw.get("cacheReadInputTokens"),
        cache_write_tokens=raw.get("cacheWriteInputTokens"),
    )


class _WholeBody:
    """The non-streaming `converse` answer: one JSON document, handed over at the end."""

    def __init__(self) -> None:
        self._body = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._body += data
        return []

    def flush(self) -> list[bytes]:
        return [bytes(self._body)]


class _ConverseStream(StreamTranslator):
    """One ConverseStream (or one converse answer); blocks keyed by `contentBlockIndex`."""

    def __init__(self, provider: str, model: str, *, streaming: bool) -> None:
        super().__init__(provider, model)
        self._streaming = streaming
        self._tools: set[int] = set()

    def new_decoder(self, content_type: str = "") -> Decoder:
        # Not from the content type: recorders and proxies drop it, and the API decides.
        if self._streaming:
            return EventStreamDecoder(provider=self.provider, model=self.model)
        return _WholeBody()

    def on_event(self, event: EventStreamMessage | bytes, out: ChunkBuilder) -> None:
        if isinstance(event, bytes):
            self._converse(self.loads(event), out)
            return
        headers = event.headers
        kind = headers.get(":message-type")
        if kind == "event":
            self._event(headers.get(":event-type"), self.loads(event.payload), out)
        elif kind == "exception":
            raise self._exception(str(headers.get(":exception-type")), event.payload)
        elif kind == "error":
            code = str(headers.get(":error-code") or "error")
            message = str(headers.get(":error-message") or "unknown error")
            raise self.stream_error(f"{code}: {message}", code=code)
        else:
            raise StreamProtocolError(
                f"{self.provider}: an event-stream message of unknown type {kind!r}",
                provider=self.provider,
                model=self.model,
            )

    def _event(self, kind: object, data: Mapping[str, Any], out: ChunkBuilder) -> None:
        if kind == "contentBlockDelta":
            self._delta(data["contentBlockIndex"], data["delta"], out)
        elif kind == "contentBlockStart":
            tool = data["start"].get("toolUse")
            if tool is not None and tool.get("type") != "server_tool_use":
                index = data["contentBlockIndex"]
                self._tools.add(index)
                out.tool_fragment(index, id=tool.get("toolUseId"), name=tool.get("name"))
        elif kind == "contentBlockStop":
            index = data["contentBlockIndex"]
            if index in self._tools:
                self._tools.discard(index)
                out.complete_tool(index)
        elif kind == "messageStop":
            reason = data["stopReason"]
            out.stop(reason, STOP_REASONS.get(reason, StopReason.OTHER))
        elif kind == "metadata":
            if data.get("usage"):
                out.usage(_usage(data["usage"]))
            out.end_stream()
        # messageStart (the role) and event types added later carry nothing to deliver.

    def _delta(self, index: int, delta: Mapping[str, Any], out: ChunkBuilder) -> None:
        if "text" in delta:
            out.text(delta["text"])
        elif "reasoningContent" in delta:
            # `signature` and `redactedContent` go with the reasoning but are not text.
            out.reasoning(delta["reasoningContent"].get("text") or "")
        elif "toolUse" in delta and index in self._tools:
            out.tool_fragment(index, arguments=delta["toolUse"].get("input"))
        # citation and server toolResult deltas: metadata of text already delivered.

    def _converse(self, data: Mapping[str, Any], out: ChunkBuilder) -> None:
        for block in data["output"]["message"]["content"]:
            if "text" in block:
                out.text(block["text"])
            elif "reasoningContent" in block:
                out.reasoning((block["reasoningContent"].get("reasoningText") or {}).get("text")
                              or "")
            elif "toolUse" in block and block["toolUse"].get("type") != "server_tool_use":
                tool = block["toolUse"]
                out.tool_call(id=tool.get("toolUseId"), name=tool["name"],
                              arguments=tool.get("input"))
        reason = data["stopReason"]
        out.stop(reason, STOP_REASONS.get(reason, StopReason.OTHER))
        if data.get("usage"):
            out.usage(_usage(data["usage"]))
        out.end_stream()

    def _exception(self, exception_type: str, payload: bytes) -> Exception:
        body = self.loads(payload) if payload else {}
        message = str(body.get("message") or body.get("Message") or "")
        mapped = _EXCEPTIONS.get(exception_type)
        if mapped is None:
            return self.stream_error(f"{exception_type}: {message}", code=exception_type)
        error_class, status = mapped
        return error_class(
            f"{self.provider} sent {exception_type} mid-stream: "
            + _http.redact(message, self.secret),
            status_code=status,
            provider=self.provider,
            model=self.model,
            body=_http.redact(payload[:2000].decode("utf-8", "replace"), self.secret),
        )

    def on_end(self, out: ChunkBuilder) -> None:
        # `metadata` is always last; a body that ends before it lost the usage, at least.
        if not out.ended:
            raise StreamProtocolError(
                f"{self.provider}: the stream ended before its metadata event (truncated)",
                provider=self.provider,
                model=self.model,
            )


def _content_blocks(content: str | Sequence[ContentPart]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            blocks.append({"text": part.text})
        elif isinstance(part, ImagePart):
            blocks.append({"image": _image(part)})
    return blocks


def _image(part: ImagePart) -> dict[str, Any]:
    image_format = part.media_type.rpartition("/")[2].lower().replace("jpg", "jpeg")
    if image_format not in _IMAGE_FORMATS:
        raise ConfigurationError(f"bedrock: unsupported image type {part.media_type!r}")
    if part.data is not None:
        return {"format": image_format, "source": {"bytes": part.data}}
    if part.url is not None and part.url.startswith("s3://"):
        return {"format": image_format, "source": {"s3Location": {"uri": part.url}}}
    raise ConfigurationError("bedrock: an image must be inline data or an s3:// URL")


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Converse messages; tool results ride in a user turn, consecutive same-role turns merge."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            role = "user"
            blocks: list[dict[str, Any]] = [{"toolResult": {
                "toolUseId": message.tool_call_id, "content": [{"text": message.text}]}}]
        else:
            role = message.role
            blocks = _content_blocks(message.content)
            blocks += [{"toolUse": {"toolUseId": call.id, "name": call.name,
                                    "input": call.parsed_arguments()}}
                       for call in message.tool_calls]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


class BedrockProvider(HTTPProvider):
    """Amazon Bedrock's Converse API, streamed, with SigV4-signed requests.

    ```python
    provider = BedrockProvider("us.amazon.nova-micro-v1:0")          # region from AWS_REGION
    provider = BedrockProvider("anthropic.claude-3-haiku-20240307-v1:0",
                               region="eu-west-1", profile="work")
    ```

    Args:
        model: a model id, inference profile id or ARN.
        region: defaults to the AWS configuration's (`AWS_REGION`, the profile's `region`).
        profile: a profile of the shared AWS config and credentials files.
        credentials: botocore credentials to use instead of the standard chain.
        streaming: False calls `converse` (the answer arrives as one chunk), for gateways
            that cannot stream.
        **kwargs: as for every HTTP provider (`base_url`, timeouts, `retry`, ...); `api_key`
            is a Bedrock API key, sent as a bearer token instead of signing.

    `ChatRequest.response_format` and `seed` have no Converse equivalent and are not sent;
    `metadata` goes out as `requestMetadata`.

    Raises:
        ConfigurationError: no region, or neither an API key nor AWS credentials were found.
    """

    name = "bedrock"
    api_key_env = ("AWS_BEARER_TOKEN_BEDROCK",)
    api_key_required = False

    def __init__(
        self,
        model: str = "us.amazon.nova-micro-v1:0",
        *,
        region: str | None = None,
        profile: str | None = None,
        credentials: Credentials | None = None,
        streaming: bool = True,
        **kwargs: Any,
    ) -> None:
        session = Session(profile=profile)
        self.region = resolve_region(session, region)
        kwargs.setdefault("base_url", f"https://bedrock-runtime.{self.region}.amazonaws.com")
        super().__init__(model, **kwargs)
        self.streaming = streaming
        self._credentials: Credentials | None = None
        if self._api_key is None:
            self._credentials = credentials or resolve_credentials(session)
        self._frozen: ReadOnlyCredentials | None = None

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        body: dict[str, Any] = {"messages": _messages(req.messages)}
        system = [{"text": m.text} for m in req.messages if m.role == "system" and m.text]
        if system:
            body["system"] = system
        inference: dict[str, Any] = {}
        for option, field in (("maxTokens", req.max_tokens), ("temperature", req.temperature),
                              ("topP", req.top_p)):
            if field is not None:
                inference[option] = field
        if req.stop:
            inference["stopSequences"] = list(req.stop)
        if inference:
            body["inferenceConfig"] = inference
        if req.tools:
            body["toolConfig"] = {"tools": [
                {"toolSpec": {"name": t.name, "description": t.description or t.name,
                              "inputSchema": {"json": dict(t.parameters)}}}
                for t in req.tools
            ]}
        if req.metadata:
            body["requestMetadata"] = dict(req.metadata)
        # Encoded as botocore encodes a URI label: ids and ARNs hold ":" and "/".
        model = quote(req.model or self.model, safe="-._~")
        action = "converse-stream" if self.streaming else "converse"
        accept = "application/vnd.amazon.eventstream" if self.streaming else "application/json"
        return VendorRequest(path=f"/model/{model}/{action}", json=body,
                             headers={"accept": accept})

    def _new_translator(self) -> StreamTranslator:
        return _ConverseStream(self.name, self.model, streaming=self.streaming)

    async def _open(self, req: ChatRequest) -> httpx.Response:
        credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials):
            # Refreshing role credentials is a blocking call to STS or the metadata service.
            self._frozen = await anyio.to_thread.run_sync(credentials.get_frozen_credentials)
        elif credentials is not None:
            self._frozen = credentials.get_frozen_credentials()
        return await super()._open(req)

    def _http_request(self, req: ChatRequest) -> httpx.Request:
        request = super()._http_request(req)
        if self._frozen is not None:
            sign(request, self._frozen, service="bedrock", region=self.region)
        return request

    def _secret(self) -> str | None:
        # The secret access key never goes on the wire, so no answer can quote it; the
        # session token does.
        if self._api_key is None and self._frozen is not None:
            return self._frozen.token
        return self._api_key

    def _forget_key(self, request: httpx.Request) -> None:
        super()._forget_key(request)
        request.headers.pop("authorization", None)
        request.headers.pop("x-amz-security-token", None)

