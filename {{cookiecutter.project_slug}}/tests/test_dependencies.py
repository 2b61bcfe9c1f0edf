"""What the code imports is declared, dev tools stay out of the runtime dependencies, the lock
file pins every requirement within its range, and the environment module reports versions."""

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import {{ cookiecutter.module_name }} as package
from {{ cookiecutter.module_name }}.commands.lock import (
    installed_closure,
    installed_from_directory,
    lock_text,
)
from {{ cookiecutter.module_name }}.models.versions import (
    resolved_versions,
)

PROJECT = Path(__file__).parents[1]
SOURCES = Path(package.__file__).parent
TESTS = Path(__file__).parent
DEV_TOOLS = {"pytest", "ruff", "pre-commit", "cruft", "scipy"}  # scipy: the interval tests
# An extra's module whose distribution has another name, for where the extra is not installed.
DISTRIBUTION_OF = {"mlflow": "mlflow-skinny"}
LLAMA_CPP_MODULES = {"convert_hf_to_gguf"}
"""Imported from llama.cpp's converter, which export/llama_cpp.py fetches (not a package)."""


def requirement_lines(text: str) -> list[Requirement]:
    lines = (line.strip() for line in text.splitlines())
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


def runtime() -> dict[str, Requirement]:
    requirements = requirement_lines((PROJECT / "requirements.txt").read_text())
    return {canonicalize_name(r.name): r for r in requirements}


def extras() -> dict[str, dict[str, Requirement]]:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11+")
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    return {
        extra: {canonicalize_name(Requirement(r).name): Requirement(r) for r in requirements}
        for extra, requirements in project["optional-dependencies"].items()
    }


def locked() -> dict[str, str]:
    pins = requirement_lines((PROJECT / "requirements.lock").read_text())
    assert all(str(pin.specifier).startswith("==") for pin in pins), "a lock pins with =="
    return {canonicalize_name(pin.name): str(pin.specifier)[2:] for pin in pins}


def imported_modules(*roots: Path) -> dict[str, set[str]]:
    """Top-level module -> files importing it (absolute imports only)."""
    found: dict[str, set[str]] = {}
    for path in (path for root in roots for path in root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(path.name)
    return found


def test_every_third_party_import_is_declared() -> None:
    declared = set(runtime()).union(*extras().values())
    local = {package.__name__} | {path.stem for path in TESTS.glob("*.py")} | LLAMA_CPP_MODULES
    distributions = importlib.metadata.packages_distributions()
    undeclared = {}
    for module, files in imported_modules(SOURCES, TESTS).items():
        if module in sys.stdlib_module_names or module in local:
            continue
        # A module not installed here (an extra's) is named as its distribution.
        found = distributions.get(module, [DISTRIBUTION_OF.get(module, module)])
        names = {canonicalize_name(d) for d in found}
        if not names & declared:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but not in requirements.txt or an extra: {undeclared}"


def test_dev_tools_are_the_dev_extra_not_runtime_dependencies() -> None:
    assert not DEV_TOOLS & set(runtime())
    assert set(extras()["dev"]) == DEV_TOOLS


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    pins = locked()
    wanted = {**runtime(), **extras()["dev"]}
    del wanted["torch"]  # installed first and on its own (TORCH_SPEC)
    missing = sorted(set(wanted) - set(pins))
    assert not missing, f"not in requirements.lock (run `make lock`): {missing}"
    outside = {
        name: (pins[name], str(r.specifier))
        for name, r in wanted.items()
        if not r.specifier.contains(pins[name], prereleases=True)
    }
    assert not outside, f"locked versions outside requirements.txt's ranges: {outside}"
    assert "torch" not in pins
    assert canonicalize_name("{{ cookiecutter.project_slug }}") not in pins


def test_pre_commit_runs_the_locked_ruff() -> None:
    hooks = yaml.safe_load((PROJECT / ".pre-commit-config.yaml").read_text())["repos"]
    (ruff_hooks,) = [repo for repo in hooks if repo["repo"].endswith("/ruff-pre-commit")]
    assert ruff_hooks["rev"] == f"v{locked()['ruff']}"


def test_resolved_versions_name_the_stack_python_and_platform(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name == "bitsandbytes":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    versions = resolved_versions()
    for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "dvc"):
        assert versions[name] == real_version(name)
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions["platform"]
    assert "bitsandbytes" not in versions  # only where installed

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.45.0")
    assert resolved_versions()["bitsandbytes"] == "0.45.0"


def test_the_closure_follows_markers_and_extras_but_not_torch() -> None:
    closure = {canonicalize_name(name) for name in installed_closure(["peft"])}
    assert {"peft", "transformers", "huggingface-hub", "numpy"} <= closure
    assert "torch" not in closure
    assert "accelerate" not in {canonicalize_name(n) for n in installed_closure(["tokenizers"])}
    with_extra = installed_closure(["transformers[accelerate]"])
    assert "accelerate" in {canonicalize_name(name) for name in with_extra}


def test_a_local_install_is_not_pinned(tmp_path: Path) -> None:
    info = tmp_path / "demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    assert not installed_from_directory(importlib.metadata.PathDistribution(info))
    (info / "direct_url.json").write_text('{"url": "file:///src/demo", "dir_info": {}}')
    assert installed_from_directory(importlib.metadata.PathDistribution(info))


def test_the_lock_text_has_its_header_and_no_torch() -> None:
    text = lock_text(["peft"])
    assert text.startswith("# ") and "make lock" in text
    assert "\npeft==" in text and "\ntorch==" not in text
