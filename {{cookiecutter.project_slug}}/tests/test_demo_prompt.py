"""The demo task's system prompt has one home, scripts/demo_system_prompt.txt: the demo data's
rows carry it, and `make chat` sends it unless SYSTEM says otherwise."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).parents[1]
DEMO = PROJECT / "data" / "raw" / "support_tickets.jsonl"


def chat_system(tmp_path: Path, *variables: str) -> str:
    """The system message `make chat` hands its client (a stand-in python that prints it)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    python = tmp_path / "venv" / "bin" / "python"
    python.parent.mkdir(parents=True, exist_ok=True)
    python.write_text('#!/bin/sh\nprintf "%s" "$CHAT_SYSTEM"\n')
    python.chmod(0o755)
    command = ["make", "-s", "--no-print-directory", "chat", f"VENV={python.parents[1]}"]
    done = subprocess.run(
        [*command, *variables], cwd=PROJECT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_chat_sends_the_demo_rows_system_prompt(tmp_path: Path) -> None:
    if not DEMO.exists():
        pytest.skip("baked without the demo data (task_preset: custom)")
    first = json.loads(DEMO.read_text(encoding="utf-8").splitlines()[0])
    system = first["messages"][0]
    assert system["role"] == "system"
    prompt = (PROJECT / "scripts" / "demo_system_prompt.txt").read_text(encoding="utf-8")
    assert system["content"] == prompt.strip()
    assert chat_system(tmp_path) == system["content"]
    assert chat_system(tmp_path, "SYSTEM=Be brief. $HOME") == "Be brief. $HOME"
