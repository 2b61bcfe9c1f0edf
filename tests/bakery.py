"""Baking the template in tests: shared by the hook tests and the end-to-end tests."""

import subprocess
from pathlib import Path

from cookiecutter.main import cookiecutter

ROOT = Path(__file__).resolve().parents[1]


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
