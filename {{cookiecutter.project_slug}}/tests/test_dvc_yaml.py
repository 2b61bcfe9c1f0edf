"""dvc.yaml, params.yaml, paths.py and the stage modules must agree with each other."""

import ast
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from {{ cookiecutter.module_name }} import paths

PROJECT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.module_name }}"
PACKAGE_DIR = PROJECT / "src" / PACKAGE
DVC_YAML: dict[str, Any] = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
PARAMS_YAML: dict[str, Any] = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
STAGES: dict[str, dict[str, Any]] = DVC_YAML["stages"]
CMD_RE = re.compile(rf"^python -m {re.escape(PACKAGE)}\.(\w+)$")

# paths.py constants that no stage writes: inputs kept in git, and the reports/ parent dir.
INPUTS = {"PARAMS", "RAW_DIR", "SUITES_DIR", "GENERAL_QA_SUITE", "INSTRUCTION_SUITE", "REPLAY"}
PARENTS = {"REPORTS_DIR", "FIGURES_DIR"}
# Package modules that do not change what a stage computes (plumbing, the params schema whose
# values DVC tracks through params.yaml, and the paths checked by this file).
PLUMBING = {"__init__", "cli", "paths", "params", "jsonio"}


def resolve(entry: str) -> str:
    """Substitute dvc.yaml `vars` (e.g. ${pkg}) the way DVC does."""
    variables: dict[str, Any] = {}
    for block in DVC_YAML.get("vars", []):
        if isinstance(block, dict):
            variables.update(block)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in variables, f"dvc.yaml uses the variable {name!r}, which vars lacks"
        return str(variables[name])

    return re.sub(r"\$\{\s*([\w.]+)\s*\}", substitute, entry)


def entries(stage: dict[str, Any], key: str) -> list[str]:
    """Paths listed under deps/outs/metrics/plots, whether plain strings or {path: options}."""
    found = []
    for item in stage.get(key, []):
        names = item.keys() if isinstance(item, dict) else [item]
        found.extend(resolve(str(name)) for name in names)
    return found


def written_paths() -> dict[str, str]:
    """Every out/metric/plot path -> the stage that writes it."""
    return {
        path: name
        for name, stage in STAGES.items()
        for key in ("outs", "metrics", "plots")
        for path in entries(stage, key)
    }


def covered(path: str, outputs: set[str]) -> bool:
    """`path` is an output or lies inside an output directory."""
    pure = PurePosixPath(path)
    return any(pure == PurePosixPath(out) or PurePosixPath(out) in pure.parents for out in outputs)


def path_constants() -> dict[str, str]:
    return {
        name: PurePosixPath(value).as_posix()
        for name, value in vars(paths).items()
        if name.isupper() and isinstance(value, Path)
    }


def stage_module(stage: dict[str, Any]) -> str:
    match = CMD_RE.match(stage["cmd"].strip())
    assert match, f"cmd {stage['cmd']!r} is not `python -m {PACKAGE}.<module>`"
    return match.group(1)


def package_imports(module: str) -> set[str]:
    """Modules of the package that `module` imports (relative or absolute), transitively."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        tree = ast.parse((PACKAGE_DIR / f"{current}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1 and node.module:
                    todo.append(node.module.split(".")[0])
                elif node.level == 1:
                    todo.extend(alias.name for alias in node.names)
                elif node.module and node.module.startswith(f"{PACKAGE}."):
                    todo.append(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                todo.extend(
                    alias.name.split(".")[1]
                    for alias in node.names
                    if alias.name.startswith(f"{PACKAGE}.")
                )
    return seen


def test_dvc_yaml_has_the_expected_stages() -> None:
    assert list(STAGES) == ["base", "curate", "split", "smoke", "train", "dpo", "eval", "select"]


def test_every_written_path_constant_is_a_dvc_output() -> None:
    outputs = set(written_paths())
    constants = path_constants()
    assert set(constants) >= INPUTS | PARENTS, "paths.py lost a constant this test names"
    missing = {
        name: path
        for name, path in constants.items()
        if name not in INPUTS | PARENTS and not covered(path, outputs)
    }
    assert not missing, f"paths.py constants no stage declares as outs/metrics: {missing}"


def test_every_dvc_output_is_a_path_constant() -> None:
    constants = set(path_constants().values())
    unknown = sorted(set(written_paths()) - constants)
    assert not unknown, f"dvc.yaml outputs missing from paths.py: {unknown}"


def test_inputs_are_not_outputs() -> None:
    outputs = set(written_paths())
    constants = path_constants()
    for name in INPUTS:
        assert not covered(constants[name], outputs), f"{name} is declared as a stage output"


def test_no_path_is_written_by_two_stages() -> None:
    seen: dict[str, str] = {}
    for name, stage in STAGES.items():
        for key in ("outs", "metrics", "plots"):
            for path in entries(stage, key):
                assert path not in seen, f"{path} is written by {seen[path]} and {name}"
                seen[path] = name


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_cmd_module_exists(name: str) -> None:
    module = stage_module(STAGES[name])
    assert (PACKAGE_DIR / f"{module}.py").is_file(), f"stage {name}: no src/{PACKAGE}/{module}.py"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_params_sections_exist(name: str) -> None:
    for item in STAGES[name].get("params", []):
        keys = [item] if isinstance(item, str) else [k for v in item.values() for k in v]
        for key in keys:
            node: Any = PARAMS_YAML
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, (
                    f"stage {name}: params {key!r} is not in params.yaml"
                )
                node = node[part]


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_source_deps_exist(name: str) -> None:
    stage_files = [dep for dep in entries(STAGES[name], "deps") if dep.endswith(".py")]
    assert stage_files, f"stage {name} lists no source file in deps"
    for dep in stage_files:
        assert (PROJECT / dep).is_file(), f"stage {name}: dep {dep} does not exist"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_are_inputs_or_upstream_outputs(name: str) -> None:
    """Each dep is in the repository or is written by an earlier stage (no dangling deps)."""
    order = list(STAGES)
    upstream = {
        path
        for earlier in order[: order.index(name)]
        for key in ("outs", "metrics")
        for path in entries(STAGES[earlier], key)
    }
    for dep in entries(STAGES[name], "deps"):
        assert covered(dep, upstream) or (PROJECT / dep).exists(), (
            f"stage {name}: dep {dep} is neither in the repo nor written by an earlier stage"
        )


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_cover_imported_modules(name: str) -> None:
    """A stage re-runs when code it executes changes: every package module it imports
    (transitively, plumbing aside) must be one of its deps."""
    module = stage_module(STAGES[name])
    if not (PACKAGE_DIR / f"{module}.py").is_file():
        pytest.skip(f"src/{PACKAGE}/{module}.py does not exist (see test_stage_cmd_module_exists)")
    deps = {PurePosixPath(dep).stem for dep in entries(STAGES[name], "deps") if dep.endswith(".py")}
    missing = sorted(package_imports(module) - PLUMBING - deps)
    assert not missing, f"stage {name} imports {missing} but dvc.yaml does not list them in deps"


def test_plots_reference_declared_outputs() -> None:
    """A plot's data files (the `y` mapping's keys, else the plot id) are stage outputs."""
    outputs = set(written_paths())
    plots = DVC_YAML.get("plots", [])
    assert plots
    for plot in plots:
        for plot_id, spec in plot.items() if isinstance(plot, dict) else [(plot, None)]:
            y = spec.get("y") if isinstance(spec, dict) else None
            files = list(y) if isinstance(y, dict) else [plot_id]
            for path in files:
                assert covered(resolve(path), outputs), f"plot {plot_id}: {path} is not an output"
