"""One streaming request per dialect, for tests that need any run stream of each kind."""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["DIALECTS", "DIALECT_IDS"]


def _agui(graph_id: str, text: str) -> tuple[str, dict[str, Any]]:
    return f"/ag-ui/{graph_id}", {
        "threadId": f"t-{uuid.uuid4().hex}", "runId": uuid.uuid4().hex,
        "messages": [{"id": "m1", "role": "user", "content": text}], "state": {}, "tools": [],
        "context": [], "forwardedProps": {}}


def _aisdk(graph_id: str, text: str) -> tuple[str, dict[str, Any]]:
    return f"/ai-sdk/{graph_id}", {"id": f"c-{uuid.uuid4().hex}", "trigger": "submit-message",
                                   "messages": [{"id": "m1", "role": "user",
                                                 "parts": [{"type": "text", "text": text}]}]}


def _openai_chat(graph_id: str, text: str) -> tuple[str, dict[str, Any]]:
    return "/v1/chat/completions", {"model": graph_id, "stream": True,
                                    "messages": [{"role": "user", "content": text}]}


def _openai_responses(graph_id: str, text: str) -> tuple[str, dict[str, Any]]:
    return "/v1/responses", {"model": graph_id, "stream": True, "input": text}


DIALECTS = [_agui, _aisdk, _openai_chat, _openai_responses]
"""(graph id, user text) -> (path, JSON body) of a streaming run of that dialect."""
DIALECT_IDS = ["ag-ui", "ai-sdk", "openai-chat", "openai-responses"]
