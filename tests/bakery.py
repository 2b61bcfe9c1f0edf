"""Baking the template in tests: shared by the hook, bake-option and end-to-end tests."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cookiecutter.generate import is_copy_only_path
from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]
CONTEXT: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
DEFAULT_SLUG = "support-triage-finetune"
DEFAULT_MODULE = "support_triage_finetune"
JINJA_MARKERS = ("{{", "{%", "{#")


def bake(output_dir: Path, config_file: str, **extra_context: str) -> Path:
    """Bake the template into ``output_dir`` without prompts and return the project dir."""
    project = cookiecutter(
        str(ROOT),
        no_input=True,
        extra_context=extra_context,
        output_dir=str(output_dir),
        config_file=config_file,
    )
    return Path(project)


def git(project: Path, *args: str) -> str:
    """Run git in ``project`` and return its stripped stdout."""
    result = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def rendered_text_files(project: Path) -> Iterator[Path]:
    """Yield the project's text files that cookiecutter rendered (skips .git, copied data)."""
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if not path.is_file() or rel.parts[0] == ".git":
            continue
        if is_copy_only_path(rel.as_posix(), {"cookiecutter": CONTEXT}):
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        yield path


def assert_no_curlies(project: Path) -> None:
    """Fail if any rendered text file still contains Jinja markers."""
    leftovers = [
        f"{path.relative_to(project)}: {marker}"
        for path in rendered_text_files(project)
        for marker in JINJA_MARKERS
        if marker in path.read_text(encoding="utf-8")
    ]
    assert not leftovers, f"unrendered Jinja left in: {leftovers}"


def assert_repo_initialised(project: Path) -> None:
    """Fail unless the project is a git repo with one clean commit and a DVC repo."""
    assert (project / ".git").is_dir()
    assert git(project, "rev-list", "--count", "HEAD") == "1"
    assert git(project, "status", "--porcelain") == ""
    assert (project / ".dvc").is_dir()
    assert (project / ".dvc" / "config").is_file()
