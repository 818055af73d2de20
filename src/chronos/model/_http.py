"""HTTP failure → chronos error, in one place.

Every provider's HTTP errors go through here: the status code picks the error class, the
vendor's error body gives the message (after anything key-like is redacted), `Retry-After`
becomes `retry_after`, and httpx's own exceptions become `ProviderConnectionError`,
`StreamDisconnectedError` or `ProviderTimeoutError` depending on whether the stream had
started. Retry decisions are made on the resulting chronos errors, so they read the same for
every vendor.
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

from chronos.errors import (
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderTimeoutError,
    RateLimitError,
    ServerError,
    StreamDisconnectedError,
)

__all__ = [
    "RetryPolicy",
    "error_for_status",
    "error_from_httpx",
    "is_retryable",
    "parse_retry_after",
    "redact",
    "vendor_error_message",
]

_KEY_LIKE: Final = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|sk_[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gsk_[A-Za-z0-9]{8,}"
    r"|xai-[A-Za-z0-9]{8,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}|org-[A-Za-z0-9]{8,})"
)
_BODY_LIMIT: Final = 2000  # characters of an error body kept, after redaction
_RETRYABLE_STATUS: Final = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def redact(text: str, secret: str | None = None) -> str:
    """Replace anything that looks like an API key (and `secret` itself) with `REDACTED`."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "REDACTED")
    return _KEY_LIKE.sub("REDACTED", text)


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as seconds or an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def vendor_error_message(body: Any) -> tuple[str | None, str | None]:
    """(message, code) from the error body shapes vendors use.

    `{"error": {"message", "code" | "type" | "status"}}` (OpenAI and compatibles, Anthropic,
    Gemini), `{"error": "text"}`, `{"message": ...}`, `{"detail": ...}` (Mistral), and a
    list holding one of those (Gemini's streamed array).
    """
    if isinstance(body, list) and body:
        body = body[0]
    if not isinstance(body, dict):
        return None, None
    error = body.get("error", body)
    if isinstance(error, str):
        return error, None
    if not isinstance(error, dict):
        return None, None
    message = error.get("message") or error.get("detail") or error.get("msg")
    code = error.get("code") or error.get("type") or error.get("status")
    if message is not None and not isinstance(message, str):
        message = orjson.dumps(message).decode()
    return message, (str(code) if code is not None else None)


def _error_class(status: int) -> type[ProviderHTTPError]:
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return NotFoundError
    if status == 429:
        return RateLimitError
    if status >= 500:
        return ServerError
    if 400 <= status < 500:
        return BadRequestError
    return ProviderHTTPError


def error_for_status(
    response: httpx.Response,
    body: bytes,
    *,
    provider: str,
    model: str,
    secret: str | None,
    parse: Callable[[Any], tuple[str | None, str | None]] = vendor_error_message,
) -> ProviderHTTPError:
    """The typed error for an HTTP error response whose body has been read.

    `parse` extracts (message, code) from the parsed JSON body (the vendor's shape).
    """
    # Redacted whole, then cut: cut first, a key straddling the limit would lose the end that
    # lets `redact` recognise it, and most of its characters would be kept.
    text = redact(body.decode("utf-8", "replace"), secret)[:_BODY_LIMIT]
    try:
        message, code = parse(orjson.loads(body))
    except orjson.JSONDecodeError:
        message, code = (text.strip()[:300] or None), None
    status = response.status_code
    summary = f"{provider} returned HTTP {status}"
    if code:
        summary += f" ({code})"
    if message:
        summary += f": {redact(message, secret)}"
    headers = response.headers
    return _error_class(status)(
        summary,
        status_code=status,
        provider=provider,
        model=model,
        request_id=headers.get("x-request-id") or headers.get("request-id"),
        retry_after=parse_retry_after(headers),
        body=text,
    )


def error_from_httpx(
    exc: httpx.HTTPError, *, started: bool, provider: str, model: str
) -> ProviderError:
    """Map an httpx exception to the most specific chronos error.

    `started`: whether the response had begun streaming, which turns a lost connection into
    `StreamDisconnectedError` (the response is incomplete).
    """
    # Most specific first: httpx's timeouts are also transport errors.
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return ProviderTimeoutError(
            f"{provider}: timed out connecting", phase="connect", provider=provider, model=model
        )
    if isinstance(exc, httpx.TimeoutException):
        return ProviderTimeoutError(
            f"{provider}: no data for longer than the idle timeout"
            + (" in the middle of the stream" if started else " while waiting for the response"),
            phase="idle",
            provider=provider,
            model=model,
        )
    if started:
        return StreamDisconnectedError(
            f"{provider}: connection lost in the middle of the stream ({type(exc).__name__})",
            provider=provider,
            model=model,
        )
    return ProviderConnectionError(
        f"{provider}: cannot reach the server ({type(exc).__name__}: {exc})",
        provider=provider,
        model=model,
    )


def is_retryable(error: ProviderError) -> bool:
    """Whether trying again (before any chunk was delivered) may succeed."""
    if isinstance(error, ProviderHTTPError):
        return error.status_code in _RETRYABLE_STATUS
    if isinstance(error, ProviderTimeoutError):
        return error.phase == "connect"
    return isinstance(error, ProviderConnectionError) and not isinstance(
        error, StreamDisconnectedError
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Retries of retryable failures (429, 5xx, connect errors), before the first chunk only.

    The wait is the server's `Retry-After` when it sent one (up to `max_retry_after`; longer
    than that and the error is raised at once), else exponential backoff with jitter.
    """

    max_retries: int = 2
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before retry number `attempt` (0-based), or None to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        backoff = min(self.initial_backoff * 2.0**attempt, self.max_backoff)
        return backoff * (0.5 + random.random() / 2)
