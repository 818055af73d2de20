"""The graph examples run as written and print what the guide shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_example(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_graph_streaming_prints_every_event_of_the_run(tmp_path: Path) -> None:
    lines = run_example("graph_streaming.py", "--db", str(tmp_path / "runs.db")).splitlines()
    events = [line for line in lines if line.startswith("[")]
    assert events[:4] == ["[checkpoint] node=", "[node_start] node=extract",
                          "[custom] node=extract", "[node_end] node=extract"]
    assert events.count("[token] node=chat") == 7
    for node in ("extract", "chat", "summarise"):
        assert f"[node_start] node={node}" in events
        assert f"[edge_transition] node={node}" in events
    assert events[-1] == "[completed] node=summarise"
    assert "status=completed" in lines[-2]
    assert "'summary': 'A robot once asked about...'" in lines[-2]
    assert lines[-1] == "checkpoints=4"


def test_interrupt_then_resume_in_a_second_process(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.db")
    paused = run_example("graph_interrupt_resume.py", "--db", db)
    assert paused.startswith("status=paused node=publish")
    resumed = run_example("graph_interrupt_resume.py", "--db", db, "--approve")
    assert resumed.startswith("status=completed node=publish")
    assert "'log': ['draft', 'publish']" in resumed
    assert "'published': True" in resumed
