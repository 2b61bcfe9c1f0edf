"""The eval generation cache key covers the code and library versions that decide the
outputs: a fix to generation (or a new peft) must not be served stale cached outputs."""

import importlib.metadata
import shutil
from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.evaluation import cache
from {{ cookiecutter.module_name }}.evaluation.generation import Request

REQUESTS = [Request((1, 2, 3), 8), Request((4, 5), 16)]
SETTINGS = {"backend": "hf", "bf16": False, "batch_size": 8}


def key() -> str:
    return cache.cache_key("weights", REQUESTS, SETTINGS)


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Temporary copies of the output-deciding modules, used in place of the originals."""
    copies = {}
    for name, source in cache.OUTPUT_SOURCES.items():
        copies[name] = tmp_path / f"{name.replace('.', '_')}.py"
        shutil.copyfile(source, copies[name])
    monkeypatch.setattr(cache, "OUTPUT_SOURCES", copies)
    return copies


def test_the_output_sources_include_generation_and_exist() -> None:
    assert "evaluation.generation" in cache.OUTPUT_SOURCES
    assert all(path.is_file() for path in cache.OUTPUT_SOURCES.values())


@pytest.mark.parametrize("module", ["evaluation.generation", "models.loading"])
def test_the_key_changes_when_the_generation_code_changes(
    sources: dict[str, Path], module: str
) -> None:
    before = key()
    assert key() == before  # unchanged code, unchanged key
    path = sources[module]
    path.write_text(path.read_text() + "\n# a fix\n")
    assert key() != before


def test_the_key_changes_with_the_peft_version(monkeypatch: pytest.MonkeyPatch) -> None:
    real_version = importlib.metadata.version
    before = key()
    assert key() == before  # the same versions give the same key
    for package in ("peft", "torch", "transformers"):
        monkeypatch.setattr(
            importlib.metadata,
            "version",
            lambda name, package=package: "999.0" if name == package else real_version(name),
        )
        assert key() != before, package


def test_an_unrelated_package_version_leaves_the_key_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_version = importlib.metadata.version
    before = key()
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "999.0" if name == "dvc" else real_version(name),
    )
    assert key() == before
