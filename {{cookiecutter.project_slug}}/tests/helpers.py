"""Small helpers several test modules share (fixtures live in conftest.py)."""

import contextlib
import csv
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil

SRC = Path(__file__).parents[1] / "src"


def run_python(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python *args` in a fresh process on one thread with the project's src/ importable
    (a stage run as `python -m`, or a script that patches one and runs it), output captured."""
    return subprocess.run(
        [sys.executable, *args],
        env={
            **os.environ,
            "PYTHONPATH": str(SRC),
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=300,
    )


def read_tsv(path: Path) -> list[dict[str, str]]:
    """The rows of a DVCLive TSV (reports/train/plots/metrics/*.tsv), values as text."""
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def mtimes(directory: Path) -> dict[str, int]:
    """Modification times of a directory and everything in it, by path relative to it."""
    paths = [directory, *sorted(directory.rglob("*"))]
    return {str(path.relative_to(directory)): path.stat().st_mtime_ns for path in paths}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_reconciles(result: Any) -> None:
    """Every raw row of a curate run is accounted for exactly once: kept, a preference pair,
    quarantined, or dropped as a duplicate."""
    out = (result.kept, result.preferences, result.quarantined, result.duplicates)
    assert result.rows_in == sum(len(rows) for rows in out)


def stop_tree(process: subprocess.Popen) -> None:
    """SIGTERM a process and everything under it, then SIGKILL what is left. torchrun puts
    each worker in a session of its own, so the workers are found as descendants, not by
    process group."""
    try:
        root = psutil.Process(process.pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=20)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def reachable(start: str, neighbours: Callable[[str], Iterable[str]]) -> set[str]:
    """`start` and every node reachable from it through `neighbours` (e.g. what a module
    imports, transitively)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(neighbours(current))
    return seen
