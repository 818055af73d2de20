"""Run a provider's stream parser on byte pieces, with no I/O: for property tests and fuzzing.

`parse` does what `HTTPProvider._stream` does with a response body (decoder -> translator ->
`ChunkBuilder`, stop at the terminal event, flush, the truncation check, the last chunk) but
takes the body as a list of byte pieces, so that thousands of splits and mutations cost
microseconds each. The same bodies also go through the real HTTP path in the tests, so a
difference between this loop and `_stream` would show up there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chronos.errors import ChronosError, StreamProtocolError
from chronos.model import ChatResponse
from chronos.model._assemble import ChunkBuilder
from chronos.model._provider import HTTPProvider
from chronos.model.anthropic import AnthropicProvider
from chronos.model.bedrock import BedrockProvider
from chronos.model.cohere import CohereProvider
from chronos.model.gemini import GeminiProvider
from chronos.model.ollama import OllamaProvider
from chronos.model.openai import OpenAIProvider
from chronos.model.openai_responses import OpenAIResponsesProvider

__all__ = ["PARSERS", "Outcome", "parse"]


@dataclass(frozen=True)
class Outcome:
    """What a stream parser made of a body: its chunks, and the typed error that ended it."""

    chunks: tuple[ChatResponse, ...]
    error: ChronosError | None

    @property
    def error_kind(self) -> tuple[type[ChronosError], str] | None:
        return None if self.error is None else (type(self.error), str(self.error))


def parse(provider: HTTPProvider, content_type: str, pieces: Iterable[bytes]) -> Outcome:
    """Feed `pieces` to a fresh translator of `provider`, as `_stream` feeds network reads.

    Only a `ChronosError` is caught: any other exception propagates, so a test sees it.
    """
    translator = provider._new_translator()
    out = ChunkBuilder()
    decoder = translator.new_decoder(content_type)
    chunks: list[ChatResponse] = []
    try:
        for raw in pieces:
            for event in decoder.feed(raw):
                translator.translate(event, out)
                chunk = out.build()
                if chunk is not None:
                    chunks.append(chunk)
                if out.ended:
                    break
            if out.ended:
                break
        if not out.ended:
            try:
                tail = decoder.flush()
            except ValueError as exc:  # as _stream: an unterminated JSON array
                raise StreamProtocolError("truncated JSON value") from exc
            for event in tail:
                translator.translate(event, out)
            translator.on_end(out)
        chunks.append(out.finish())
    except ChronosError as exc:
        return Outcome(tuple(chunks), exc)
    return Outcome(tuple(chunks), None)


_KEY = "sk-test-0123456789abcdef"
_URL = "http://127.0.0.1:9"

# One provider per stream parser (translator class x framing), named for test ids.
PARSERS: dict[str, tuple[Callable[[], HTTPProvider], str]] = {
    "openai-chat": (lambda: OpenAIProvider("m", base_url=_URL, api_key=_KEY),
                    "text/event-stream"),
    "openai-responses": (lambda: OpenAIResponsesProvider("m", base_url=_URL, api_key=_KEY),
                         "text/event-stream"),
    "anthropic": (lambda: AnthropicProvider("m", base_url=_URL, api_key=_KEY),
                  "text/event-stream"),
    "gemini-sse": (lambda: GeminiProvider("m", base_url=_URL, api_key=_KEY),
                   "text/event-stream"),
    "gemini-json-array": (lambda: GeminiProvider("m", base_url=_URL, api_key=_KEY),
                          "application/json"),
    "gemini-sniffed": (lambda: GeminiProvider("m", base_url=_URL, api_key=_KEY), ""),
    "ollama": (lambda: OllamaProvider("m", base_url=_URL, api_key=_KEY),
               "application/x-ndjson"),
    "cohere": (lambda: CohereProvider("m", base_url=_URL, api_key=_KEY), "text/event-stream"),
    # AWS credentials come from the environment tests/model/conftest.py sets.
    "bedrock": (lambda: BedrockProvider("m", base_url=_URL, region="us-east-1"),
                "application/vnd.amazon.eventstream"),
}
