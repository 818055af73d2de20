"""Google Gemini API (`models/{model}:streamGenerateContent`).

```python
from chronos.model.gemini import GeminiProvider

provider = GeminiProvider("gemini-2.5-flash")               # key from GEMINI_API_KEY
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="")
```

By default the request asks for Server-Sent Events (`?alt=sse`): `data:` events, no event
names, no `[DONE]`. Without `alt=sse` the server streams one JSON array instead, element by
element; which of the two arrived is read from the response's content type, so both work.
Each event is a `GenerateContentResponse`: parts with `"thought": true` are reasoning, other
text parts are content, a `functionCall` arrives whole (usually without an id) and its
part's `thoughtSignature` is kept in `ToolCall.signature` and sent back with the call in the
next turn (Gemini 3 refuses a function call turn without it; the signatures on text parts
are optional to return and are not kept), `usageMetadata` is repeated and grows (the last
wins), and `finishReason` is a name (`STOP`) or, with `enum-encoding=int`, its number (`1`).

The key travels in the `x-goog-api-key` header, never in the URL, so it cannot leak into an
error message or a log line that shows the URL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import JSONArrayDecoder, SSEDecoder, SSEEvent
from chronos.model._provider import Decoder, HTTPProvider, StreamTranslator, VendorRequest
from chronos.model._types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    Message,
    StopReason,
    TextPart,
    ToolCall,
    Usage,
)

__all__ = ["GeminiProvider"]

GEMINI_BASE_URL: Final = "https://generativelanguage.googleapis.com/v1beta"

_FILTERED: Final = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "STOP": StopReason.END,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    **{name: StopReason.CONTENT_FILTER for name in _FILTERED},
}
# `Candidate.FinishReason` numbers, sent instead of names with `$alt=json;enum-encoding=int`.
_FINISH_NUMBERS: Final[Mapping[int, str]] = {
    1: "STOP", 2: "MAX_TOKENS", 3: "SAFETY", 4: "RECITATION", 5: "OTHER", 6: "LANGUAGE",
    7: "BLOCKLIST", 8: "PROHIBITED_CONTENT", 9: "SPII", 10: "MALFORMED_FUNCTION_CALL",
    11: "IMAGE_SAFETY",
}


def _stop_reason(raw: str | int) -> StopReason:
    name = _FINISH_NUMBERS.get(raw, "") if isinstance(raw, int) else raw
    return STOP_REASONS.get(name, StopReason.OTHER)


def _usage(raw: Mapping[str, Any]) -> Usage:
    # Thinking tokens are billed as output but counted apart from the candidates' tokens.
    output = raw.get("candidatesTokenCount")
    if raw.get("thoughtsTokenCount") is not None:
        output = (output or 0) + raw["thoughtsTokenCount"]
    return Usage(
        input_tokens=raw.get("promptTokenCount"),
        output_tokens=output,
        total_tokens=raw.get("totalTokenCount"),
        raw=raw,
        reasoning_tokens=raw.get("thoughtsTokenCount"),
        cached_tokens=raw.get("cachedContentTokenCount"),
    )


class _GenerateContentStream(StreamTranslator):
    """One stream of `GenerateContentResponse`s, as SSE events or JSON array elements."""

    def __init__(self, provider: str, model: str) -> None:
        super().__init__(provider, model)
        self._array: JSONArrayDecoder | None = None

    def new_decoder(self, content_type: str = "") -> Decoder:
        if "event-stream" in content_type:
            return SSEDecoder()
        if "json" in content_type:
            return self._json()
        return _Sniffer(self)  # a proxy that lost or changed the content type

    def _json(self) -> JSONArrayDecoder:
        # A streamed JSON array, or generateContent's single object (one element).
        self._array = JSONArrayDecoder()
        return self._array

    def on_event(self, event: SSEEvent | bytes, out: ChunkBuilder) -> None:
        data = self.loads(event.data if isinstance(event, SSEEvent) else event)
        if not isinstance(data, dict):
            raise self.stream_error(f"unexpected element {str(data)[:200]!r}")
        error = data.get("error")
        if error:
            if isinstance(error, dict):
                code = error.get("status") or error.get("code")
                raise self.stream_error(str(error.get("message") or error),
                                        code=str(code) if code is not None else None)
            raise self.stream_error(str(error))
        if data.get("responseId"):
            out.id = data["responseId"]
        if data.get("modelVersion"):
            out.model = data["modelVersion"]
        if data.get("usageMetadata"):
            out.usage(_usage(data["usageMetadata"]))
        for candidate in data.get("candidates") or ():
            if candidate.get("index", 0) == 0:
                self._candidate(candidate, out)
        blocked = (data.get("promptFeedback") or {}).get("blockReason")
        if blocked:  # the prompt itself was refused: there are no candidates
            out.stop(str(blocked), StopReason.CONTENT_FILTER)

    @staticmethod
    def _candidate(candidate: Mapping[str, Any], out: ChunkBuilder) -> None:
        for part in (candidate.get("content") or {}).get("parts") or ():
            text = part.get("text")
            if text:
                if part.get("thought"):
                    out.reasoning(text)
                else:
                    out.text(text)
            call = part.get("functionCall")
            if call:
                out.tool_call(id=call.get("id"), name=call.get("name") or "",
                              arguments=call.get("args") or {},
                              signature=part.get("thoughtSignature"))
            # executableCode / codeExecutionResult run on Google's side: not text, and not a
            # call for the caller.
        finish = candidate.get("finishReason")
        if finish is not None:
            out.stop(str(finish), _stop_reason(finish))

    def on_end(self, out: ChunkBuilder) -> None:
        # SSE has no terminal event, so a finish reason marks a complete stream; a JSON
        # array is complete when it closed.
        if self._array is not None and self._array.closed:
            out.allow_end()
        super().on_end(out)


class _Sniffer:
    """Picks the framing from the first byte: JSON starts with `[` or `{`, SSE never does."""

    __slots__ = ("_decoder", "_stream")

    def __init__(self, stream: _GenerateContentStream) -> None:
        self._stream = stream
        self._decoder: Decoder | None = None

    def feed(self, data: bytes) -> list[Any]:
        if self._decoder is None:
            head = data.lstrip()
            if not head:
                return []  # whitespace so far (JSONArrayDecoder skips it too)
            self._decoder = self._stream._json() if head[:1] in b"[{" else SSEDecoder()
        return self._decoder.feed(data)

    def flush(self) -> list[Any]:
        return self._decoder.flush() if self._decoder is not None else []


def _parts(content: str | Sequence[ContentPart]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            if part.url:
                parts.append({"fileData": {"mimeType": part.media_type, "fileUri": part.url}})
            else:
                parts.append({"inlineData": {"mimeType": part.media_type, "data": part.data}})
    return parts


def _function_call_part(call: ToolCall) -> dict[str, Any]:
    part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.parsed_arguments()}}
    if call.signature:
        part["thoughtSignature"] = call.signature
    return part


def _contents(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system parts, contents). Tool results name their function, which Gemini requires."""
    names = {call.id: call.name for m in messages for call in m.tool_calls}
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            system.extend(_parts(message.content))
            continue
        if message.role == "tool":
            role = "user"
            name = message.name or names.get(message.tool_call_id or "", "")
            parts = [{"functionResponse": {"name": name, "response": {"content": message.text}}}]
        else:
            role = "model" if message.role == "assistant" else "user"
            parts = _parts(message.content)
            parts += [_function_call_part(call) for call in message.tool_calls]
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)  # turns alternate; parallel results join
        else:
            contents.append({"role": role, "parts": parts})
    return system, contents


