"""A hub-id base model (`base.model: org/name`) end to end, against a stub Hugging Face Hub on
127.0.0.1 that serves the tiny model's real files the way huggingface_hub asks for them: the
`base` stage pins the commit `main` points to, tokenizer and model load from the Hugging Face
cache at that commit (a later commit on the Hub changes nothing), the `smoke` stage trains on
it, and with HF_HUB_OFFLINE=1 and the stub stopped `base` pins the same commit and the model
loads. Also the arguments the vLLM and lm-eval backends get for a local and a hub base.

huggingface_hub reads HF_ENDPOINT, HF_HUB_CACHE and HF_HUB_OFFLINE once at import, so its
constants are patched, as in test_base_offline.py."""

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import huggingface_hub.hf_api
import pytest
import torch
import yaml
from huggingface_hub import constants
from safetensors.torch import load_file

from {{ cookiecutter.module_name }}.evaluation import lmeval
from {{ cookiecutter.module_name }}.evaluation.generation import vllm_engine_args
from {{ cookiecutter.module_name }}.io import read_json, write_json
from {{ cookiecutter.module_name }}.models.loading import load_base_model, load_tokenizer
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, SMOKE_REPORT
from {{ cookiecutter.module_name }}.stages import base as base_stage
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage
from tiny_model import build_tiny_model

HUB_ID = "stub-org/tiny-model"
WEIGHT = "model.embed_tokens.weight"

# ----------------------------------------------------------- backend arguments (no network)


def local_base(tmp_path: Path) -> Path:
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    return base


def hub_base(tmp_path: Path, commit: str = "c" * 40) -> Path:
    base = tmp_path / "base"
    write_json(base / "manifest.json", {"kind": "hub", "hub_id": HUB_ID, "revision": commit})
    return base


def test_vllm_loads_a_local_base_from_its_dir(tmp_path: Path) -> None:
    args = vllm_engine_args(local_base(tmp_path), max_lora_rank=16)
    assert args == {
        "model": str(tmp_path / "base"),
        "enable_lora": True,
        "max_lora_rank": 16,
        "trust_remote_code": False,
        "seed": 0,
    }


def test_vllm_loads_a_hub_base_at_the_pinned_commit(tmp_path: Path) -> None:
    args = vllm_engine_args(hub_base(tmp_path))
    assert args["model"] == HUB_ID
    assert args["revision"] == args["tokenizer_revision"] == "c" * 40
    assert args["trust_remote_code"] is False and args["enable_lora"]


def test_lm_eval_loads_a_local_base_from_its_dir(tmp_path: Path) -> None:
    base = local_base(tmp_path)
    assert lmeval.model_args(None, base) == (
        f"pretrained={base},dtype=float32,trust_remote_code=False"
    )
    checkpoint = Path("models/checkpoints/checkpoint-2")
    assert lmeval.model_args(checkpoint, base).endswith(f",peft={checkpoint}")


def test_lm_eval_loads_a_hub_base_at_the_pinned_commit(tmp_path: Path) -> None:
    checkpoint = Path("models/checkpoints/checkpoint-2")
    assert lmeval.model_args(checkpoint, hub_base(tmp_path)) == (
        f"pretrained={HUB_ID},revision={'c' * 40},dtype=float32,trust_remote_code=False,"
        f"peft={checkpoint}"
    )


# ------------------------------------------------------------------------------ stub hub


def read_files(model_dir: Path) -> dict[str, bytes]:
    return {
        path.relative_to(model_dir).as_posix(): path.read_bytes()
        for path in sorted(model_dir.rglob("*"))
        if path.is_file()
    }


class StubHub:
    """One model repo: commits (sha -> files), branches (name -> sha), the requests seen."""

    def __init__(self, repo_id: str) -> None:
        self.repo_id = repo_id
        self.commits: dict[str, dict[str, bytes]] = {}
        self.refs: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []

    def push(self, files: dict[str, bytes], branch: str = "main") -> str:
        """A new commit holding `files` at the head of `branch`; its sha."""
        sha = hashlib.sha1(repr(sorted(files.items())).encode()).hexdigest()
        self.commits[sha] = files
        self.refs[branch] = sha
        return sha

    def resolve(self, revision: str) -> str | None:
        return self.refs.get(revision) or (revision if revision in self.commits else None)


