"""Recorded vendor streams, and which provider replays each of them.

The folder is `CHRONOS_VENDOR_STREAMS` if set, else the public set kept in the repository
(`tests/fixtures/vendor-streams/`, with its SOURCES.md and licences). Every `*.json` file
in it (any name, any depth, `index.json` aside) is one recording; which provider serves it is
decided from its `api` field and request path, never from its file name.

To register a new vendor: write a factory `(recording, server_url) -> provider` that points
the provider at `server_url` (the replay server's base, to which the recording's request path
is appended) and add it to `PROVIDERS` under the recording's `api`; delete that api from
`NOT_YET`. The suite in `test_recordings.py` then replays all its recordings.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from chronos.model import StopReason
from chronos.model._provider import HTTPProvider
from chronos.model.anthropic import AnthropicProvider
from chronos.model.bedrock import BedrockProvider
from chronos.model.cohere import CohereProvider
from chronos.model.gemini import GeminiProvider
from chronos.model.ollama import OllamaProvider
from chronos.model.openai import AzureOpenAIProvider, OpenAIProvider
from chronos.model.openai_responses import OpenAIResponsesProvider

DEFAULT_FOLDER = Path(__file__).resolve().parents[1] / "fixtures" / "vendor-streams"
API_KEY = "sk-test-0123456789abcdef"


@dataclass(frozen=True)
class Recording:
    """One recorded HTTP interaction (format: the fixtures folder's README)."""

    path: Path
    data: Mapping[str, Any]

    @property
    def api(self) -> str:
        return str(self.data.get("api", ""))

    @property
    def request_path(self) -> str:
        return str(self.data["request"]["path"])

    @property
    def status(self) -> int:
        return int(self.data["response"]["status"])

    @property
    def body(self) -> bytes:
        response = self.data["response"]
        if response.get("body_b64"):  # a binary body (AWS event-stream)
            return base64.b64decode(response["body_b64"])
        return str(response["body"]).encode()

    @property
    def content_type(self) -> str:
        headers = self.data["response"].get("headers") or {}
        return str(headers.get("content-type") or "application/json")

    @property
    def expected(self) -> Mapping[str, Any]:
        return self.data.get("expected") or {}


def folder() -> Path:
    return Path(os.environ.get("CHRONOS_VENDOR_STREAMS") or DEFAULT_FOLDER)


def load_all() -> list[Recording]:
    root = folder()
    recordings = []
    if not root.is_dir():
        raise FileNotFoundError(f"no recordings folder at {root} (set CHRONOS_VENDOR_STREAMS)")
    for path in sorted(root.rglob("*.json")):
        if path.name == "index.json":
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and "response" in data and "request" in data:
            recordings.append(Recording(path, data))
    return recordings


def recording_id(recording: Recording) -> str:
    return str(recording.path.relative_to(folder()))


# --- providers per api ------------------------------------------------------------------------

ProviderFactory = Callable[[Recording, str], HTTPProvider]


def _openai_chat(recording: Recording, server_url: str) -> HTTPProvider:
    """Chat Completions: plain OpenAI-compatible, Azure deployment URL, or Azure AI `/models`."""
    url = urlsplit(recording.request_path)
    prefix = url.path.rsplit("/chat/completions", 1)[0]
    query = parse_qs(url.query)
    model = str(recording.data["request"].get("json", {}).get("model") or "test-model")
    if "api-version" in query:
        api_version = query["api-version"][0]
        if "/openai/deployments/" in prefix:
            endpoint, deployment = prefix.split("/openai/deployments/", 1)
            return AzureOpenAIProvider(
                deployment,
                endpoint=server_url + endpoint,
                api_version=api_version,
                api_key=API_KEY,
            )
        return AzureOpenAIProvider(
            base_url=server_url + prefix, model=model, api_version=api_version, api_key=API_KEY
        )
    return OpenAIProvider(model, base_url=server_url + prefix, api_key=API_KEY)


def _openai_responses(recording: Recording, server_url: str) -> HTTPProvider:
    prefix = urlsplit(recording.request_path).path.rsplit("/responses", 1)[0]
    model = str(recording.data["request"].get("json", {}).get("model") or "test-model")
    return OpenAIResponsesProvider(model, base_url=server_url + prefix, api_key=API_KEY)


def _model(recording: Recording) -> str:
    return str(recording.data["request"].get("json", {}).get("model") or "test-model")


def _anthropic(recording: Recording, server_url: str) -> HTTPProvider:
    url = urlsplit(recording.request_path)
    prefix = url.path.rsplit("/messages", 1)[0]
    betas: tuple[str, ...] = ()
    if "beta" in parse_qs(url.query):
        # The recorders dropped the anthropic-beta header; any beta name gives ?beta=true.
        header = (recording.data["request"].get("headers") or {}).get("anthropic-beta")
        betas = tuple(header.split(",")) if header else ("recorded-beta",)
    return AnthropicProvider(_model(recording), base_url=server_url + prefix, betas=betas,
                             api_key=API_KEY)


def _gemini(recording: Recording, server_url: str) -> HTTPProvider:
    """AI Studio (`/v1beta/models/M:method`) or Vertex (`.../publishers/google/models/M:...`)."""
    url = urlsplit(recording.request_path)
    prefix, _, rest = url.path.rpartition("/models/")
    model, _, method = rest.partition(":")
    return GeminiProvider(
        model,
        base_url=server_url + prefix,
        query=url.query,
        streaming=method == "streamGenerateContent",
        api_key=API_KEY,
    )


def _ollama(recording: Recording, server_url: str) -> HTTPProvider:
    prefix = urlsplit(recording.request_path).path.rsplit("/api/chat", 1)[0]
    return OllamaProvider(_model(recording), base_url=server_url + prefix, api_key=API_KEY)


def _cohere(recording: Recording, server_url: str) -> HTTPProvider:
    prefix = urlsplit(recording.request_path).path.rsplit("/chat", 1)[0]
    return CohereProvider(_model(recording), base_url=server_url + prefix, api_key=API_KEY)


def _bedrock(recording: Recording, server_url: str) -> HTTPProvider:
    """`/model/{id}/converse-stream` or `/converse`; the id as the recorder encoded it."""
    path = urlsplit(recording.request_path).path
    prefix, _, rest = path.partition("/model/")
    model, _, action = rest.rpartition("/")
    return BedrockProvider(unquote(model), region="us-east-1", base_url=server_url + prefix,
                           streaming=action == "converse-stream")


PROVIDERS: dict[str, ProviderFactory] = {
    "chat.completions": _openai_chat,
    "responses": _openai_responses,
    "messages": _anthropic,
    "streamGenerateContent": _gemini,
    "generateContent": _gemini,
    "api/chat": _ollama,
    "v2/chat": _cohere,
    "converse-stream": _bedrock,
    "converse": _bedrock,
}

# Legacy text-completion APIs: not chat, skipped for good.
NEVER = {
    "completions": "legacy text-completion API (api=completions) is out of scope",
    "api/generate": "legacy text-completion API (api=api/generate) is out of scope",
}

# Chat APIs whose provider is still to be written: skipped until registered in PROVIDERS.
NOT_YET: dict[str, str] = {}

# The mapping every vendor's raw stop reason must get; values not listed must map to
# some StopReason (usually OTHER).
STOP_REASONS: Mapping[str, StopReason] = {
    "stop": StopReason.END,
    "length": StopReason.MAX_TOKENS,
    "tool_calls": StopReason.TOOL_CALL,
    "content_filter": StopReason.CONTENT_FILTER,
    "end_turn": StopReason.END,
    "stop_sequence": StopReason.END,
    "tool_use": StopReason.TOOL_CALL,
    "max_tokens": StopReason.MAX_TOKENS,
    "STOP": StopReason.END,
    "MAX_TOKENS": StopReason.MAX_TOKENS,
    "SAFETY": StopReason.CONTENT_FILTER,
    "COMPLETE": StopReason.END,
    "TOOL_CALL": StopReason.TOOL_CALL,
    "MAX_TOKENS_REACHED": StopReason.MAX_TOKENS,
    "pause_turn": StopReason.OTHER,
    "refusal": StopReason.CONTENT_FILTER,
    "model_context_window_exceeded": StopReason.MAX_TOKENS,
    "RECITATION": StopReason.CONTENT_FILTER,
    "PROHIBITED_CONTENT": StopReason.CONTENT_FILTER,
    "MALFORMED_FUNCTION_CALL": StopReason.OTHER,
    "1": StopReason.END,  # Gemini's FinishReason numbers (`enum-encoding=int`)
    "2": StopReason.MAX_TOKENS,
    "3": StopReason.CONTENT_FILTER,
    "STOP_SEQUENCE": StopReason.END,
}
