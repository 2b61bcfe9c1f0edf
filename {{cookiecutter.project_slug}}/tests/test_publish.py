"""`make publish`: what goes to the Hugging Face Hub, and the token's safety.

The Hub is a stub HTTP server on 127.0.0.1 speaking the endpoints an upload uses (create repo,
create branch, validate the card, preupload, commit), reached through HF_ENDPOINT by the real
`python -m ... export.publish` in a subprocess; it records every request, so the tests check
the repo, the files and their bytes, the card, and the token each request carried."""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import ModelCard

from {{ cookiecutter.module_name }}.commands import publish
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import write_json
from {{ cookiecutter.module_name }}.selection.modelcard import CardFacts, model_card

MODULE = "{{ cookiecutter.module_name }}.commands.publish"
SRC = Path(__file__).parents[1] / "src"
TOKEN = "hf_stubTokenThatMustNeverLeak0123456789"
REPO = "someone/triage-model"
METRICS = {
    "selected": "checkpoint-8",
    "task_accuracy": 0.75,
    "task_accuracy_lo": 0.5,
    "task_accuracy_hi": 1.0,
    "guardrails_passed": True,
}
# the files each --what uploads (with README.md, the card, and LICENSE), and their bytes
SELECTED = {
    "adapter_config.json": b'{"r": 8}',
    "adapter_model.safetensors": b"\x00adapter" * 64,
    "tokenizer.json": b'{"model": {}}',
    "tokenizer_config.json": b"{}",
    "chat_template.jinja": b"<the chat template>",
    "selection.json": b'{"checkpoint": "checkpoint-8"}',
}
MERGED = {
    "config.json": b'{"model_type": "llama"}',
    "model.safetensors": b"\x00merged" * 128,
    "generation_config.json": b"{}",
    "tokenizer.json": b'{"model": {}}',
    "tokenizer_config.json": b"{}",
}
GGUF = {"model-q8_0.gguf": b"GGUF" + b"\x01" * 300, "Modelfile": b"FROM ./model-q8_0.gguf\n"}
# what must stay home: optimizer state, a hidden file, the merged copy inside models/selected
LEFT_OUT = {
    "models/selected/optimizer.pt": b"state",
    "models/selected/.credentials.json": b'{"secret": 1}',
    "models/selected/merged/model.safetensors": b"merged twice",
    "models/export/merged/.cache/huggingface/x.lock": b"",
    "models/export/gguf/notes.md": b"scratch",
}


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project after `make repro`: the selected model with its card, the exports, metrics."""
    root = tmp_path / "project"
    write_files(root / "models/selected", SELECTED)
    write_files(root / "models/export/merged", MERGED)
    write_files(root / "models/export/gguf", GGUF)
    write_files(root, LEFT_OUT)
    (root / "LICENSE").write_text("MIT License\n\nCopyright (c) 2025 Someone\n")
    card = model_card(
        CardFacts(
            base={"model": "embedded:smollm2-135m-instruct", "kind": "embedded"},
            selected={"model": "checkpoint-8", "step": 8},
            headline=METRICS,
            train_params={"method": "lora"},
            data_hashes={"test": "cc33"},
            findings=[],
            exports=["merged", "gguf"],
        )
    )
    card.save(root / "models/selected/README.md")
    write_json(root / "reports/metrics.json", METRICS)
    write_json(root / "reports/diagnosis.json", {"guardrail_failures": [], "findings": []})
    monkeypatch.chdir(root)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return root


def expected_files(what: str) -> dict[str, bytes]:
    """Path in the repo -> bytes, without the card (it is rewritten for each --what)."""
    files = {"adapter": SELECTED, "merged": MERGED, "gguf": GGUF}[what]
    return {**files, "LICENSE": Path("LICENSE").read_bytes()}


# ------------------------------------------------------------------------------ stub Hub


@dataclass
class Hub:
    """What the stub Hub was asked: each request (method, path, Authorization header), the
    cards it validated, the repos and branches created, and the files of each commit."""

    url: str = ""
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    validated: list[str] = field(default_factory=list)
    created: list[dict] = field(default_factory=list)
    branches: list[str] = field(default_factory=list)
    commits: list[dict[str, Any]] = field(default_factory=list)


def handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def answer(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            hub.requests.append(("GET", self.path, self.headers.get("Authorization")))
            self.answer(404, {"error": f"stub Hub: no GET {self.path}"})

        def do_POST(self) -> None:
            hub.requests.append(("POST", self.path, self.headers.get("Authorization")))
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            path = self.path.split("?")[0]
            if path == "/api/repos/create":
                hub.created.append(json.loads(body))
                self.answer(200, {"url": f"{hub.url}/{REPO}"})
            elif path == "/api/validate-yaml":
                hub.validated.append(json.loads(body)["content"])
                self.answer(200, {})
            elif path.startswith(f"/api/models/{REPO}/branch/"):
                hub.branches.append(path.rsplit("/", 1)[1])
                self.answer(200, {})
            elif path.startswith(f"/api/models/{REPO}/preupload/"):
                files = json.loads(body)["files"]
                regular = {"uploadMode": "regular", "shouldIgnore": False}
                self.answer(200, {"files": [{"path": f["path"], **regular} for f in files]})
            elif path.startswith(f"/api/models/{REPO}/commit/"):
                lines = [json.loads(line) for line in body.splitlines() if line.strip()]
                files = {
                    line["value"]["path"]: base64.b64decode(line["value"]["content"])
                    for line in lines
                    if line["key"] == "file"
                }
                header = next(line["value"] for line in lines if line["key"] == "header")
                revision = path.rsplit("/", 1)[1]
                summary = header["summary"]
                hub.commits.append({"revision": revision, "summary": summary, "files": files})
                url = f"{hub.url}/{REPO}/commit/c0ffee"
                self.answer(200, {"commitUrl": url, "commitOid": "c0ffee", "pullRequestUrl": None})
            else:
                self.answer(404, {"error": f"stub Hub: no POST {path}"})

    return Handler


@pytest.fixture
def hub() -> Iterator[Hub]:
    recorded = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(recorded))
    recorded.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorded
    server.shutdown()
    server.server_close()


def run_publish(
    args: list[str], home: Path, endpoint: str, token: str | None = TOKEN
) -> subprocess.CompletedProcess:
    """`python -m ...export.publish` as `make publish` runs it, against `endpoint`, with its
    own empty Hugging Face home (no stored token to fall back on)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env |= {
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",  # the plain preupload + commit protocol, which the stub speaks
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "PYTHONPATH": str(SRC),
    }
    if token is not None:
        env["HF_TOKEN"] = token
    command = [sys.executable, "-m", MODULE, "--repo-id", REPO, *args]
    return subprocess.run(
        command, cwd=Path.cwd(), env=env, capture_output=True, text=True, timeout=120
    )