class GeminiProvider(HTTPProvider):
    """Google's Gemini API, streamed.

    ```python
    provider = GeminiProvider("gemini-2.5-flash")
    response = await provider.chat(req)
    ```

    The key comes from `GEMINI_API_KEY` or `GOOGLE_API_KEY` unless given. `query` is the
    query string of the request, `alt=sse` by default when streaming; another one (`""`,
    or the Go SDK's `$alt=json;enum-encoding=int`) gets a streamed JSON array, which is
    understood as well.
    Thinking models send their thought summaries (as `chunk.reasoning`) only with
    `include_thoughts=True`; `thinking_budget` caps their thinking tokens (0 turns it off
    where the model allows). `streaming=False` calls `generateContent`, for gateways that
    cannot stream: the answer then arrives as a single chunk. A `base_url` of Vertex AI's
    form (`.../v1/projects/P/locations/L/publishers/google`) works the same way.
    """

    name = "gemini"
    default_base_url = GEMINI_BASE_URL
    api_key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def __init__(
        self,
        model: str = "gemini-2.5-flash",
        *,
        query: str | None = None,
        streaming: bool = True,
        include_thoughts: bool = False,
        thinking_budget: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.query = query
        self.streaming = streaming
        self.include_thoughts = include_thoughts
        self.thinking_budget = thinking_budget

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        system, contents = _contents(req.messages)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        config: dict[str, Any] = {}
        for field, value in (("maxOutputTokens", req.max_tokens), ("topP", req.top_p),
                             ("temperature", req.temperature), ("seed", req.seed)):
            if value is not None:
                config[field] = value
        if req.stop:
            config["stopSequences"] = list(req.stop)
        if req.response_format is not None:
            config["responseMimeType"] = "application/json"
            schema = (req.response_format.get("json_schema") or {}).get("schema")
            if schema:
                config["responseJsonSchema"] = schema
        thinking: dict[str, Any] = {}
        if self.include_thoughts:
            thinking["includeThoughts"] = True
        if self.thinking_budget is not None:
            thinking["thinkingBudget"] = self.thinking_budget
        if thinking:
            config["thinkingConfig"] = thinking
        if config:
            body["generationConfig"] = config
        if req.tools:
            body["tools"] = [{"functionDeclarations": [
                {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
                for t in req.tools
            ]}]
        model = (req.model or self.model).removeprefix("models/")
        method = "streamGenerateContent" if self.streaming else "generateContent"
        # The URL is built whole so the query goes out exactly as given (httpx would
        # percent-encode `$` and `;` in params).
        url = f"{self.base_url}/models/{model}:{method}"
        query = self.query if self.query is not None else ("alt=sse" if self.streaming else "")
        if query:
            url += "?" + query
        return VendorRequest(url=url, json=body)

    def _new_translator(self) -> StreamTranslator:
        return _GenerateContentStream(self.name, self.model)
