"""`make serve` / `make chat`: the server command per backend and model kind, the adapter merge
path, and a real `transformers serve` on the tiny model answering OpenAI chat completions."""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from helpers import free_port
from {{ cookiecutter.module_name }}.commands import chat, serve
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.models import loading as modeling

PROJECT = Path(__file__).parents[1]
SERVER_PACKAGES = ("fastapi", "uvicorn", "openai")  # transformers serve's `serving` extra
READY_TIMEOUT_S = 60.0


def write_adapter(model_dir: Path, out_dir: Path, rank: int = 4) -> Path:
    """A LoRA adapter on `model_dir` with random (non-zero) B matrices, so merging changes
    the weights."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=rank, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, config).save_pretrained(out_dir)
    return out_dir


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "cuda_available", lambda: False)
    monkeypatch.setattr(modeling, "cpu_has_fast_bf16", lambda: False)


@pytest.fixture
def gpu_with_vllm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "cuda_available", lambda: True)
    monkeypatch.setattr(serve, "vllm_installed", lambda: True)
    monkeypatch.setattr(serve, "console_script", lambda name: name)


@pytest.fixture
def merged_dir(tmp_path: Path) -> Path:
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "config.json").write_text("{}")
    return tmp_path / "merged"


def test_auto_serves_a_merged_model_with_vllm_on_cuda(gpu_with_vllm, merged_dir: Path) -> None:
    argv = serve.build_command(merged_dir, "auto", "127.0.0.1", 8123)
    assert argv == [
        "vllm", "serve", str(merged_dir), "--host", "127.0.0.1", "--port", "8123",
        "--served-model-name", chat.SERVED_NAME,
    ]  # fmt: skip


def test_main_listens_on_localhost_by_default(
    no_gpu, merged_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[list[str]] = []
    monkeypatch.setattr(serve, "run_server", lambda argv: served.append(argv) or 0)
    serve.main(["--model", str(merged_dir)])
    (argv,) = served
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert argv[argv.index("--port") + 1] == "8000"
    assert argv[2] == str(merged_dir)


@pytest.mark.parametrize("cuda, vllm", [(False, True), (True, False)])
def test_auto_falls_back_to_transformers_serve(
    monkeypatch: pytest.MonkeyPatch, merged_dir: Path, cuda: bool, vllm: bool
) -> None:
    monkeypatch.setattr(serve, "cuda_available", lambda: cuda)
    monkeypatch.setattr(serve, "vllm_installed", lambda: vllm)
    monkeypatch.setattr(modeling, "cpu_has_fast_bf16", lambda: False)
    argv = serve.build_command(merged_dir, "auto", "127.0.0.1", 8123)
    assert Path(argv[0]).name == "transformers"
    assert argv[1:3] == ["serve", str(merged_dir)]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--no-trust-remote-code" in argv
    # Without CUDA (and native bf16) a bf16 export is served in float32, not emulated bf16.
    assert argv[argv.index("--dtype") + 1] == ("auto" if cuda else "float32")


def test_vllm_serves_an_adapter_as_a_lora_module(
    gpu_with_vllm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "base").mkdir(parents=True)
    (tmp_path / "models" / "base" / "config.json").write_text("{}")
    adapter = tmp_path / "models" / "selected"
    adapter.mkdir()
    (adapter / serve.ADAPTER_CONFIG).write_text(json.dumps({"r": 12}))
    argv = serve.build_command(adapter, "auto", "127.0.0.1", 8000)
    assert argv[:3] == ["vllm", "serve", "models/base"]
    assert argv[argv.index("--lora-modules") + 1] == f"{chat.SERVED_NAME}={adapter}"
    assert argv[argv.index("--max-lora-rank") + 1] == "16"  # vLLM takes 8, 16, ...: not 12
    assert "--enable-lora" in argv


def test_vllm_cannot_apply_an_adapter_stack(gpu_with_vllm, tmp_path: Path) -> None:
    (tmp_path / serve.ADAPTER_CONFIG).write_text(json.dumps({"r": 4}))
    (tmp_path / modeling.SFT_POINTER).write_text("{}")  # DPO on top of an SFT adapter
    with pytest.raises(serve.AdapterNeedsMerge, match="stack of two adapters"):
        serve.build_command(tmp_path, "vllm", "127.0.0.1", 8000)


def test_transformers_serve_cannot_apply_an_adapter(no_gpu, tmp_path: Path) -> None:
    (tmp_path / serve.ADAPTER_CONFIG).write_text(json.dumps({"r": 4}))
    with pytest.raises(serve.AdapterNeedsMerge, match="dvc repro export"):
        serve.build_command(tmp_path, "auto", "127.0.0.1", 8000)


def test_an_adapter_is_merged_into_a_temporary_model(
    no_gpu, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from safetensors.torch import load_file

    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_model_dir, tmp_path / "models" / "base")
    write_adapter(tiny_model_dir, tmp_path / "models" / "selected")
    base = load_file(tiny_model_dir / "model.safetensors")
    seen: dict[str, object] = {}

    def fake_run(argv: list[str]) -> int:
        served = Path(argv[2])
        seen["dir"] = served
        seen["files"] = sorted(path.name for path in served.iterdir())
        seen["weights"] = load_file(served / "model.safetensors")
        return 7

    monkeypatch.setattr(serve, "run_server", fake_run)
    assert serve.serve(None, "auto", "127.0.0.1", 8000) == 7  # the server's exit code
    files = seen["files"]
    assert "model.safetensors" in files and "tokenizer.json" in files
    assert serve.ADAPTER_CONFIG not in files
    name = next(key for key in base if key.endswith("self_attn.q_proj.weight"))
    assert not base[name].equal(seen["weights"][name])  # the adapter is merged in
    assert not seen["dir"].exists()  # the temporary merge is removed afterwards


def test_the_merged_export_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StageError, match="make repro"):
        serve.find_model()
    for where, name in [(serve.SELECTED_DIR, serve.ADAPTER_CONFIG), (serve.MERGED_EXPORT, "")]:
        where.mkdir(parents=True)
        (where / (name or "config.json")).write_text("{}")
        assert serve.find_model() == where
    with pytest.raises(StageError, match="holds no model"):
        serve.find_model(tmp_path)


def test_chat_picks_the_selected_model() -> None:
    assert chat.pick_model(["base", chat.SERVED_NAME]) == chat.SERVED_NAME
    assert chat.pick_model(["/some/dir"]) == "/some/dir"
    assert chat.messages_for("hi", "be brief") == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


# --- a real server ------------------------------------------------------------------------


def post_json(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=60) as response:
        return response.status, json.load(response)


def wait_until_ready(server: subprocess.Popen, port: int, log: Path) -> float:
    """Seconds until GET /health answers 200; fails with the server's log otherwise."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    while time.monotonic() - started < READY_TIMEOUT_S:
        if server.poll() is not None:
            pytest.fail(f"the server exited ({server.returncode}):\n{log.read_text()}")
        try:
            with opener.open(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"no answer in {READY_TIMEOUT_S:.0f} s:\n{log.read_text()}")


