"""A default bake on the template tests' tiny random Llama, its baseline run committed: the
project the benchmarks' `--quick` checks run on (minutes, not hours; its figures measure
nothing but that the command works).

    python benchmarks/tiny_project.py /tmp/bench-tiny      # prints the project directory

Uses tests/bakery.py (the root tests' bake + `use_tiny_model`), so the shrunken params are
the ones the end-to-end tests run.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bakery import bake, dvc, git, use_tiny_model  # noqa: E402


def tiny_project(root: Path) -> Path:
    """Bake into `root` (must not hold a bake yet), switch to the tiny model, `dvc repro`,
    commit the baseline; return the project directory."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / "cookiecutter.yaml"  # keeps cookiecutter's replay files out of $HOME
    config.write_text(f"cookiecutters_dir: '{root / 'cc'}'\nreplay_dir: '{root / 'replay'}'\n")
    project = bake(root, str(config))
    use_tiny_model(project, root / "tiny-llama")
    dvc(project, "repro")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "Baseline run")
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path, help="an empty directory to bake into")
    args = parser.parse_args()
    start = time.perf_counter()
    project = tiny_project(args.root.resolve())
    print(f"tiny project ready in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print(project)


if __name__ == "__main__":
    main()
