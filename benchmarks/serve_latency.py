"""`make serve` on the CPU: seconds from start to GET /health answering 200, then the first
answer's seconds and tokens, and `make chat` end to end (docs/benchmarks.md "Shipping").

Run in a project where select (and, for the merged model, export) has run, with the project's
venv on PATH:

    python benchmarks/serve_latency.py --project build/demo/support-triage-finetune \
        [--model models/export/merged] [--out serve.json]

The server is the project's own `python -m <package>.commands.serve` (what `make serve`
runs; without --model it picks the merged export, else the selected checkpoint, merging an
adapter on the fly); the first answer is one POST to /v1/chat/completions (greedy, the first
test ticket's prompt, or --prompt), `make chat` is `python -m <package>.commands.chat` (a
process of its own, as a user runs it). The server is stopped at the end.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

READY_TIMEOUT_S = 300
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def package_of(project: Path) -> str:
    return next(p.parent.parent.name for p in (project / "src").glob("*/commands/serve.py"))


def wait_until_ready(server: subprocess.Popen, port: int) -> float:
    """Seconds until GET /health answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < READY_TIMEOUT_S:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode} before /health answered")
        try:
            with OPENER.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.25)
    sys.exit(f"/health did not answer within {READY_TIMEOUT_S} s")


def first_answer(port: int, messages: list[dict], max_tokens: int) -> dict:
    """One greedy chat completion: seconds, completion tokens, finish reason, text."""
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": 0.0}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    started = time.perf_counter()
    with OPENER.open(request, timeout=READY_TIMEOUT_S) as response:
        answer = json.load(response)
    choice = answer["choices"][0]
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "tokens": (answer.get("usage") or {}).get("completion_tokens"),
        "finish_reason": choice.get("finish_reason"),
        "text": choice["message"]["content"],
    }


def prompt_messages(project: Path, prompt: str | None) -> list[dict]:
    if prompt:
        return [{"role": "user", "content": prompt}]
    first = (project / "data" / "splits" / "test.jsonl").read_text().splitlines()[0]
    return json.loads(first)["prompt"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--model", type=Path, help="model dir, relative to the project")
    parser.add_argument("--prompt", help="a user message (default: the first test ticket)")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    project = args.project.resolve()
    package = package_of(project)
    port = free_port()
    command = [sys.executable, "-m", f"{package}.commands.serve", "--port", str(port)]
    command += ["--model", str(args.model)] if args.model else []
    env = {**os.environ, "PYTHONPATH": "src"}
    server = subprocess.Popen(command, cwd=project, env=env, start_new_session=True)
    try:
        ready = wait_until_ready(server, port)
        answer = first_answer(port, prompt_messages(project, args.prompt), args.max_tokens)
        chat = [sys.executable, "-m", f"{package}.commands.chat", "--port", str(port)]
        chat += ["--prompt", args.prompt or "Hello", "--max-tokens", str(args.max_tokens)]
        started = time.perf_counter()
        subprocess.run(chat, cwd=project, env=env, check=True, capture_output=True)
        chat_seconds = time.perf_counter() - started
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    report = {
        "model": str(args.model or "default (merged export, else selected)"),
        "ready_seconds": round(ready, 1),
        "first_answer": answer,
        "make_chat_seconds": round(chat_seconds, 2),
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
