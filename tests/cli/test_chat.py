"""The `chronos` command, run as a real subprocess the way a user runs it."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chronos.model import ChatRequest, Message
from chronos.model.llamacpp import LlamaCppProvider
from tests.cli.command import CHRONOS, PROMPT, chronos, environment


def test_chat_streams_the_local_model_by_default() -> None:
    done = chronos("chat", "--max-tokens", "16", "--temperature", "0", "--seed", "1", PROMPT)

    assert done.returncode == 0, done.stderr
    expected = LlamaCppProvider().chat_sync(
        ChatRequest(
            messages=[Message(role="user", content=PROMPT)],
            max_tokens=16,
            temperature=0.0,
            seed=1,
        )
    )
    assert expected.content.strip()
    assert done.stdout == expected.content + "\n"
    assert "llamacpp" in done.stderr
    assert "16 generated" in done.stderr


def test_an_unknown_provider_is_a_clear_error_with_the_choices() -> None:
    done = chronos("chat", "--provider", "nope", PROMPT)
    assert done.returncode == 2
    assert "unknown provider 'nope'" in done.stderr
    assert "llamacpp" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_the_environment_picks_the_provider() -> None:
    done = chronos("chat", PROMPT, CHRONOS_PROVIDER="nope")
    assert done.returncode == 2
    assert "unknown provider 'nope'" in done.stderr


def test_a_missing_model_file_is_a_clear_error(tmp_path: Path) -> None:
    done = chronos("chat", "--model", str(tmp_path / "absent.gguf"), PROMPT)
    assert done.returncode == 2
    assert "no model file" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_provider_without_its_key_says_which_variable_to_set() -> None:
    done = chronos("chat", "--provider", "openai", PROMPT)
    assert done.returncode == 2
    assert "OPENAI_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("argv", [[], ["chat"], ["chat", "--max-tokens", "many", "hi"]])
def test_bad_usage_exits_2_with_the_usage(argv: list[str]) -> None:
    done = chronos(*argv)
    assert done.returncode == 2
    assert "usage: chronos" in done.stderr


def test_help_lists_the_commands() -> None:
    done = chronos("--help")
    assert done.returncode == 0
    listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ")}
    assert {"chat", "run", "sessions", "checkpoints", "resume"} <= listed


def test_tokens_reach_the_terminal_while_generating_and_ctrl_c_stops_cleanly() -> None:
    process = subprocess.Popen(
        [str(CHRONOS), "chat", "--max-tokens", "400", PROMPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )
    try:
        assert process.stdout is not None
        first = process.stdout.read1(16)  # type: ignore[attr-defined]
        # Text arrived while the 400-token answer is still being generated.
        assert first.strip()
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130
    assert b"Traceback" not in err


def test_a_missing_extra_is_named_verbatim() -> None:
    # As if xllamacpp were not installed; the hint's brackets must survive rich.
    code = (
        "import importlib.util as util, sys\n"
        "real = util.find_spec\n"
        "util.find_spec = lambda name, *a: None if name == 'xllamacpp' else real(name, *a)\n"
        "from chronos.cli import main\n"
        "sys.exit(main(['chat', 'hi']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment()
    )
    assert done.returncode == 2
    assert "pip install 'chronos-stream[local]'" in done.stderr
