"""dvc.yaml, params.yaml, paths.py and the stage modules must agree with each other."""

import ast
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from helpers import reachable
from {{ cookiecutter.module_name }} import paths

PROJECT = Path(__file__).parents[1]
PACKAGE = "{{ cookiecutter.module_name }}"
PACKAGE_DIR = PROJECT / "src" / PACKAGE
DVC_YAML: dict[str, Any] = yaml.safe_load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
PARAMS_YAML: dict[str, Any] = yaml.safe_load((PROJECT / "params.yaml").read_text(encoding="utf-8"))
STAGES: dict[str, dict[str, Any]] = DVC_YAML["stages"]
CMD_RE = re.compile(rf"^python -m {re.escape(PACKAGE)}\.stages\.(\w+)$")

# paths.py constants that no stage writes: inputs kept in git, and the reports/ parent dir.
INPUTS = {
    "PARAMS",
    "ACCELERATE_CONFIG",
    "ACCELERATE_MULTI_NODE_CONFIG",
    "RAW_DIR",
    "SUITES_DIR",
    "GENERAL_QA_SUITE",
    "INSTRUCTION_SUITE",
    "REPLAY",
    "LM_EVAL_TASKS_DIR",
}
PARENTS = {"REPORTS_DIR", "FIGURES_DIR"}
# Written by train, dpo and rl but local to the machine (resume): their manifests are the outputs.
LOCAL = {"CHECKPOINTS_DIR", "DPO_DIR", "DPO_DISABLED_MARKER", "RL_DIR", "RL_DISABLED_MARKER"}
# Local caches: never outputs, safe to delete.
CACHES = {"CACHE_DIR", "EVAL_CACHE_DIR", "LM_EVAL_CACHE_DIR"}
# Package modules that do not change what a stage computes (plumbing, the params schema whose
# values DVC tracks through params.yaml, and the paths checked by this file).
PLUMBING = {"cli", "errors", "io", "paths", "params"}


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
    """`stages.<name>` for a stage whose cmd is `python -m <package>.stages.<name>`."""
    match = CMD_RE.match(stage["cmd"].strip())
    assert match, f"cmd {stage['cmd']!r} is not `python -m {PACKAGE}.stages.<module>`"
    return f"stages.{match.group(1)}"


def module_file(module: str) -> Path:
    """'training.trainer' -> src/<package>/training/trainer.py"""
    return PACKAGE_DIR / (module.replace(".", "/") + ".py")


def imported_modules(module: str, top_level: bool = False) -> set[str]:
    """Package modules that `module` imports directly (relative or absolute imports); with
    `top_level`, only the imports of its body, which run whenever it is imported."""
    package = module.split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(module_file(module).read_text(encoding="utf-8"))
    for node in tree.body if top_level else ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package[: len(package) - (node.level - 1)]
            elif node.module and node.module.startswith(f"{PACKAGE}."):
                parent = []
                node = ast.ImportFrom(node.module.removeprefix(f"{PACKAGE}."), node.names, 1)
            else:
                continue
            target = parent + (node.module.split(".") if node.module else [])
            candidates = [".".join(target)] + [".".join([*target, a.name]) for a in node.names]
            found.update(c for c in candidates if c and module_file(c).is_file())
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}."):
                    found.add(alias.name.removeprefix(f"{PACKAGE}."))
    return found


def package_imports(module: str) -> set[str]:
    """Modules of the package that `module` imports, transitively (itself included)."""
    return reachable(module, imported_modules)


def test_dvc_yaml_has_the_expected_stages() -> None:
    assert list(STAGES) == [
        "check_params",
        "base",
        "curate",
        "replay",
        "split",
        "smoke",
        "train",
        "dpo",
        "eval",
        "rl",
        "eval_rl",
        "select",
        "export",
        "track",
    ]


def test_every_written_path_constant_is_a_dvc_output() -> None:
    outputs = set(written_paths())
    constants = path_constants()
    named = INPUTS | PARENTS | CACHES | LOCAL
    assert set(constants) >= named, "paths.py lost a constant this test names"
    missing = {
        name: path
        for name, path in constants.items()
        if name not in named and not covered(path, outputs)
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
    assert module_file(module).is_file(), f"stage {name}: no {module_file(module)}"


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


def source_deps(stage: dict[str, Any]) -> set[str]:
    """The package modules a stage lists in deps, as dotted names ('training.trainer')."""
    prefix = f"src/{PACKAGE}/"
    return {
        dep.removeprefix(prefix).removesuffix(".py").replace("/", ".")
        for dep in entries(stage, "deps")
        if dep.endswith(".py") and dep.startswith(prefix)
    }


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_cover_imported_modules(name: str) -> None:
    """A stage re-runs when code it executes changes: every package module it imports
    (transitively, plumbing aside) must be one of its deps."""
    module = stage_module(STAGES[name])
    if not module_file(module).is_file():
        pytest.skip(f"{module_file(module)} does not exist (see test_stage_cmd_module_exists)")
    needed = {m for m in package_imports(module) if m.split(".")[-1] not in PLUMBING}
    missing = sorted(needed - source_deps(STAGES[name]))
    assert not missing, f"stage {name} imports {missing} but dvc.yaml does not list them in deps"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_deps_list_no_module_it_does_not_run(name: str) -> None:
    """An unused module in deps re-runs the stage for nothing (editing advise.py must not
    re-run train): each listed module is imported by the stage, or is params.py for the
    params check."""
    needed = package_imports(stage_module(STAGES[name]))
    extra = sorted(source_deps(STAGES[name]) - needed)
    assert not extra, f"stage {name} lists {extra} in deps but never imports them"


@pytest.mark.parametrize("name", list(STAGES))
def test_stage_modules_import_no_other_stage(name: str) -> None:
    """What two stages share lives in a library module: a stage importing a stage would make
    one stage's edit re-run the other's work."""
    module = stage_module(STAGES[name])
    others = sorted(m for m in package_imports(module) if m.startswith("stages.") and m != module)
    assert not others, f"{module} imports the stage module(s) {others}"


def test_every_stage_runs_after_the_params_check() -> None:
    """DVC deletes a stage's outs before it runs: every stage must be downstream of the params
    check, so a bad param stops the pipeline before anything is deleted."""
    writer = written_paths()
    upstream: dict[str, set[str]] = {}
    for name, stage in STAGES.items():
        deps = entries(stage, "deps")
        parents = {writer[out] for dep in deps for out in writer if covered(dep, {out})}
        upstream[name] = parents | {a for p in parents for a in upstream.get(p, set())}
    not_after = [n for n in STAGES if n != "check_params" and "check_params" not in upstream[n]]
    assert not not_after, f"stages not downstream of check_params: {not_after}"


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
