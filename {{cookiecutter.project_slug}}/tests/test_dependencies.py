"""What the code imports is declared (what a stage always imports, as a runtime dependency), dev
tools stay out of the runtime dependencies, the lock pins every requirement within its range
with hashes, and the environment module reports versions."""

import ast
import importlib.metadata
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import {{ cookiecutter.module_name }} as package
from helpers import reachable
from {{ cookiecutter.module_name }}.commands.lock import (
    NOT_LOCKED,
    compile_command,
    direct_requirements,
    installed_closure,
    installed_from_directory,
    lock_text,
)
from {{ cookiecutter.module_name }}.models.versions import (
    resolved_versions,
)
from test_dvc_yaml import imported_modules as package_modules_imported  # tests/ is on sys.path

PROJECT = Path(__file__).parents[1]
SOURCES = Path(package.__file__).parent
TESTS = Path(__file__).parent
# scipy: the interval tests; uv: `make lock`
DEV_TOOLS = {"pytest", "ruff", "pre-commit", "cruft", "scipy", "uv"}
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


def lock_entries() -> list[tuple[Requirement, list[str]]]:
    """requirements.lock's pins, each with its hashes (`name==v ; marker --hash=... ...`)."""
    text = (PROJECT / "requirements.lock").read_text().replace("\\\n", " ")
    entries = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            requirement, *hashes = line.split(" --hash=")
            entries.append((Requirement(requirement), [h.strip() for h in hashes]))
    return entries


def locked() -> dict[str, str]:
    pins = [pin for pin, _ in lock_entries()]
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


def distributions_of(module: str) -> set[str]:
    """The distributions providing top-level `module` (an extra's module not installed here is
    named as its distribution)."""
    found = importlib.metadata.packages_distributions().get(
        module, [DISTRIBUTION_OF.get(module, module)]
    )
    return {canonicalize_name(name) for name in found}


def third_party(module: str) -> bool:
    tests = {path.name.removesuffix(".py") for path in TESTS.iterdir()}  # modules, packages
    local = {package.__name__} | tests | LLAMA_CPP_MODULES
    return module not in sys.stdlib_module_names and module not in local


def test_every_third_party_import_is_declared() -> None:
    declared = set(runtime()).union(*extras().values())
    undeclared = {
        module: sorted(files)
        for module, files in imported_modules(SOURCES, TESTS).items()
        if third_party(module) and not distributions_of(module) & declared
    }
    assert not undeclared, f"imported but not in requirements.txt or an extra: {undeclared}"


def top_level_imports(module: str) -> set[str]:
    """Third-party top-level modules that `module`'s body imports (and the __init__ of each
    package above it), i.e. whenever `module` is imported; imports inside functions, the
    optional ones, are not counted."""
    parts = module.split(".")
    files = [SOURCES.joinpath(*parts[:depth], "__init__.py") for depth in range(len(parts))]
    found = set()
    for path in [*files, SOURCES.joinpath(*parts).with_suffix(".py")]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if third_party(name)}


def always_imported(stage: str) -> set[str]:
    """Package modules that importing `stage` imports, transitively (top-level imports only)."""
    return reachable(stage, lambda module: package_modules_imported(module, top_level=True))


def test_what_a_stage_always_imports_is_a_runtime_dependency() -> None:
    # An extra's package must be imported where it is used, inside the function: a stage
    # that imports it on load would fail without the extra even when it never uses it.
    runtime_names = set(runtime())
    stages = sorted(f"stages.{path.stem}" for path in (SOURCES / "stages").glob("[!_]*.py"))
    assert "stages.curate" in stages
    only_in_an_extra = {
        (module, third): stage
        for stage in stages
        for module in always_imported(stage)
        for third in top_level_imports(module)
        if not distributions_of(third) & runtime_names
    }
    assert not only_in_an_extra, (
        f"(module, import) a stage always loads but only an extra declares: {only_in_an_extra}"
    )


def test_dev_tools_are_the_dev_extra_not_runtime_dependencies() -> None:
    assert not DEV_TOOLS & set(runtime())
    assert set(extras()["dev"]) == DEV_TOOLS


def test_the_lock_pins_every_requirement_within_its_range() -> None:
    pins = locked()
    wanted = {**runtime(), **extras()["dev"]}
    for name in NOT_LOCKED:  # installed first and on its own (TORCH_SPEC)
        del wanted[name]
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


def test_every_locked_package_has_its_hashes_and_one_pin_per_platform() -> None:
    # pip installs the lock with --require-hashes: a pin without a hash fails the whole install
    entries = lock_entries()
    unhashed = [str(pin) for pin, hashes in entries if not hashes]
    assert not unhashed, f"pins without --hash: {unhashed}"
    assert all(h.startswith("sha256:") and len(h) == 7 + 64 for _, hs in entries for h in hs)
    # a universal lock: a package only one platform needs carries its marker
    assert any(pin.marker and "sys_platform" in str(pin.marker) for pin, _ in entries)
    for environment in ({"sys_platform": "linux"}, {"sys_platform": "darwin"}):
        names = [
            canonicalize_name(pin.name)
            for pin, _ in entries
            if pin.marker is None or pin.marker.evaluate(environment)
        ]
        assert len(names) == len(set(names)), f"two pins of one package on {environment}"


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


def test_the_lock_text_has_its_header_and_what_made_it() -> None:
    text = lock_text("peft==0.21.2 \\\n    --hash=sha256:00\n")
    assert text.startswith("# ") and "make lock" in text and "--require-hashes" in text
    assert f"# Made with Python {'.'.join(map(str, sys.version_info[:3]))} on " in text
    assert text.endswith("\npeft==0.21.2 \\\n    --hash=sha256:00\n")


def test_lock_resolves_for_every_platform_with_hashes_at_the_pinned_versions(
    tmp_path: Path,
) -> None:
    files = [tmp_path / name for name in ("requirements.txt", "pins.txt", "excludes.txt")]
    command = compile_command(*files, "3.11")
    assert command[:5] == [sys.executable, "-m", "uv", "pip", "compile"]
    options = " ".join(command[5:])
    for option in (
        "--universal",
        "--generate-hashes",
        "--python-version 3.11",
        f"--constraints {files[1]}",
        f"--excludes {files[2]}",
    ):
        assert option in options


def test_the_lock_resolves_the_project_as_its_requirements_and_extras(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert direct_requirements("peft>=0.17") == ["peft>=0.17"]  # from the index
    info = tmp_path / "demo-1.0.dist-info"  # this project, installed from its directory
    info.mkdir()
    requires = [
        "transformers>=5.0,<6",
        'colorama; sys_platform == "win32"',
        'pytest>=8; extra == "dev"',
    ]
    metadata = "".join(f"Requires-Dist: {line}\n" for line in requires)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n{metadata}")
    (info / "direct_url.json").write_text('{"url": "file:///src/demo", "dir_info": {}}')
    monkeypatch.setattr(
        importlib.metadata, "distribution", lambda name: importlib.metadata.PathDistribution(info)
    )
    assert direct_requirements("demo") == requires[:2]
    assert direct_requirements("demo[dev]") == [*requires[:2], "pytest>=8"]
