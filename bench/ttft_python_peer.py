"""TTFT beside llama-cpp-python's OpenAI-compatible server, the Python peer issue #15 names.

    .venv/bin/python bench/ttft_python_peer.py --rounds 80

`dialect_openai.py ttft` measures Chronos beside llama.cpp's own server (C++, through
xllamacpp). This measures it beside the other server the issue names: llama-cpp-python's
(`python -m llama_cpp.server`: FastAPI, uvicorn and sse-starlette around llama.cpp),
the server a Python developer would otherwise put in front of a local model.

llama-cpp-python publishes no wheel for this platform, so the first run builds it from source
into a venv of its own, `bench/.peers/llama-cpp-python` (4 to 9 minutes on 2 cores; reused
afterwards; `--peer-python` names another interpreter that has `llama-cpp-python[server]`).
Its server loads the same GGUF as the `in_process` graph, with the same settings (context
`N_CTX`, `THREADS` threads, one request at a time).

Each round, the `openai` SDK streams the same greedy answer (checked) twice from
llama-cpp-python's server (the second: the noise floor) and twice from `chronos serve`'s
`/v1/chat/completions` running the model itself, so that both models run equally often; in a
shuffled order, each request once every process has gone idle (`dialect_openai.py ttft`'s
method and helpers). Reported: medians, each side's per-round difference to the peer, and the
headline: per round, Chronos's mean of two less the peer's mean of two, with a 95 % interval.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import openai
from bench.dialect_openai import _GRAPHS, _first_token, _load, paired_ttft, served_process
from bench.dialect_openai_graphs import N_CTX, SEED, THREADS
from tests.server.api_server import serving

_PEER_VERSION = "0.3.36"
_PEER_VENV = Path(__file__).resolve().parent / ".peers" / "llama-cpp-python"
_PEER = "llama-cpp-python server"
_PEER_AGAIN = "llama-cpp-python server, again"
_CHRONOS = ("chronos, model in process", "chronos, model in process (2)")


def peer_python() -> Path:
    """An interpreter with `llama-cpp-python[server]`: the bench's own venv, built if missing."""
    python = _PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"building llama-cpp-python {_PEER_VERSION} from source into {_PEER_VENV} "
              "(4 to 9 minutes on 2 cores, once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(_PEER_VENV)], check=True)
        # Not for this CPU's every feature (llama.cpp's default): built natively on a VM whose
        # CPU reports AMX, the model crashed at its first token (SIGSEGV). Portable, it uses
        # what xllamacpp's wheel in Chronos's process uses: AVX2, FMA, F16C, BMI2 (each one's
        # `get_system_info()` / `llama_print_system_info()`).
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-cache-dir",
                        f"llama-cpp-python[server]=={_PEER_VERSION}"], check=True,
                       env={**os.environ, "CMAKE_ARGS": "-DGGML_NATIVE=OFF",
                            "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count())})
    return python


@contextlib.contextmanager
def peer_server(python: Path) -> Iterator[tuple[str, int]]:
    """llama-cpp-python's server on the local model, in a process of its own: its `/v1` URL
    and pid while the block runs."""
    from chronos.model.llamacpp import default_model_path

    def argv(port: int) -> list[str]:
        return [str(python), "-m", "llama_cpp.server", "--model", str(default_model_path()),
                "--model_alias", "smollm2", "--n_ctx", str(N_CTX), "--n_threads", str(THREADS),
                "--n_threads_batch", str(THREADS), "--host", "127.0.0.1", "--port", str(port),
                "--verbose", "False"]

    with served_process(argv, "/v1/models", "llama-cpp-python's server", quiet=True) as (url,
                                                                                       pid):
        yield f"{url}/v1", pid


def measure(rounds: int, max_tokens: int, python: Path) -> None:
    os.environ["CHRONOS_BENCH_MAX_TOKENS"] = str(max_tokens)
    options = {"max_tokens": max_tokens, "temperature": 0.0, "seed": SEED}
    print(f"load before: {_load()}")
    with peer_server(python) as (peer_url, peer_pid), \
            serving(f"{_GRAPHS}:in_process") as served:
        peer = openai.OpenAI(base_url=peer_url, api_key="unused", max_retries=0)
        chronos = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
        sides = {_PEER: lambda: _first_token(peer, "smollm2", **options),
                 _PEER_AGAIN: lambda: _first_token(peer, "smollm2", **options),
                 **{name: lambda: _first_token(chronos, "in_process") for name in _CHRONOS}}
        for side in sides.values():  # warm-up: connections, the models' prompt caches
            side()
            side()
        paired_ttft(sides, (os.getpid(), peer_pid, served.pid), rounds, (_PEER, _PEER_AGAIN),
                    _CHRONOS)
    print(f"load after: {_load()}; {rounds} rounds, {max_tokens} tokens, same text on all sides")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--peer-python", type=Path, default=None,
                        help="an interpreter with llama-cpp-python[server] (default: built)")
    args = parser.parse_args()
    measure(args.rounds, args.max_tokens, args.peer_python or peer_python())


if __name__ == "__main__":
    main()
