"""`make lock`: print requirements.lock, the exact installed versions of everything the given
requirements need (`python -m <package>.commands.lock '<project>[dev]'`)."""

import importlib.metadata
import json
import platform
import sys
from collections.abc import Iterable

from ..cli import run_stage
from ..errors import StageError
from ..models.versions import package_versions

NOT_LOCKED = {"torch"}
"""Installed first and on its own (TORCH_SPEC in the Makefile: the wheel depends on the machine):
neither pinned nor followed, so what only torch needs is left to torch's installer too."""

LOCK_HEADER = """\
# Exact versions this project was last run with: a pip constraints file (not a requirements
# file). `make setup` installs with it: pip install -c requirements.lock -e '.[dev]', so a
# project set up again later gets these versions, not the newest allowed ones.
# Written by `make lock` from the installed virtualenv: requirements.txt and the dev extra
# with everything they need, except torch (installed first, on its own: TORCH_SPEC) and what
# only torch needs. Markers are resolved for the Python and platform below; elsewhere
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


def lock_text(roots: Iterable[str]) -> str:
    """The lock file for `roots`: LOCK_HEADER, what it was made with, one `name==version` a line."""
    torch_version = package_versions(["torch"])["torch"] or "not installed"
    made_with = (
        f"# Made with Python {platform.python_version()} on {sys.platform} "
        f"({platform.machine()}); torch {torch_version}.\n"
    )
    pins = installed_closure(roots)
    return LOCK_HEADER + made_with + "".join(f"{name}=={v}\n" for name, v in pins.items())


def main() -> None:
    roots = sys.argv[1:]
    if not roots:
        raise StageError("usage: python -m <package>.commands.lock REQUIREMENT... (make lock)")
    sys.stdout.write(lock_text(roots))


if __name__ == "__main__":
    run_stage("lock", main)