def private(created: dict) -> bool:
    """Whether a create-repo request asked for a private repo (the field's name varies with
    the huggingface_hub version)."""
    return created.get("visibility", "private" if created.get("private") else "public") == "private"


def leaked(text: str) -> bool:
    """Whether `text` shows the token, or its secret part."""
    return TOKEN[3:] in text or TOKEN[-16:] in text


def leaked_into(roots: list[Path]) -> list[Path]:
    """Files under `roots` whose bytes show the token."""
    return [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and leaked(path.read_bytes().decode("utf-8", "replace"))
    ]


# ------------------------------------------------------------------------------ uploads


@pytest.mark.parametrize(
    ("what", "library", "relation", "usage"),
    [
        ("adapter", "peft", "adapter", "PeftModel.from_pretrained(AutoModelForCausalLM"),
        ("merged", "transformers", "finetune", f"AutoModelForCausalLM.from_pretrained('{REPO}')"),
    ],
)
def test_publish_uploads_the_files_and_card_in_one_commit_with_the_env_token(
    published: Path, hub: Hub, tmp_path: Path, what: str, library: str, relation: str, usage: str
) -> None:
    home = tmp_path / "hf-home"
    done = run_publish(["--what", what, "--private"], home, hub.url)
    assert done.returncode == 0, done.stderr
    assert f"publish: {len(expected_files(what)) + 1} files ({what}) to {REPO}" in done.stdout

    (created,) = hub.created
    assert (created["organization"], created["name"]) == ("someone", "triage-model")
    assert private(created)
    (commit,) = hub.commits
    card = commit["files"].pop("README.md").decode()
    assert commit["files"] == expected_files(what)  # nothing left out, nothing extra
    assert commit["revision"] == "main" and hub.branches == []
    assert commit["summary"] == f"checkpoint-8 ({what}): test task accuracy 0.750 [0.500, 1.000]"
    # the card: validated by the Hub before the upload, its metadata set for what it describes
    assert hub.validated and set(hub.validated) == {card}
    data = ModelCard(card).data.to_dict()
    assert data["library_name"] == library and data["base_model_relation"] == relation
    assert data["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert data["model-index"][0]["results"][0]["metrics"][0]["value"] == 0.75
    assert f"Load from the Hub: `{usage}" in card and f"'{REPO}')`" in card
    # the token: sent to the Hub on every request, from HF_TOKEN only
    assert hub.requests and all(auth == f"Bearer {TOKEN}" for _, _, auth in hub.requests)
    assert not leaked(done.stdout + done.stderr) and not leaked_into([published, home])
    assert not list((published / ".cache").iterdir())  # the staging folder is gone


def test_publish_gguf_commits_to_a_new_branch(published: Path, hub: Hub, tmp_path: Path) -> None:
    args = ["--what", "gguf", "--revision", "q8", "--message", "GGUF q8_0"]
    done = run_publish(args, tmp_path / "hf-home", hub.url)
    assert done.returncode == 0, done.stderr
    assert not private(hub.created[0]) and hub.branches == ["q8"]
    (commit,) = hub.commits
    card = ModelCard(commit["files"].pop("README.md").decode())
    assert commit["files"] == expected_files("gguf")
    assert commit["revision"] == "q8" and commit["summary"] == "GGUF q8_0"
    assert card.data.library_name == "gguf" and "gguf" in card.data.tags
    assert "ollama create <name> -f model/Modelfile" in card.text


def test_a_token_the_hub_refuses_is_a_clear_error_without_the_token(
    published: Path, tmp_path: Path
) -> None:
    refused = f"{TOKEN}-revoked"

    class Refusing(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.send_response(401)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        done = run_publish([], tmp_path / "hf-home", endpoint, token=refused)
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1
    assert "refused the token in HF_TOKEN (401)" in done.stderr
    assert not leaked(done.stdout + done.stderr)


def test_the_token_comes_from_hf_token_only_not_a_stored_login(
    published: Path, hub: Hub, tmp_path: Path
) -> None:
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(TOKEN)  # what `hf auth login` stores
    done = run_publish([], home, hub.url, token=None)
    assert done.returncode == 1 and "HF_TOKEN is not set" in done.stderr
    assert hub.requests == []  # stopped before the Hub


# ------------------------------------------------------------------ no network at all


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any use of HfApi fails the test: these paths must not touch the network."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("publish used the Hub")

    monkeypatch.setattr(publish, "HfApi", refuse)


@pytest.mark.parametrize("what", ["adapter", "merged", "gguf"])
def test_dry_run_lists_exactly_the_files_and_sizes(
    published: Path, no_hub: None, capsys: pytest.CaptureFixture, what: str
) -> None:
    publish.main(["--repo-id", REPO, "--what", what, "--dry-run"])
    out = capsys.readouterr().out
    head, *lines = out.splitlines()
    assert head.startswith("publish: dry run, nothing uploaded: ")
    assert f"({what}) to https://huggingface.co/{REPO} (model repo, public if created" in head
    listed = dict(reversed(line.split(" B  ")) for line in lines)
    sizes = {name: f"{len(content):,}" for name, content in expected_files(what).items()}
    card = listed.pop("README.md")
    assert {name: size.strip() for name, size in listed.items()} == sizes
    assert int(card.replace(",", "")) > 1000  # the card, rewritten for what is uploaded
    total = sum(int(size.replace(",", "")) for size in [*sizes.values(), card])
    assert f"{len(sizes) + 1} files, {total:,} bytes" in head
    assert not (published / ".cache").exists()  # nothing staged either


def test_dry_run_needs_no_token(published: Path, no_hub: None, capsys) -> None:
    publish.main(["--repo-id", REPO, "--dry-run", "--private", "--revision", "v1"])
    assert "(model repo, private if created, revision v1)" in capsys.readouterr().out


def test_without_hf_token_publish_stops_before_the_hub(published: Path, no_hub: None) -> None:
    with pytest.raises(StageError, match=r"^HF_TOKEN is not set: create a write token"):
        publish.main(["--repo-id", REPO])


def test_a_model_that_failed_the_guardrails_is_refused_unless_forced(
    published: Path, no_hub: None, capsys: pytest.CaptureFixture
) -> None:
    write_json(Path("reports/metrics.json"), METRICS | {"guardrails_passed": False})
    write_json(
        Path("reports/diagnosis.json"),
        {"guardrail_failures": ["forgetting_score 0.4 > max_forgetting 0.2"], "findings": []},
    )
    with pytest.raises(StageError) as refused:
        publish.main(["--repo-id", REPO, "--dry-run"])
    assert str(refused.value).startswith("refused: reports/metrics.json: guardrails_passed is")
    assert "(forgetting_score 0.4 > max_forgetting 0.2)" in str(refused.value)
    assert "--force" in str(refused.value) and capsys.readouterr().out == ""

    publish.main(["--repo-id", REPO, "--dry-run", "--force"])
    assert "publish: dry run" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--repo-id", "triage-model"], "name the owner too"),
        (["--repo-id", "someone/bad name"], "--repo-id 'someone/bad name'"),
        (["--repo-id", REPO, "--what", "gguf"], "models/export/gguf does not exist: it is written"),
    ],
)
def test_bad_targets_and_missing_exports_are_clear_errors(
    published: Path, no_hub: None, args: list[str], error: str
) -> None:
    if "gguf" in args:
        for path in (published / "models/export/gguf").iterdir():
            path.unlink()
        (published / "models/export/gguf").rmdir()
    with pytest.raises(StageError, match=re.escape(error)):
        publish.main([*args, "--dry-run"])