class StubHandler(BaseHTTPRequestHandler):
    """The Hub's model_info, tree listing and file resolve endpoints, for StubHub.repo."""

    hub: StubHub

    def do_HEAD(self) -> None:
        self.answer(head=True)

    def do_GET(self) -> None:
        self.answer(head=False)

    def answer(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append((self.command, path))
        api, repo = f"/api/models/{self.hub.repo_id}", f"/{self.hub.repo_id}"
        if path == api or path.startswith(f"{api}/revision/"):
            self.model_info(path.removeprefix(api).removeprefix("/revision/") or "main", head)
        elif path.startswith(f"{api}/tree/"):  # {revision}[/{folder}]
            self.tree(*path.removeprefix(f"{api}/tree/").partition("/")[::2], head)
        elif path.startswith(f"{repo}/resolve/"):  # {revision}/{filename}
            self.file(*path.removeprefix(f"{repo}/resolve/").partition("/")[::2], head)
        else:
            self.send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})

    def model_info(self, revision: str, head: bool) -> None:
        sha = self.hub.resolve(revision)
        if sha is None:
            self.send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, head)
            return
        siblings = [{"rfilename": name} for name in self.hub.commits[sha]]
        info = {"id": self.hub.repo_id, "sha": sha, "private": False, "siblings": siblings}
        self.send(200, json.dumps(info).encode(), {}, head)

    def tree(self, revision: str, folder: str, head: bool) -> None:
        sha = self.hub.resolve(revision)
        if sha is None:
            self.send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, head)
            return
        prefix = f"{folder}/" if folder else ""
        entries = [
            {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
            for name, data in self.hub.commits[sha].items()
            if name.startswith(prefix)
        ]
        if folder and not entries:
            self.send(404, b"{}", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, head)
            return
        self.send(200, json.dumps(entries).encode(), {"X-Repo-Commit": sha}, head)

    def file(self, revision: str, filename: str, head: bool) -> None:
        sha = self.hub.resolve(revision)
        if sha is None:
            self.send(404, b"{}", {"X-Error-Code": "RevisionNotFound"}, head)
            return
        data = self.hub.commits[sha].get(filename)
        if data is None:
            self.send(404, b"{}", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": sha}, head)
            return
        etag = f'"{hashlib.sha256(data).hexdigest()}"'
        self.send(200, data, {"ETag": etag, "X-Repo-Commit": sha}, head)

    def send(self, status: int, body: bytes, headers: dict[str, str], head: bool = False) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class RunningStub:
    def __init__(self, hub: StubHub) -> None:
        handler = type("Handler", (StubHandler,), {"hub": hub})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # shutdown() waits for the next poll (every 0.5 s by default)
        poll = {"poll_interval": 0.02}
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs=poll, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.server.server_close()
            self.thread.join()


def point_hub_at(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_ENDPOINT, as huggingface_hub derived it at import: the API's and the downloads'."""
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    template = url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    # the module-level functions (file_exists, ...: peft asks one) are methods of this HfApi
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", url)


@pytest.fixture
def stub_hub(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[StubHub, RunningStub]]:
    """The tiny model as the first commit of HUB_ID on a running stub Hub; an empty Hugging
    Face cache under tmp_path, online, no token."""
    hub = StubHub(HUB_ID)
    hub.push(read_files(tiny_model_dir))
    running = RunningStub(hub)
    point_hub_at(running.url, monkeypatch)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-token"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "")
    # transformers keeps one HfApi, endpoint included, from its first hub call on
    monkeypatch.setattr("transformers.utils.hub._hf_api", None, raising=False)
    yield hub, running
    running.stop()


def use_hub_base(project: Path) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["base"] = {"model": HUB_ID, "revision": None}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def embeddings(model) -> torch.Tensor:
    return model.get_input_embeddings().weight.detach()


def test_a_hub_base_pins_its_commit_trains_and_works_offline(
    project: Path,
    stub_hub: tuple[StubHub, RunningStub],
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
) -> None:
    hub, running = stub_hub
    use_hub_base(project)

    base_stage.main()
    manifest = {"kind": "hub", "hub_id": HUB_ID, "revision": hub.refs["main"]}
    assert read_json(BASE_MODEL_DIR / "manifest.json") == manifest
    assert [p.name for p in BASE_MODEL_DIR.iterdir()] == ["manifest.json"]  # weights stay out

    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    expected = load_file(tiny_model_dir / "model.safetensors")[WEIGHT]
    assert torch.equal(embeddings(load_base_model(BASE_MODEL_DIR)), expected)
    assert tokenizer.chat_template and tokenizer.eos_token == "<|im_end|>"
    smoke_stage.main()  # the real smoke stage: a few LoRA steps, loss falls, adapter reloads
    report = read_json(SMOKE_REPORT)
    assert report["passed"], report["problems"]

    # offline: the stub is gone; `base` pins the same commit from the cache, the model loads
    running.stop()
    point_hub_at("http://127.0.0.1:9", monkeypatch)  # were anything to ask: refused
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # peft reads the environment
    base_stage.main()
    assert read_json(BASE_MODEL_DIR / "manifest.json") == manifest
    assert torch.equal(embeddings(load_base_model(BASE_MODEL_DIR)), expected)
    assert load_tokenizer(BASE_MODEL_DIR).chat_template == tokenizer.chat_template


def test_loads_use_the_pinned_commit_after_main_moves(
    project: Path, stub_hub: tuple[StubHub, RunningStub], tmp_path: Path, tiny_model_dir: Path
) -> None:
    hub, _ = stub_hub
    use_hub_base(project)
    base_stage.main()
    pinned = read_json(BASE_MODEL_DIR / "manifest.json")["revision"]
    assert pinned == hub.refs["main"]

    newer = hub.push(read_files(build_tiny_model(tmp_path / "newer", seed=1)))
    hub.requests.clear()
    tokenizer, model = load_tokenizer(BASE_MODEL_DIR), load_base_model(BASE_MODEL_DIR)
    expected = load_file(tiny_model_dir / "model.safetensors")[WEIGHT]
    assert torch.equal(embeddings(model), expected)
    assert tokenizer.chat_template
    downloads = [path for _, path in hub.requests if "/resolve/" in path]
    assert any(path.endswith("/model.safetensors") for path in downloads)
    assert all(f"/resolve/{pinned}/" in path for path in downloads), downloads
    assert not any(newer in path or "/main" in path for _, path in hub.requests), hub.requests