def stop(server: subprocess.Popen) -> int | None:
    server.terminate()
    try:
        return server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)  # the server runs in its own session
        server.wait()
        return None


def test_serve_answers_chat_completions(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"transformers serve needs {', '.join(missing)}: pip install -e '.[serve]'")
    model = shutil.copytree(tiny_model_dir, tmp_path / "merged")
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "PYTHONPATH": str(PROJECT / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "{{ cookiecutter.module_name }}.commands.serve"]
    command += ["--model", str(model), "--port", str(port), "--backend", "transformers"]
    with log.open("w") as out:
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until_ready(server, port, log)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        messages = chat.messages_for("My order arrived broken.", "Triage the ticket.")
        answers = {}
        for max_tokens in (2, 8):
            body = {"model": str(model), "messages": messages, "max_tokens": max_tokens}
            status, answer = post_json(url, {**body, "temperature": 0})
            assert status == 200, answer
            choice = answer["choices"][0]
            assert choice["message"]["content"], answer
            assert choice["finish_reason"] in ("length", "stop"), answer
            assert answer["usage"]["completion_tokens"] <= max_tokens, answer
            answers[max_tokens] = answer
        cut = answers[2]
        assert cut["choices"][0]["finish_reason"] == "length"  # the random model never stops
        assert cut["usage"]["completion_tokens"] == 2
        assert answers[8]["usage"]["completion_tokens"] > 2
        # `make chat`'s client: the same greedy answer through either transport.
        for client in ("openai", "urllib"):
            via = chat.ask("My order arrived broken.", port=port, system="Triage the ticket.",
                           max_tokens=8, client=client)  # fmt: skip
            assert via.content == answers[8]["choices"][0]["message"]["content"]
            assert via.model == str(model)
        expected = chat.ask("Hello", port=port, max_tokens=3).content
        chat.main(["--prompt", "Hello", "--port", str(port), "--max-tokens", "3"])
        printed, warned = capsys.readouterr()
        assert printed == expected + "\n" and "--max-tokens 3" in warned
    finally:
        code = stop(server)
    # SIGTERM reached the server, which shut down cleanly: uvicorn then exits 0 or (since
    # 0.29) re-raises the signal, which `serve` reports as shells do.
    assert code in (0, 128 + signal.SIGTERM), log.read_text()
    assert "Application shutdown complete" in log.read_text()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