# ---------------------------------------------------------------------------- Makefile


def make_publish(*variables: str) -> subprocess.CompletedProcess:
    """`make -n publish ...` in the project: the command it would run, run nothing."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    command = ["make", "-n", "--no-print-directory", "publish", "VENV=", *variables]
    return subprocess.run(command, cwd=SRC.parent, capture_output=True, text=True, timeout=60)


def test_make_publish_passes_the_variables_as_flags() -> None:
    shown = make_publish(f"REPO_ID={REPO}", "WHAT=gguf", "DRY_RUN=1", "PRIVATE=0")
    assert shown.returncode == 0, shown.stderr
    flat = " ".join(shown.stdout.replace("\\\n", " ").split())
    assert f"python -m {MODULE} --repo-id '{REPO}' --what 'gguf' --dry-run" in flat
    assert "--private" not in flat and "--force" not in flat

    forced = make_publish(f"REPO_ID={REPO}", "FORCE=1", "PUBLISH_ARGS=--revision v2")
    flat = " ".join(forced.stdout.replace("\\\n", " ").split())
    assert f"--repo-id '{REPO}' --what 'adapter' --force --revision v2" in flat
    assert "--dry-run" not in flat


def test_make_publish_without_a_repo_id_says_how_to_call_it() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    command = ["make", "--no-print-directory", "publish", "VENV="]
    done = subprocess.run(command, cwd=SRC.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "usage: make publish REPO_ID=<user>/<name>" in done.stderr
