"""OpenAI request bodies, checked field by field: what is wrong is an `OpenAIRefusal` naming
the field (`param`), in OpenAI's terms.

A field this server cannot honour (sampling settings, tools, `n` > 1, `previous_response_id`:
the graph chooses its model and settings) is refused, never ignored.

A request whose last messages are tool results for a paused run's `interrupt` calls (see
`_openai_output`) answers that pause: its `resume` continues the paused thread, each result's
content read as JSON when it is JSON, as text otherwise.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from chronos.server.dialects._openai_output import INTERRUPT_CALL

__all__ = ["OpenAIRefusal", "OpenAIRequest", "Resume", "parse_chat", "parse_responses"]

_CHAT_FIELDS: Final = frozenset({"model", "messages", "stream", "stream_options", "n"})
_RESPONSES_FIELDS: Final = frozenset({"model", "input", "instructions", "stream"})
_ROLES: Final = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class OpenAIRefusal(Exception):
    """A request OpenAI would refuse: its status, message, offending parameter and code."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


@dataclass(frozen=True, slots=True)
class Resume:
    """The answer to a paused run: its thread, the command that continues it, and the
    request field that gave it (for errors)."""

    thread_id: str
    command: dict[str, Any]
    param: str


@dataclass(frozen=True, slots=True)
class OpenAIRequest:
    """A checked request: the graph to run, its input messages (or the pause they answer),
    how to answer."""

    graph_id: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool = False
    resume: Resume | None = None


def parse_chat(body: Mapping[str, Any], graphs: Collection[str]) -> OpenAIRequest:
    """A `/v1/chat/completions` body. Raises: OpenAIRefusal."""
    _known_fields(body, _CHAT_FIELDS)
    graph_id = _graph(body, graphs)
    messages = _chat_messages(body.get("messages"))
    stream = _flag(body, "stream")
    if body.get("n") not in (None, 1):
        raise OpenAIRefusal(400, "'n' must be 1: a graph gives one answer", "n",
                            "unsupported_value")
    options = body.get("stream_options")
    if options is not None and not stream:
        raise OpenAIRefusal(400, "'stream_options' is only allowed when 'stream' is true",
                            "stream_options", "invalid_value")
    options = options or {}
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise OpenAIRefusal(400, "'stream_options' may only have 'include_usage'",
                            "stream_options", "unsupported_parameter")
    return OpenAIRequest(graph_id, messages, stream, _flag(options, "include_usage"),
                         _resume(messages, "messages"))


def parse_responses(body: Mapping[str, Any], graphs: Collection[str]) -> OpenAIRequest:
    """A `/v1/responses` body. Raises: OpenAIRefusal."""
    _known_fields(body, _RESPONSES_FIELDS)
    graph_id = _graph(body, graphs)
    messages = _responses_messages(body)
    return OpenAIRequest(graph_id, messages, _flag(body, "stream"),
                         resume=_resume(messages, "input"))


def _known_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name in body:
        if name not in allowed:
            raise OpenAIRefusal(400, f"Unsupported parameter: '{name}' is not supported by a "
                                     f"Chronos graph (the graph chooses its model and settings)",
                                name, "unsupported_parameter")


def _graph(body: Mapping[str, Any], graphs: Collection[str]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise OpenAIRefusal(400, "'model' is required and must be a non-empty string", "model",
                            "missing_required_parameter" if model is None else "invalid_type")
    if model not in graphs:
        raise OpenAIRefusal(404, f"The model '{model}' does not exist: the graphs served are "
                                 f"{sorted(graphs)}", "model", "model_not_found")
    return model


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise OpenAIRefusal(400, f"'{name}' must be a boolean", name, "invalid_type")
    return value


def _chat_messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise OpenAIRefusal(400, "'messages' must be a non-empty array of messages", "messages",
                            "invalid_type")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise OpenAIRefusal(400, f"'messages[{i}]' must be an object", f"messages[{i}]",
                                "invalid_type")
        if message.get("role") not in _ROLES:
            raise OpenAIRefusal(400, f"'messages[{i}].role' must be one of {sorted(_ROLES)}",
                                f"messages[{i}].role", "invalid_value")
    return value


def _responses_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Responses `input` (text, or message / function_call / function_call_output items) as
    chat messages, after `instructions` as a system message."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise OpenAIRefusal(400, "'instructions' must be a string", "instructions",
                                "invalid_type")
        messages.append({"role": "system", "content": instructions})
    value = body.get("input")
    if isinstance(value, str) and value:
        return [*messages, {"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise OpenAIRefusal(400, "'input' must be a non-empty string or array of input items",
                            "input", "invalid_type")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise OpenAIRefusal(400, f"'input[{i}]' must be an object", f"input[{i}]",
                                "invalid_type")
        messages.append(_input_item(item, f"input[{i}]"))
    return messages


def _input_item(item: Mapping[str, Any], name: str) -> dict[str, Any]:
    kind = item.get("type", "message")
    if kind == "function_call":
        return {"role": "assistant", "content": "", "tool_calls": [{
            "id": item.get("call_id"), "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"}}]}
    if kind == "function_call_output":
        output = item.get("output")
        return {"role": "tool", "tool_call_id": item.get("call_id"),
                "content": output if isinstance(output, str) else ""}
    if kind != "message":
        raise OpenAIRefusal(400, f"'{name}.type' {kind!r} is not supported: use message, "
                                 f"function_call or function_call_output items",
                            f"{name}.type", "unsupported_value")
    role = item.get("role")
    if role not in _ROLES:
        raise OpenAIRefusal(400, f"'{name}.role' must be one of {sorted(_ROLES)}",
                            f"{name}.role", "invalid_value")
    content = item.get("content")
    if isinstance(content, list):  # input_text / output_text parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    elif not isinstance(content, str):
        raise OpenAIRefusal(400, f"'{name}.content' must be a string or an array of content "
                                 f"parts", f"{name}.content", "invalid_type")
    return {"role": role, "content": content}


def _resume(messages: list[dict[str, Any]], field: str) -> Resume | None:
    """The pause the trailing tool results answer, if they answer `interrupt` calls."""
    answers: dict[str, Any] = {}
    threads: set[str] = set()
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        call_id = message.get("tool_call_id")
        if isinstance(call_id, str) and call_id.startswith(INTERRUPT_CALL):
            thread_id, _, key = call_id[len(INTERRUPT_CALL):].rpartition("_")
            threads.add(thread_id)
            answers[key] = _answer(message.get("content"))
    if not answers:
        return None
    if len(threads) != 1 or not next(iter(threads)):
        raise OpenAIRefusal(400, "the tool results answer 'interrupt' calls of different or "
                                 "malformed call ids", field, "invalid_value")
    # A pause before nodes asked nothing: its answer (an object) updates the state.
    resume = answers.get("", answers)
    return Resume(threads.pop(), {"resume": resume}, field)


def _answer(content: Any) -> Any:
    if isinstance(content, list):  # text parts
        content = "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        return content
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return content
