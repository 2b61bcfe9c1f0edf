"""The benchmark scripts keep working when the package moves: every module and name of the
generated package that a script of benchmarks/ imports exists in a default bake."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from bakery import DEFAULT_MODULE, ROOT, bake

# `import_module(f"{package}.export.gguf")`, `__import__(f"{module}.io", fromlist=["read_jsonl"])`,
# `import_module(f"{package}.export.ollama").write_modelfile`
DYNAMIC = re.compile(
    r'(?:import_module|__import__)\(\s*f"\{\w+\}\.([\w.]+)"'
    r"(?:,\s*fromlist=\[([^\]]*)\])?\)(?:\.(\w+))?"
)
# `from {module}.paths import A, B` (in probe scripts) and `from support_triage_finetune.x import`
STATIC = re.compile(
    r"from (?:\{\w+\}|support_triage_finetune|gemma3_stdlib)\.([\w.]+) import ([\w, ]+)"
)
# `import_module(sys.argv[2] + ".export.gguf").write_gguf` (converter child processes)
ARGV = re.compile(r'import_module\(sys\.argv\[\d\] \+ "\.([\w.]+)"\)\.(\w+)')
CHECK = """
import importlib, json, sys
missing = []
for module, names in json.loads(sys.argv[1]):
    try:
        found = importlib.import_module(sys.argv[2] + "." + module)
    except ImportError as error:
        missing.append(f"{module}: {error}")
        continue
    missing += [f"{module}.{name}" for name in names if not hasattr(found, name)]
print(json.dumps(missing))
"""


def imported_names(text: str) -> dict[str, set[str]]:
    """Package module (dotted, below the package) -> the names a script takes from it."""
    found: dict[str, set[str]] = {}
    for module, fromlist, attribute in DYNAMIC.findall(text):
        names = {n.strip().strip("\"'") for n in fromlist.split(",") if n.strip()}
        found.setdefault(module, set()).update(names | ({attribute} - {""}))
    for module, names in STATIC.findall(text):
        found.setdefault(module, set()).update(n.strip() for n in names.split(","))
    for module, name in ARGV.findall(text):
        found.setdefault(module, set()).add(name)
    return found


def test_the_parser_sees_each_form() -> None:
    text = (
        'a = import_module(f"{package}.export.ollama").write_modelfile\n'
        '__import__(f"{module}.io", fromlist=["read_jsonl", "iter_lines"])\n'
        "from {module}.paths import A, B\n"
        'import_module(sys.argv[2] + ".export.gguf").write_gguf\n'
    )
    assert imported_names(text) == {
        "export.ollama": {"write_modelfile"},
        "io": {"read_jsonl", "iter_lines"},
        "paths": {"A", "B"},
        "export.gguf": {"write_gguf"},
    }


def test_what_the_benchmarks_import_exists(tmp_path: Path, cc_config: str) -> None:
    wanted: dict[str, set[str]] = {}
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for module, names in imported_names(script.read_text(encoding="utf-8")).items():
            wanted.setdefault(module, set()).update(names)
    assert len(wanted) >= 10, f"the parser found too few imports: {sorted(wanted)}"
    project = bake(tmp_path, cc_config)
    pairs = json.dumps([[module, sorted(names)] for module, names in sorted(wanted.items())])
    result = subprocess.run(
        [sys.executable, "-c", CHECK, pairs, DEFAULT_MODULE],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project / "src")},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    missing = json.loads(result.stdout.strip().splitlines()[-1])
    assert not missing, f"benchmarks/ import what the package no longer has: {missing}"
