"""`make lock`: print requirements.lock, the exact installed versions of everything the given
requirements need, with the sha256 of every file of each, resolved for every platform
(`python -m <package>.commands.lock '<project>[dev]'`)."""

import importlib.metadata
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from ..cli import run_stage
from ..errors import StageError
from ..models.versions import package_versions

NOT_LOCKED = {"torch"}
"""Installed first and on its own (TORCH_SPEC in the Makefile: the wheel depends on the machine):
neither pinned nor followed, so what only torch needs is left to torch's installer too."""

LOCK_HEADER = """\
# Exact versions this project was last run with, and the sha256 of every file of each: a pip
# requirements file in hash-checking mode. `make setup` installs it (pip install
# --require-hashes -r requirements.lock), then this project, whose dependencies it then finds
# installed (pip install -e '.[dev]'), so a project set up again later gets these versions and
# these files, not the newest allowed ones.
# Written by `make lock` (it needs the package index): the versions installed in the
# virtualenv, for requirements.txt and the dev extra with everything they need except torch
# (installed first, on its own: TORCH_SPEC) and what only torch needs, resolved by
# `uv pip compile --universal --generate-hashes` for Linux, macOS and Windows (the markers say
# which platform needs a package) on the Python below or later; on an older Python,
# `make setup LOCK=` installs without the lock.
# To upgrade: pip install -U -e '.[dev]' (or edit requirements.txt), make test, make lock.
"""


def installed_from_directory(dist: importlib.metadata.Distribution) -> bool:
    """A local or editable install (this project itself): no index has that version."""
    direct_url = dist.read_text("direct_url.json")
    return bool(direct_url) and "dir_info" in json.loads(direct_url)


def installed_closure(roots: Iterable[str], not_locked: Iterable[str] = NOT_LOCKED) -> dict:
    """{name: version} of every installed distribution the requirement strings `roots` need,
    transitively, with markers and extras evaluated here. `not_locked` names are neither
    pinned nor followed; local installs are followed but not pinned."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    skip = {canonicalize_name(name) for name in not_locked}
    pins: dict[str, tuple[str, str]] = {}
    followed: set[tuple[str, str]] = set()
    todo = [Requirement(root) for root in roots]
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in skip:
            continue
        try:
            dist = importlib.metadata.distribution(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            raise StageError(
                f"{requirement.name} is required but not installed: run `make setup` first"
            ) from None
        if not installed_from_directory(dist):
            pins[key] = (dist.metadata["Name"], dist.version)
        extras = ("", *sorted(canonicalize_name(extra) for extra in requirement.extras))
        for extra in extras:
            if (key, extra) in followed:
                continue
            followed.add((key, extra))
            for line in dist.requires or []:
                needed = Requirement(line)
                if needed.marker is None or needed.marker.evaluate({"extra": extra}):
                    todo.append(needed)
    return dict(sorted(pins.values(), key=lambda pin: canonicalize_name(pin[0])))


def direct_requirements(root: str) -> list[str]:
    """What the lock resolves for the requirement string `root`: itself, or for a local
    install (this project, which no index has) the requirements its metadata lists, those of
    the extras `root` names included (without their markers)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    requirement = Requirement(root)
    dist = importlib.metadata.distribution(requirement.name)
    if not installed_from_directory(dist):
        return [root]
    extras = {canonicalize_name(extra) for extra in requirement.extras}
    lines = []
    for line in dist.requires or []:
        needed = Requirement(line)
        if needed.marker is None or "extra" not in str(needed.marker):
            lines.append(line)
        elif any(needed.marker.evaluate({"extra": extra}) for extra in extras):
            needed.marker = None
            lines.append(str(needed))
    return lines


def compile_command(requirements: Path, pins: Path, excludes: Path, python: str) -> list[str]:
    """uv's resolution of `requirements` at the versions in `pins` (constraints), without the
    packages in `excludes`, for every platform and Python `python` or later, with hashes."""
    return [
        *(sys.executable, "-m", "uv", "pip", "compile", str(requirements)),
        *("--constraints", str(pins), "--excludes", str(excludes)),
        *("--universal", "--python-version", python, "--generate-hashes"),
        *("--no-header", "--no-annotate", "--quiet"),
    ]


def compile_lock(roots: Iterable[str]) -> str:
    """The hashed, all-platform pins of what `roots` need, at the versions installed here."""
    if importlib.util.find_spec("uv") is None:
        raise StageError("make lock needs uv (in the dev extra): run `make setup` first")
    roots = list(roots)
    pins = installed_closure(roots)
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: Path(tmp) / f"{name}.txt" for name in ("requirements", "pins", "excludes")}
        requirements = [line for root in roots for line in direct_requirements(root)]
        files["requirements"].write_text("".join(f"{line}\n" for line in requirements))
        files["pins"].write_text("".join(f"{name}=={v}\n" for name, v in pins.items()))
        files["excludes"].write_text("".join(f"{name}\n" for name in sorted(NOT_LOCKED)))
        python = ".".join(map(str, sys.version_info[:2]))
        done = subprocess.run(
            compile_command(*files.values(), python), capture_output=True, text=True
        )
    if done.returncode != 0:
        raise StageError(f"uv pip compile failed:\n{done.stderr.strip()}")
    return done.stdout


def lock_text(compiled: str) -> str:
    """The lock file: LOCK_HEADER, what it was made with, then uv's `compiled` pins."""
    torch_version = package_versions(["torch"])["torch"] or "not installed"
    made_with = (
        f"# Made with Python {platform.python_version()} on {sys.platform} "
        f"({platform.machine()}); torch {torch_version}.\n"
    )
    return LOCK_HEADER + made_with + compiled


def main() -> None:
    roots = sys.argv[1:]
    if not roots:
        raise StageError("usage: python -m <package>.commands.lock REQUIREMENT... (make lock)")
    sys.stdout.write(lock_text(compile_lock(roots)))


if __name__ == "__main__":
    run_stage("lock", main)
