"""DVC's experiment queue on the command line: queue experiments, run the queue with N workers
(`dvc exp run --run-all -j N`, each in a temporary copy, so the workspace is untouched) and
read every run back (`dvc exp show --json`)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from ..errors import StageError
from .formatting import log_tail
from .runs import Run, parse_exp_show


def dvc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )
    if check and result.returncode:
        tail = "\n".join(log_tail(result.stdout + result.stderr, 6))
        raise StageError(f"`dvc {' '.join(args)}` failed ({result.returncode}):\n{tail}")
    return result


def exp_show() -> tuple[Run | None, list[Run]]:
    return parse_exp_show(json.loads(dvc("exp", "show", "--json").stdout))


def warn_uncommitted(label: str) -> None:
    if subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout:
        print(
            f"{label}: warning: uncommitted changes: the experiments include them, and "
            "`dvc exp apply` leaves files they deleted; commit the baseline run first"
        )


def copy_caches(cache_dir: Path) -> list[str]:
    """`-C <dir>` for the eval cache (generations and val losses): untracked, so copied in,
    each experiment reuses the baseline's base-model work."""
    return ["-C", cache_dir.as_posix()] if cache_dir.is_dir() else []


def queue(name: str, set_args: list[str], copy_args: list[str]) -> None:
    """`dvc exp run --queue -n <name> -S key=value ...`: queued, not run yet."""
    dvc("exp", "run", "--queue", "-n", name, *set_args, *copy_args)


def worker_threads(jobs: int, cores: int) -> int:
    """Torch threads per queue worker: the cores shared out, so jobs x threads <= cores."""
    return max(1, cores // max(1, jobs))


def run_queue(jobs: int, label: str) -> None:
    """`dvc exp run --run-all -j N`: starts N queue workers and blocks until every queued
    experiment has finished, following their logs; only the progress lines are printed. The
    workers inherit OMP_NUM_THREADS (unless set): cores / N torch threads each."""
    from ..training.hardware import cpu_cores  # imports torch: only when a queue runs

    env = {"OMP_NUM_THREADS": str(worker_threads(jobs, cpu_cores())), **os.environ}
    threads = env["OMP_NUM_THREADS"]
    print(
        f"{label}: running the queue, {jobs} at a time, {threads} torch thread"
        f"{'' if threads == '1' else 's'} each (`dvc queue status` shows it too)"
    )
    start = time.monotonic()
    command = [sys.executable, "-m", "dvc", "exp", "run", "--run-all", "-j", str(jobs)]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=env
    ) as process:
        assert process.stdout is not None
        current = "?"
        try:
            for line in process.stdout:
                if match := re.match(r"Reproducing experiment '(.+)'", line):
                    current = match.group(1)
                elif match := re.match(r"Running stage '(.+)'", line):
                    minutes, seconds = divmod(int(time.monotonic() - start), 60)
                    print(f"{label}: [{minutes:02d}:{seconds:02d}] {current}: {match.group(1)}")
        except KeyboardInterrupt:
            raise StageError(
                "stopped waiting; the experiments keep running in the background (`dvc queue "
                f"status`, `dvc queue kill <name>` stops one): `make {label}` again summarises "
                "them once they are done"
            ) from None
    if process.returncode:
        print(f"{label}: `dvc exp run --run-all` exited with {process.returncode}")


def run_if_waiting(existing: list[Run], queued: bool, jobs: int, label: str) -> None:
    """run_queue, unless nothing waits: none `queued` now and none of `existing` (the
    experiments before) still queued or running."""
    if queued or any(run.state in ("queued", "running") for run in existing):
        run_queue(jobs, label)
