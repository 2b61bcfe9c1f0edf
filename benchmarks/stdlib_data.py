"""Data no one here wrote, from what every Python install has: the standard library's own
pure-Python functions. Each row asks for a one-sentence summary of a function's code (its
docstring removed); the target is the docstring's first sentence.

    python benchmarks/stdlib_data.py summaries OUT.jsonl [--n 600]
        functions with a docstring only (a free-text task: code summarisation)
    python benchmarks/stdlib_data.py scraped OUT.jsonl
        every function, "(no description)" where it has no docstring, as a scraper writes

docs/benchmarks.md runs a custom bake on both (section "Data no one here wrote")."""

import argparse
import ast
import importlib
import inspect
import json
import pkgutil
import random
import re
import sys
import textwrap
import warnings
from collections.abc import Iterator

PROMPT = "Summarize what this Python function does in one sentence.\n\n```python\n{code}\n```"
PLACEHOLDER = "(no description)"
SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3"}


def stdlib_sources() -> Iterator[tuple[str, str]]:
    """(module name, source) of every importable pure-Python stdlib module."""
    warnings.filterwarnings("ignore")
    for info in sorted(pkgutil.iter_modules(), key=lambda m: m.name):
        name = info.name
        if name.startswith("_") or name in SKIP or name not in sys.stdlib_module_names:
            continue
        try:
            yield name, inspect.getsource(importlib.import_module(name))
        except Exception:  # C modules, platform-only modules
            continue


def first_sentence(doc: str) -> str:
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return re.split(r"(?<=[.!?])\s", paragraph)[0]


def functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef, list[str]]]:
    """(module, function node, the function's source lines without its docstring) per public
    function."""
    for module, source in stdlib_sources():
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if node.name.startswith("_"):
                continue
            body = lines[node.lineno - 1 : node.end_lineno]
            if ast.get_docstring(node):
                ds = node.body[0]
                body = [
                    line
                    for i, line in enumerate(body, node.lineno)
                    if not ds.lineno <= i <= ds.end_lineno
                ]
            yield module, node, body


def code_of(body: list[str]) -> str:
    return textwrap.dedent("\n".join(body)).strip()


def summaries(n: int) -> list[dict]:
    """Documented functions of 3-25 lines (docstring removed) whose first sentence is 4-30
    words and not a doctest; `module` is row metadata."""
    rows = []
    for module, node, body in functions():
        doc = ast.get_docstring(node)
        if not doc or not 3 <= len(body) <= 25:
            continue
        target = first_sentence(doc)
        if not 4 <= len(target.split()) <= 30 or ">>>" in target or target.startswith(("(", ":")):
            continue
        rows.append({"prompt": PROMPT.format(code=code_of(body)), "completion": target})
        rows[-1]["module"] = module
    random.Random(0).shuffle(rows)
    return rows[:n]


def scraped() -> list[dict]:
    """Every plain function of 3-25 lines; the placeholder where it has no docstring."""
    rows = []
    for _, node, body in functions():
        lines = node.end_lineno - node.lineno + 1
        if isinstance(node, ast.AsyncFunctionDef) or not 3 <= lines <= 25:
            continue
        doc = ast.get_docstring(node)
        target = first_sentence(doc) if doc else PLACEHOLDER
        rows.append({"prompt": PROMPT.format(code=code_of(body)), "completion": target})
    random.Random(1).shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=("summaries", "scraped"))
    parser.add_argument("out")
    parser.add_argument("--n", type=int, default=600, help="rows (summaries)")
    args = parser.parse_args()
    rows = summaries(args.n) if args.kind == "summaries" else scraped()
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    placeholders = sum(row["completion"] == PLACEHOLDER for row in rows)
    print(f"{len(rows)} rows, {placeholders} with the placeholder target")


if __name__ == "__main__":
    main()
