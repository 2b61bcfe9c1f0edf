"""Checkpoints stay local; models/checkpoints.json (train's DVC output) names them with the
hashes of their model files, and the stages reading checkpoints check them against it."""

from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import file_digest, read_json
from {{ cookiecutter.module_name }}.training.checkpoints import (
    manifest_checkpoints,
    verify_checkpoint,
    write_manifest,
)


def fake_checkpoint(directory: Path, step: int, weights: bytes) -> Path:
    path = directory / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(weights)
    (path / "adapter_config.json").write_text("{}")
    (path / "trainer_state.json").write_text('{"log_history": []}')
    (path / "optimizer.pt").write_bytes(b"resume only")
    return path


@pytest.fixture
def trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    directory = Path("models/checkpoints")
    for step in (10, 2):
        fake_checkpoint(directory, step, f"weights {step}".encode())
    (directory / "checkpoint-20").mkdir()  # incomplete (no trainer_state.json): left out
    return directory


def test_the_manifest_lists_complete_checkpoints_with_their_model_files(trained: Path) -> None:
    manifest = Path("models/checkpoints.json")
    write_manifest(trained, manifest)
    payload = read_json(manifest)
    assert set(payload["checkpoints"]) == {"checkpoint-2", "checkpoint-10"}
    files = payload["checkpoints"]["checkpoint-2"]
    assert sorted(files) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "trainer_state.json",
    ]
    assert manifest_checkpoints(manifest) == [trained / "checkpoint-2", trained / "checkpoint-10"]


def test_optimizer_state_does_not_count(trained: Path) -> None:
    manifest = Path("models/checkpoints.json")
    write_manifest(trained, manifest)
    (trained / "checkpoint-2" / "optimizer.pt").write_bytes(b"changed by a resumed run")
    assert len(manifest_checkpoints(manifest)) == 2


def test_a_missing_checkpoint_says_it_stays_where_it_was_trained(trained: Path) -> None:
    manifest = Path("models/checkpoints.json")
    write_manifest(trained, manifest)
    (trained / "checkpoint-10").rename(trained / "aside")
    with pytest.raises(
        StageError, match=r"checkpoint-10 is listed .* not on this machine.*dvc repro -f train"
    ):
        manifest_checkpoints(manifest)


def test_checkpoints_of_another_run_are_refused(trained: Path) -> None:
    manifest = Path("models/dpo.json")
    write_manifest(trained, manifest)
    (trained / "checkpoint-10" / "adapter_model.safetensors").write_bytes(b"another run")
    with pytest.raises(StageError, match=r"checkpoint-10 differs .* another run.*dvc repro -f dpo"):
        manifest_checkpoints(manifest)


def test_readers_of_one_checkpoint_check_only_that_one(trained: Path) -> None:
    manifest = Path("models/checkpoints.json")
    write_manifest(trained, manifest)
    (trained / "checkpoint-2" / "adapter_model.safetensors").write_bytes(b"another run")
    listed = manifest_checkpoints(manifest, verify=False)
    assert verify_checkpoint(manifest, listed[-1]) == trained / "checkpoint-10"
    with pytest.raises(StageError, match=r"checkpoint-2 differs"):
        verify_checkpoint(manifest, listed[0])
    with pytest.raises(StageError, match=r"checkpoint-20 is not listed .*dvc repro -f train"):
        verify_checkpoint(manifest, trained / "checkpoint-20")


def test_the_cached_digest_follows_a_rewritten_file(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"first")
    first = file_digest(weights)
    assert file_digest(weights) == first
    weights.write_bytes(b"second run")
    assert file_digest(weights) != first
