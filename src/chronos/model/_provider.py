"""The provider interface, and the base every HTTP vendor is built on.

What the base does, once for every vendor: owns the `httpx.AsyncClient` and its lifetime,
sends the streaming POST, turns an error status into a typed error (reading the body first),
retries retryable failures with backoff before the first chunk only, applies a connect timeout
and an idle (between-chunks) timeout instead of a total one, decodes the body, assembles tool
calls (`_assemble.ChunkBuilder`), detects truncated streams, resumes a stream whose connection
dropped where the vendor can (`HTTPProvider._resume`), closes the response on `break`,
`aclose()` or cancellation, and provides the `_sync` twins.

Adding a vendor (`anthropic.py`, `gemini.py`, ...) means writing a translator, no I/O:

```python
class _AcmeStream(StreamTranslator):
    # One instance per stream; keep per-stream state (open blocks, ...) on it.
    def new_decoder(self, content_type: str = "") -> Decoder:
        return SSEDecoder()                   # the default; or NDJSONDecoder / JSONArrayDecoder

    def on_event(self, event: SSEEvent, out: ChunkBuilder) -> None:
        data = self.loads(event.data)        # StreamProtocolError on bad JSON
        if data.get("type") == "error":
            raise self.stream_error(data["error"]["message"], code=data["error"]["type"])
        out.text(data.get("text", ""))         # also: reasoning, tool_fragment / tool_call,
        ...                                    # complete_tool, usage, stop(raw, mapped)
        if data.get("type") == "done":
            out.end_stream()                   # terminal event; without it: truncated


class AcmeProvider(HTTPProvider):
    name = "acme"
    default_base_url = "https://api.acme.example/v1"
    api_key_env = ("ACME_API_KEY",)

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        return VendorRequest(path="/chat", json={...})   # ChatRequest -> vendor JSON

    def _new_translator(self) -> StreamTranslator:
        return _AcmeStream(self.name, self.model)
```

`VendorRequest(url=...)` replaces base URL + path when the model is part of the URL (Gemini),
`params=` adds a query string. Override `_error_message(body)` only if the vendor's error body
is not one of the shapes `_http.vendor_error_message` knows. A stream must end with
`out.end_stream()` or `out.allow_end()` (e.g. after a finish reason), else it counts as
truncated (override `StreamTranslator.on_end` to decide otherwise). Then register the provider
in the recording suite: `tests/model/recordings.py`, `PROVIDERS`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, ClassVar, Final, Protocol

import anyio
import httpx
import orjson

from chronos.errors import (
    ConfigurationError,
    ProviderError,
    ProviderStreamError,
    StreamProtocolError,
)
from chronos.model import _http
from chronos.model._assemble import ChunkBuilder
from chronos.model._cookies import cookies_when_set
from chronos.model._decode import SSEDecoder
from chronos.model._http import RetryPolicy
from chronos.model._plain_http import plain_http_client
from chronos.model._protocol import BaseProvider, ChatStream, Provider
from chronos.model._types import ChatRequest, ChatResponse

__all__ = [
    "ChatStream",
    "Decoder",
    "HTTPProvider",
    "Provider",
    "RetryPolicy",
    "StreamTranslator",
    "VendorRequest",
]

_log: Final = logging.getLogger("chronos.model")
# A request's URL parsed once: httpx parses a string URL on every request (~15 µs, a visible
# share of what a local model's request costs before it leaves). `httpx.URL` is immutable.
_parsed_url: Final = lru_cache(maxsize=256)(httpx.URL)


def _log_retry(provider: str, model: str, attempt: int, delay: float, error: ProviderError) -> None:
    # The error's type and status only: its message may quote what the vendor echoed back.
    if _log.isEnabledFor(logging.INFO):
        fields = {"provider": provider, "model": model, "retry": attempt,
                  "delay": round(delay, 3), "error": type(error).__name__,
                  "status": getattr(error, "status_code", None)}
        _log.info("provider retry %s", " ".join(f"{k}={v}" for k, v in fields.items()),
                  extra={"chronos": fields})


@dataclass(frozen=True, slots=True)
class VendorRequest:
    """What a vendor translator wants sent: a path under the base URL (or a full `url`)."""

    json: Mapping[str, Any]
    path: str = ""
    url: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class Decoder(Protocol):
    """An incremental, sans-IO body decoder (`_decode.SSEDecoder` and its siblings)."""

    def feed(self, data: bytes) -> list[Any]: ...

    def flush(self) -> list[Any]: ...


class StreamTranslator:
    """Turns one stream's decoded events into chronos chunks; one instance per stream.

    Subclasses implement `on_event`, may pick another decoder in `new_decoder`, and may check
    vendor-specific completeness at the end of the body in `on_end`. `retryable_codes` names
    the codes of `stream_error`s that mean "try again later" (overloaded, rate-limited): the
    provider retries those when they come before the first chunk.
    """

    retryable_codes: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, provider: str, model: str) -> None:
        self.provider = provider
        self.model = model
        # The API key, set by the provider per stream: what the vendor echoes back in an
        # error event or a bad chunk is redacted with it, whatever the key looks like.
        self.secret: str | None = None

    def new_decoder(self, content_type: str = "") -> Decoder:
        """The decoder for this stream's body (default: Server-Sent Events).

        `content_type` is the response's `Content-Type`, for vendors whose framing depends
        on it (Gemini streams SSE with `alt=sse`, a JSON array without).
        """
        return SSEDecoder()

    def on_event(self, event: Any, out: ChunkBuilder) -> None:
        """Translate one decoded event (an `SSEEvent`, or bytes from the other decoders)."""
        raise NotImplementedError

    def translate(self, event: Any, out: ChunkBuilder) -> None:
        """`on_event`, with a chunk of an unexpected shape turned into `StreamProtocolError`.

        Translators read vendor JSON as documented (`chunk["choices"][0].get(...)`) rather
        than checking every value's type; valid JSON of another shape (a list where an
        object belongs, a number for a string) fails inside them, or in `ChunkBuilder`,
        which refuses values of the wrong type. Either way the caller gets the typed error.
        """
        try:
            self.on_event(event, out)
            if type(out.id) is not str or type(out.model) is not str:
                raise TypeError(f"id {out.id!r} and model {out.model!r} must be strings")
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            failure: Exception = exc
        else:
            return
        # Raised outside the handler, so neither chained nor as context: the original's
        # args hold the vendor's values unredacted (an echoed key); its text is redacted.
        raise self._shape_error(event, failure)

    def _shape_error(self, event: Any, failure: Exception) -> StreamProtocolError:
        """The error for `event`, whose translation failed with `failure` (see `translate`);
        also raised by the compiled translations (`_translate.EventTranslation`)."""
        data = getattr(event, "data", event)
        raw = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
        return StreamProtocolError(
            f"{self.provider}: a chunk does not have the expected shape "
            f"({_http.redact(repr(failure), self.secret)})",
            raw=_http.redact(raw, self.secret),
            provider=self.provider,
            model=self.model,
        )

    def _chunks(self, out: ChunkBuilder) -> Callable[[list[Any]], Iterator[ChatResponse]]:
        """What the provider calls per network read: its events in, their chunks out, each
        event `translate`d into `out` (the built-in translators hand out a compiled loop
        that calls their compiled translation directly)."""
        return partial(out.chunks, translate=self.translate)

    def on_end(self, out: ChunkBuilder) -> None:
        """The body ended. The default raises if the vendor's terminal event never came."""
        if not out.may_end:
            raise StreamProtocolError(
                f"{self.provider}: the stream ended before its final event (truncated)",
                provider=self.provider,
                model=self.model,
            )

    def loads(self, data: str | bytes) -> Any:
        """Parse a JSON payload; a payload that does not parse is a `StreamProtocolError`."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            problem = str(exc)
        # Raised outside the handler, so neither chained nor as context: orjson's error
        # keeps the whole chunk (`doc`) unredacted, and it may echo the key.
        raw = data if isinstance(data, str) else data.decode("utf-8", "replace")
        raise StreamProtocolError(
            f"{self.provider}: a chunk is not valid JSON ({problem})",
            raw=_http.redact(raw, self.secret),
            provider=self.provider,
            model=self.model,
        )

    def stream_error(self, message: str, *, code: str | None = None) -> ProviderStreamError:
        """The error to raise for an error event the vendor sent mid-stream."""
        return ProviderStreamError(
            f"{self.provider} sent an error mid-stream: {_http.redact(message, self.secret)}",
            code=code,
            provider=self.provider,
            model=self.model,
        )


class HTTPProvider(BaseProvider):
    """Base of every HTTP provider; a vendor subclass only translates (see module docstring).

    Args:
        model: the default model; `ChatRequest.model` overrides it per request.
        api_key: defaults to the first of `api_key_env` that is set.
        base_url: the server, e.g. any OpenAI-compatible one.
        connect_timeout: seconds to establish the connection.
        idle_timeout: seconds without a byte from the server (before or between chunks). There
            is no total timeout: a long generation that keeps streaming is never cut.
        retry: retries before the first chunk; `RetryPolicy(max_retries=0)` disables them.
        headers: extra headers sent with every request.
        http_client: your own `httpx.AsyncClient` (then you close it, and its timeouts apply).
    """

    name: ClassVar[str] = "http"
    default_base_url: ClassVar[str] = ""
    api_key_env: ClassVar[Sequence[str]] = ()
    api_key_required: ClassVar[bool] = True

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        connect_timeout: float = 10.0,
        idle_timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._model = model
        self._api_key = api_key or next(
            (os.environ[var] for var in self.api_key_env if os.environ.get(var)), None
        )
        # A server of one's own behind `base_url` (vLLM, llama.cpp, Ollama's /v1) often
        # wants no key; the vendor's own endpoint always does.
        if self._api_key is None and self.api_key_required and base_url is None:
            raise ConfigurationError(
                f"{self.name}: no API key; pass api_key= or set "
                + " or ".join(self.api_key_env or ("an API key",))
            )
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url:
            raise ConfigurationError(f"{self.name}: base_url is required")
        self.timeout = httpx.Timeout(idle_timeout, connect=connect_timeout)
        self.retry = retry or RetryPolicy()
        self._headers = dict(headers or {})
        self._user_client = http_client
        # One client per event loop: the sync twins run on chronos's bridge loop, and an
        # httpx.AsyncClient's connections belong to the loop that opened them.
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}

    # --- what a vendor module provides ---------------------------------------------------

    def _auth_headers(self, api_key: str) -> dict[str, str]:
        """Headers that carry the key (default: `Authorization: Bearer`)."""
        return {"authorization": f"Bearer {api_key}"}

    def _build_request(self, req: ChatRequest) -> VendorRequest:
        """`ChatRequest` → the vendor's streaming request."""
        raise NotImplementedError

    def _new_translator(self) -> StreamTranslator:
        """A fresh translator for one stream."""
        raise NotImplementedError

    def _secret(self) -> str | None:
        """The credential a vendor could echo back, redacted from its errors (the API key)."""
        return self._api_key

    def _error_message(self, body: Any) -> tuple[str | None, str | None]:
        """(message, code) from a parsed HTTP error body."""
        return _http.vendor_error_message(body)

    # --- public interface ----------------------------------------------------------------

    @property
    def model(self) -> str:
        """The default model."""
        return self._model

    def __repr__(self) -> str:
        # Never the key.
        return f"{type(self).__name__}(model={self._model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP clients this provider opened (not one passed in as `http_client`)."""
        current = asyncio.get_running_loop()
        clients, self._clients = self._clients, {}
        for loop, client in clients.items():
            if loop is current:
                await client.aclose()
            elif loop.is_running():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(client.aclose(), loop))

    # --- machinery -----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._user_client is not None:
            return self._user_client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            # Forget clients of loops that are gone (their connections went with them).
            for dead in [other for other in self._clients if other.is_closed()]:
                del self._clients[dead]
            # A local server's (plain http://) on asyncio's own transports: see `_plain_http`.
            client = self._clients[loop] = cookies_when_set(
                plain_http_client(self.timeout) if self.base_url.startswith("http://")
                else httpx.AsyncClient(timeout=self.timeout))
        return client

    def _request_headers(self) -> dict[str, str]:
        """The headers every request of this provider carries, the key's included."""
        headers = {
            "accept": "text/event-stream, application/json",
            "content-type": "application/json",
            **self._headers,
        }
        if self._api_key:
            headers.update(self._auth_headers(self._api_key))
        return headers

    def _http_request(self, req: ChatRequest) -> httpx.Request:
        spec = self._build_request(req)
        headers = self._request_headers()
        headers.update(spec.headers)
        return self._client().build_request(
            "POST",
            _parsed_url(spec.url or self.base_url + spec.path),
            params=spec.params or None,
            headers=headers,
            content=orjson.dumps(spec.json),
        )

    async def _sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)

    def _forget_key(self, request: httpx.Request) -> None:
        # Once sent, the request lives on only as `.request` of httpx's errors (chained to
        # ours) and responses, whose headers' repr masks `Authorization` but not `x-api-key`.
        if self._api_key:
            for name in self._auth_headers(self._api_key):
                request.headers.pop(name, None)

    async def _open(self, req: ChatRequest) -> httpx.Response:
        """Send the request; retry what is retryable; return a 2xx response, not yet read."""
        return await self._send(lambda: self._http_request(req))

    async def _resume(self, translator: StreamTranslator) -> httpx.Response | None:
        """The connection dropped mid-stream: a response that continues it, or None.

        The default is None: the stream fails with `StreamDisconnectedError`. A vendor that
        can resume (OpenAI Responses in background mode) sends the request that continues
        after the last event `translator` processed; the chunks then go on as if nothing
        happened. It gives up (None) when resuming keeps failing without progress.
        """
        return None

    async def _abandon(self, translator: StreamTranslator) -> None:
        """The consumer closed the stream before its end (`aclose`, `break` in `async with`,
        cancellation). The default does nothing: closing the connection stops the vendor. A
        vendor whose generation outlives the connection (a Responses background response)
        stops it here; this runs shielded from cancellation, so it must bound its own time.
        """

    async def _send(self, make_request: Callable[[], httpx.Request]) -> httpx.Response:
        """Send a fresh `make_request()` per attempt; retry what is retryable; 2xx or raise."""
        attempt = 0
        while True:
            error: ProviderError
            request = make_request()
            try:
                response = await self._client().send(request, stream=True)
            except httpx.HTTPError as exc:
                self._forget_key(request)
                error = _http.error_from_httpx(
                    exc, started=False, provider=self.name, model=self._model
                )
                error.__cause__ = exc
            else:
                self._forget_key(request)  # the headers are on the wire by now
                if response.status_code < 400:
                    return response
                try:
                    body = await response.aread()
                except httpx.HTTPError:
                    body = b""
                finally:
                    await response.aclose()
                error = _http.error_for_status(
                    response,
                    body,
                    provider=self.name,
                    model=self._model,
                    secret=self._secret(),
                    parse=self._error_message,
                )
            retry_after = getattr(error, "retry_after", None)
            delay = self.retry.delay(attempt, retry_after) if _http.is_retryable(error) else None
            if delay is None:
                raise error
            attempt += 1
            _log_retry(self.name, self._model, attempt, delay, error)
            await self._sleep(delay)

    def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
        return self._read(lambda: self._open(req), self._new_translator)

    async def _read(
        self,
        open_response: Callable[[], Awaitable[httpx.Response]],
        new_translator: Callable[[], StreamTranslator],
    ) -> AsyncGenerator[ChatResponse, None]:
        """The chunks of the response `open_response()` gives, resumed after a drop if it can.

        A retryable error event (overloaded, throttled) that comes before the first chunk is
        retried like an HTTP 429 or 5xx, with a new request under the same `RetryPolicy`:
        the caller has seen nothing, so nothing is repeated. After the first chunk it is
        raised: a new request would generate, and bill, the text again.
        """
        attempt = 0
        while True:
            response = await open_response()
            translator = new_translator()
            translator.secret = self._secret()
            out = ChunkBuilder()
            chunks = translator._chunks(out)
            decoder = translator.new_decoder(response.headers.get("content-type", ""))
            body = response.aiter_bytes()
            # Nothing delivered and nothing resumed yet: the stream may be started again.
            restartable = True
            # Until the last chunk is out or an error is on its way, leaving means the
            # consumer closed the stream (or was cancelled) before the end.
            left_early = True
            try:
                while True:
                    try:
                        async for raw in body:
                            for chunk in chunks(decoder.feed(raw)):
                                restartable = False
                                yield chunk
                            if out.ended:
                                break
                        break
                    except httpx.HTTPError as exc:
                        error = _http.error_from_httpx(
                            exc, started=True, provider=self.name, model=self._model
                        )
                        await response.aclose()
                        restartable = False
                        resumed = await self._resume(translator)
                        if resumed is None:
                            raise error from exc
                    # A new connection: what the old one left half-decoded is sent again.
                    response = resumed
                    decoder = translator.new_decoder(response.headers.get("content-type", ""))
                    body = response.aiter_bytes()
                if not out.ended:
                    try:
                        tail = decoder.flush()
                    except ValueError as exc:  # an unterminated JSON array
                        raise StreamProtocolError(
                            f"{self.name}: the stream ended inside a JSON value (truncated)",
                            provider=self.name,
                            model=self._model,
                        ) from exc
                    for event in tail:
                        translator.translate(event, out)
                    translator.on_end(out)
                final = out.finish()
                left_early = False
                yield final
                if out.ended:
                    await _drain(body)
                return
            except ProviderError as failure:
                left_early = False
                delay = (
                    self._restart_delay(failure, translator, attempt) if restartable else None
                )
                if delay is None:
                    raise
            except Exception:
                left_early = False
                raise
            finally:
                await response.aclose()
                if left_early:
                    with anyio.CancelScope(shield=True):  # a cancelled consumer still stops it
                        await self._abandon(translator)
            attempt += 1
            await self._sleep(delay)

    def _restart_delay(
        self, error: ProviderError, translator: StreamTranslator, attempt: int
    ) -> float | None:
        """Seconds to wait before starting a stream again that `error` ended before its first
        chunk, or None to raise it: retryable statuses, and the translator's retryable codes."""
        if isinstance(error, ProviderStreamError):
            retryable = error.code in translator.retryable_codes
        else:
            retryable = _http.is_retryable(error)
        if not retryable:
            return None
        return self.retry.delay(attempt, getattr(error, "retry_after", None))


# After the terminal event only the end of the body should follow (the chunked-encoding
# terminator), normally in the same packet. Reading it returns the connection to the pool;
# closing the response before it would cost a new TCP and TLS handshake per request. A
# server that keeps sending or holds the body open is cut off, as before, after these limits.
_DRAIN_SECONDS: Final = 0.2
_DRAIN_BYTES: Final = 65536


async def _drain(body: AsyncIterator[bytes]) -> None:
    received = 0
    with anyio.move_on_after(_DRAIN_SECONDS):
        try:
            async for raw in body:
                received += len(raw)
                if received > _DRAIN_BYTES:
                    return
        except httpx.HTTPError:
            return
