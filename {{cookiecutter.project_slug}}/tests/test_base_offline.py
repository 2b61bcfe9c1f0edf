"""A hub-id base model (`base.model: org/name`) on a machine that cannot reach the Hub, or
naming a repo that is missing, private or gated, fails as one StageError line saying what to
do; with HF_HUB_OFFLINE=1 the revision comes from the local Hugging Face cache.

Every request goes to loopback: port 9 (nothing listens: connection refused) or a stub server
answering the way the Hub does."""

import importlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from huggingface_hub import constants

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.models.hub import hub_error, is_transport_error, materialise

HUB_ID = "org/name"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Online mode, an empty local cache, no token; returns the cache directory.
    huggingface_hub reads HF_ENDPOINT etc. once at import, so its constants are patched."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "")
    return cache


def materialise_hub(tmp_path: Path, revision: str | None = None) -> Path:
    out = tmp_path / "models" / "base"
    materialise(HUB_ID, revision, out)
    return out


def one_line_error(tmp_path: Path, revision: str | None = None) -> str:
    started = time.monotonic()
    with pytest.raises(StageError) as raised:
        materialise_hub(tmp_path, revision)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_an_unreachable_hub_is_one_line_saying_what_to_do(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    message = one_line_error(tmp_path)
    assert "cannot reach the Hugging Face Hub" in message
    assert f"hf download {HUB_ID}" in message  # pre-download where there is network ...
    assert "base.model" in message  # ... and point base.model at the directory
    assert "HF_HUB_OFFLINE=1" in message  # or use the local cache


class HubStub(BaseHTTPRequestHandler):
    """Answers every request with the status and X-Error-Code set on the class, after `delay`
    seconds."""

    status = 404
    error_code: str | None = None
    delay = 0.0

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = b'{"error": "stub"}'
        try:
            self.send_response(self.status)
            if self.error_code:
                self.send_header("X-Error-Code", self.error_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out first (the point of `delay`)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub_hub(hub: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[HubStub]]:
    handler = type("Handler", (HubStub,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # shutdown() waits for the next poll (every 0.5 s by default)
    poll = {"poll_interval": 0.02}
    thread = threading.Thread(target=server.serve_forever, kwargs=poll, daemon=True)
    thread.start()
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "error_code", "expected"),
    [
        (404, "RepoNotFound", "not found on the Hugging Face Hub"),
        (401, "RepoNotFound", "not found on the Hugging Face Hub"),
        (403, "GatedRepo", "is gated"),
        (404, "RevisionNotFound", "has no revision"),
        (401, None, "refused access"),  # e.g. an invalid token
        (503, None, "answered 503"),
    ],
)
def test_a_missing_or_gated_repo_is_its_own_line(
    stub_hub: type[HubStub], tmp_path: Path, status: int, error_code: str | None, expected: str
) -> None:
    stub_hub.status, stub_hub.error_code = status, error_code
    message = one_line_error(tmp_path, revision="v1")
    assert expected in message
    assert HUB_ID in message
    assert "cannot reach" not in message


def test_a_hub_that_does_not_answer_times_out(
    stub_hub: type[HubStub], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A firewall that drops packets must not hang the stage: the lookup has a timeout
    (HF_HUB_ETAG_TIMEOUT, 10 s by default)."""
    stub_hub.delay = 3.0
    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 0.5)
    started = time.monotonic()
    message = one_line_error(tmp_path)
    assert time.monotonic() - started < 2.5
    assert "cannot reach the Hugging Face Hub" in message


def cache_snapshot(cache: Path, ref: str = "main", files=("config.json", "model.safetensors")):
    """A model in the local HF cache, laid out as huggingface_hub stores it."""
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / ref).write_text(COMMIT)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    for name in files:
        (repo / "snapshots" / COMMIT / name).write_text("{}")


@pytest.mark.parametrize("revision", [None, "main", COMMIT])
def test_offline_mode_pins_the_revision_of_the_local_cache(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, revision: str | None
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    cache_snapshot(hub)
    manifest = read_json(materialise_hub(tmp_path, revision) / "manifest.json")
    assert manifest == {"kind": "hub", "hub_id": HUB_ID, "revision": COMMIT}


def test_offline_mode_without_the_model_cached_says_so(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    message = one_line_error(tmp_path)
    assert "HF_HUB_OFFLINE" in message
    assert "not in the local Hugging Face cache" in message
    assert f"hf download {HUB_ID}" in message


def test_offline_mode_with_a_branch_on_a_commit_without_weights_says_so(
    hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """refs/main moved to a commit whose config alone is cached (peft asks the Hub for the
    base's config on `main` when it saves an adapter): pinning it would fail at load time."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache_snapshot(hub, files=("config.json",))
    message = one_line_error(tmp_path)
    assert f"commit {COMMIT}" in message
    assert "not in the local Hugging Face cache, or only in part" in message


def client_errors() -> list[Exception]:
    """Refused and timed-out requests of each HTTP client installed here, and the builtins'."""
    errors: list[Exception] = [ConnectionRefusedError(), TimeoutError()]
    for name in ("httpx2", "httpx"):
        if importlib.util.find_spec(name):
            client = importlib.import_module(name)
            errors += [client.ConnectError("refused"), client.ReadTimeout("slow")]
    if importlib.util.find_spec("requests"):
        exceptions = importlib.import_module("requests.exceptions")  # optional, not a dependency
        errors += [exceptions.ConnectionError("refused"), exceptions.ReadTimeout("slow")]
    return errors


@pytest.mark.parametrize(
    "error", client_errors(), ids=lambda e: f"{type(e).__module__}.{type(e).__name__}"
)
def test_no_answer_from_the_server_is_a_transport_error(error: Exception) -> None:
    """Whichever HTTP client huggingface_hub uses (httpx2 in 2.x, httpx in 1.x, requests
    before): refused, DNS, proxy and timeout errors all mean "cannot reach the Hub"."""
    assert is_transport_error(error)


def test_an_answer_is_not_a_transport_error() -> None:
    assert not is_transport_error(ValueError("bad json"))
    assert not is_transport_error(KeyError("sha"))


def map_hub_error(error: BaseException) -> str | None:
    """hub_error's message as `make publish` asks for it (None: not the Hub's error)."""
    failure = hub_error(
        error,
        doing="publish org/name",
        refused="the token in HF_TOKEN",
        token_fix="it needs write access to org/name",
        offline_fix="check the network",
    )
    return None if failure is None else str(failure)


@pytest.mark.parametrize(
    "error",
    [e for e in client_errors() if "Timeout" in type(e).__name__],
    ids=lambda e: f"{type(e).__module__}.{type(e).__name__}",
)
def test_a_timeout_of_each_client_maps_to_cannot_reach_the_hub(error: Exception) -> None:
    """base and `make publish` share the mapper: the builtins', httpx's and requests' timeout
    classes (Timeout, TimeoutException, TimeoutError) are one "cannot reach" line."""
    message = map_hub_error(error)
    assert message is not None
    assert message.startswith(f"cannot reach the Hugging Face Hub ({constants.ENDPOINT})")
    assert f"({type(error).__name__}: " in message and message.endswith(": check the network")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "the Hugging Face Hub refused the token in HF_TOKEN (401): it needs write access"),
        (403, "the Hugging Face Hub refused the token in HF_TOKEN (403)"),
        (503, "the Hugging Face Hub answered 503 to publish org/name"),
    ],
)
def test_an_error_answer_maps_by_its_status(status: int, expected: str) -> None:
    from huggingface_hub.errors import HfHubHTTPError

    client = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")
    request = client.Request("GET", f"{constants.ENDPOINT}/api/models/org/name")
    error = HfHubHTTPError("error", response=client.Response(status, request=request))
    message = map_hub_error(error)
    assert message is not None and message.startswith(expected)
    assert "cannot reach" not in message


def test_an_error_that_is_not_the_hubs_is_not_mapped() -> None:
    assert map_hub_error(ValueError("bad json")) is None
    assert map_hub_error(KeyError("sha")) is None
