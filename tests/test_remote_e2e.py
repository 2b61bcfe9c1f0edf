"""Sharing through DVC remotes, end to end on the tiny model: a project baked with a remote
pushes, a clone pulls, `dvc status` is clean and the selected model, the splits and the
metrics are byte-identical; intermediate checkpoints stay local. Once with the directory
remote chosen at bake time, once with S3 served by moto on 127.0.0.1, and an experiment
through `dvc exp push` / `dvc exp pull`."""

import hashlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bakery import bake, dvc, git, use_tiny_model

pytestmark = pytest.mark.e2e

SHARED = ("models/selected", "data/splits", "data/curated", "reports/metrics.json")
"""What a clone must get back byte for byte."""


def file_hashes(project: Path, tops: tuple[str, ...] = SHARED) -> dict[str, str]:
    found = {}
    for top in tops:
        paths = [project / top] if (project / top).is_file() else (project / top).rglob("*")
        for path in sorted(paths):
            if path.is_file():
                found[str(path.relative_to(project))] = hashlib.sha256(
                    path.read_bytes()
                ).hexdigest()
    return found


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, cc_config: str) -> tuple[Path, Path, Path]:
    """A project baked with a directory remote, its pipeline run and committed, and a bare
    git repository it pushes to: (project, storage, origin)."""
    root = tmp_path_factory.mktemp("remote")
    storage, origin = root / "dvc-storage", root / "origin.git"
    project = bake(root, cc_config, dvc_remote="local", dvc_remote_url=str(storage))
    use_tiny_model(project, root / "tiny-llama")
    git(project, "commit", "-qam", "Use the tiny test model")
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Run the pipeline")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    git(project, "remote", "add", "origin", str(origin))
    git(project, "push", "-q", "origin", "main")
    return project, storage, origin


def clone(origin: Path, where: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(where)], check=True)
    return where


def assert_up_to_date(clone_dir: Path, project: Path) -> None:
    status = dvc(clone_dir, "status").stdout
    assert "Data and pipelines are up to date" in status, status
    assert file_hashes(clone_dir) == file_hashes(project)
    assert not (clone_dir / "models" / "checkpoints").exists(), "checkpoints must stay local"
    assert (clone_dir / "models" / "checkpoints.json").is_file()  # the manifest travels in git


def test_the_bake_time_remote_is_the_default(shared: tuple[Path, Path, Path]) -> None:
    project, storage, _ = shared
    config = (project / ".dvc" / "config").read_text()
    assert "remote = storage" in config and "['remote \"storage\"']" in config, config
    assert git(project, "ls-files", ".dvc/config") == ".dvc/config"  # committed by the bake


def test_push_then_clone_and_pull_is_byte_identical(
    shared: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    project, storage, origin = shared
    dvc(project, "push")
    pushed = {path.name for path in storage.rglob("*") if path.is_file()}

    def md5s(top: Path) -> set[str]:  # DVC 3's cache file names: the md5 minus 2 characters
        return {hashlib.md5(p.read_bytes()).hexdigest()[2:] for p in top.rglob("*") if p.is_file()}

    # the selected checkpoint's adapter is also models/selected's (pushed as that)
    only_checkpoints = md5s(project / "models" / "checkpoints") - md5s(
        project / "models" / "selected"
    )
    assert only_checkpoints and not only_checkpoints & pushed, "a checkpoint was pushed"
    copy = clone(origin, tmp_path / "clone")
    dvc(copy, "pull")
    assert_up_to_date(copy, project)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, with a bucket; yields its endpoint URL."""
    pytest.importorskip("moto.server", reason="needs moto[server] (requirements-dev.txt)")
    pytest.importorskip("dvc_s3", reason="needs dvc-s3 (requirements-dev.txt)")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket="models")
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_s3_remote_push_pull_and_experiments(
    shared: tuple[Path, Path, Path],
    s3_server: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project, _, origin = shared
    # credentials only from the environment, as a real remote's would be
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    remote = ("s3remote", "s3://models/project")
    dvc(project, "remote", "add", "-f", *remote)
    dvc(project, "remote", "modify", remote[0], "endpointurl", s3_server)
    dvc(project, "push", "-r", remote[0])
    assert "testing" not in (project / ".dvc" / "config").read_text()

    copy = clone(origin, tmp_path / "clone")
    dvc(copy, "remote", "add", "-f", *remote)
    dvc(copy, "remote", "modify", remote[0], "endpointurl", s3_server)
    dvc(copy, "pull", "-r", remote[0])
    assert_up_to_date(copy, project)

    # An experiment: run in the project, pushed (git ref to origin, outputs to S3), pulled.
    dvc(project, "exp", "run", "-n", "shared-exp", "-S", "train.learning_rate=0.001")
    dvc(project, "exp", "push", "-r", remote[0], "origin", "shared-exp")
    dvc(copy, "exp", "pull", "-r", remote[0], "origin", "shared-exp")
    assert "shared-exp" in dvc(copy, "exp", "list", "--name-only").stdout
    dvc(project, "exp", "apply", "shared-exp")
    dvc(copy, "exp", "apply", "shared-exp")
    assert file_hashes(copy) == file_hashes(project)
    params = (copy / "params.yaml").read_text()
    assert "learning_rate: 0.001" in params, params
    shutil.rmtree(copy / "models" / "selected")
    dvc(copy, "checkout")  # the experiment's selected model is in the local cache now
    assert file_hashes(copy) == file_hashes(project)
